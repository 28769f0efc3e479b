// etcd's JSON gateway on the client port: `POST /v3/kv/range` and the rest (the paths are in
// ../shared/reference/etcd-api-fields.md), as etcd's grpc-gateway answers them. Clients without gRPC use
// it (lua-resty-etcd and so APISIX, shell scripts with curl), and so do operators at 2 a.m.
//
// Like etcd's, this gateway is a gRPC client of its own member: each request is converted from JSON, sent
// to the member's gRPC server, and the answer converted back, so validation, auth (the `Authorization`
// header carries the token), forwarding and errors are exactly the gRPC API's. It dials a private Unix
// socket (client-listener.ts, listenPrivateUnix) rather than a client port, which may be TLS with client
// certificates; as in etcd, a client certificate's CN does not authenticate gateway requests.
//
// The JSON is protobuf's JSON mapping with the .proto field names (grpc-gateway's OrigName): 64-bit
// integers as decimal strings, bytes as base64, enums by name, fields at their defaults left out, unknown
// fields ignored. A unary answer is the response object; an error is `{"error":m,"message":m,"code":c}`
// with the HTTP status grpc-gateway gives that code. A streaming call (Watch, LeaseKeepAlive, Observe,
// Snapshot) takes one or more JSON objects in the request body and answers one `{"result":...}` line per
// message until the stream ends or the client goes; an error mid-stream is an `{"error":{...}}` line.
import * as grpc from '@grpc/grpc-js';
import type http from 'node:http';
import type protobuf from 'protobufjs';
import { grpcServiceClient, protoMessageRoot } from '../protobuf/proto-schemas.ts';
import { SERVICE_NAMES, type EtcdServiceName } from '../etcd/proto.ts';

// Node's own reason phrases. node:http through getBuiltinModule, as http-endpoints.ts explains (its ESM
// facade loads undici at every start).
const { STATUS_CODES } = process.getBuiltinModule('node:http');

interface Route {
  service: EtcdServiceName;
  method: string;
}

/** Every gateway path (POST) and the RPC behind it. */
export const GATEWAY_ROUTES: ReadonlyMap<string, Route> = new Map(
  (
    [
      ['KV', 'Range', ['/v3/kv/range']],
      ['KV', 'Put', ['/v3/kv/put']],
      ['KV', 'DeleteRange', ['/v3/kv/deleterange']],
      ['KV', 'Txn', ['/v3/kv/txn']],
      ['KV', 'Compact', ['/v3/kv/compaction']],
      ['Watch', 'Watch', ['/v3/watch']],
      ['Lease', 'LeaseGrant', ['/v3/lease/grant']],
      ['Lease', 'LeaseRevoke', ['/v3/lease/revoke', '/v3/kv/lease/revoke']],
      ['Lease', 'LeaseKeepAlive', ['/v3/lease/keepalive']],
      ['Lease', 'LeaseTimeToLive', ['/v3/lease/timetolive', '/v3/kv/lease/timetolive']],
      ['Lease', 'LeaseLeases', ['/v3/lease/leases', '/v3/kv/lease/leases']],
      ['Cluster', 'MemberAdd', ['/v3/cluster/member/add']],
      ['Cluster', 'MemberRemove', ['/v3/cluster/member/remove']],
      ['Cluster', 'MemberUpdate', ['/v3/cluster/member/update']],
      ['Cluster', 'MemberList', ['/v3/cluster/member/list']],
      ['Cluster', 'MemberPromote', ['/v3/cluster/member/promote']],
      ['Maintenance', 'Alarm', ['/v3/maintenance/alarm']],
      ['Maintenance', 'Status', ['/v3/maintenance/status']],
      ['Maintenance', 'Defragment', ['/v3/maintenance/defragment']],
      ['Maintenance', 'Hash', ['/v3/maintenance/hash']],
      ['Maintenance', 'HashKV', ['/v3/maintenance/hashkv']],
      ['Maintenance', 'Snapshot', ['/v3/maintenance/snapshot']],
      ['Maintenance', 'MoveLeader', ['/v3/maintenance/transfer-leadership']],
      ['Maintenance', 'Downgrade', ['/v3/maintenance/downgrade']],
      ['Auth', 'AuthEnable', ['/v3/auth/enable']],
      ['Auth', 'AuthDisable', ['/v3/auth/disable']],
      ['Auth', 'AuthStatus', ['/v3/auth/status']],
      ['Auth', 'Authenticate', ['/v3/auth/authenticate']],
      ['Auth', 'UserAdd', ['/v3/auth/user/add']],
      ['Auth', 'UserGet', ['/v3/auth/user/get']],
      ['Auth', 'UserList', ['/v3/auth/user/list']],
      ['Auth', 'UserDelete', ['/v3/auth/user/delete']],
      ['Auth', 'UserChangePassword', ['/v3/auth/user/changepw']],
      ['Auth', 'UserGrantRole', ['/v3/auth/user/grant']],
      ['Auth', 'UserRevokeRole', ['/v3/auth/user/revoke']],
      ['Auth', 'RoleAdd', ['/v3/auth/role/add']],
      ['Auth', 'RoleGet', ['/v3/auth/role/get']],
      ['Auth', 'RoleList', ['/v3/auth/role/list']],
      ['Auth', 'RoleDelete', ['/v3/auth/role/delete']],
      ['Auth', 'RoleGrantPermission', ['/v3/auth/role/grant']],
      ['Auth', 'RoleRevokePermission', ['/v3/auth/role/revoke']],
      ['Lock', 'Lock', ['/v3/lock/lock']],
      ['Lock', 'Unlock', ['/v3/lock/unlock']],
      ['Election', 'Campaign', ['/v3/election/campaign']],
      ['Election', 'Proclaim', ['/v3/election/proclaim']],
      ['Election', 'Leader', ['/v3/election/leader']],
      ['Election', 'Observe', ['/v3/election/observe']],
      ['Election', 'Resign', ['/v3/election/resign']],
    ] as const
  ).flatMap(([service, method, paths]) => paths.map((p): [string, Route] => [p, { service, method }])),
);

/** Answers converted to JSON as grpc-gateway marshals them (OrigName, no defaults). */
const JSON_CONVERSION = { longs: String, enums: String, bytes: String, defaults: false, json: true } as const;

const LONG_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

/**
 * `value` (a message of `type` as toObject gives it) without the fields at their default: Go's protobuf
 * structs cannot tell a zero that was sent from one that was not, so etcd's gateway never shows them
 * (`"lease":"0"`, `"error":""`, an Event's type PUT). Nested messages are kept, even empty, as Go keeps
 * a set pointer.
 */
export function withoutDefaults(type: protobuf.Type, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(value as Record<string, unknown>)) {
    const field = type.fields[name];
    const nested = field?.resolvedType !== null && field?.resolvedType !== undefined && 'fields' in field.resolvedType ? (field.resolvedType as protobuf.Type) : null;
    if (field === undefined) out[name] = v;
    else if (field.repeated) {
      if (Array.isArray(v) && v.length > 0) out[name] = nested ? v.map((x: unknown) => withoutDefaults(nested, x)) : v;
    } else if (nested) out[name] = withoutDefaults(nested, v);
    else if (!isDefaultScalar(field, v)) out[name] = v;
  }
  return out;
}

function isDefaultScalar(field: protobuf.Field, v: unknown): boolean {
  if (v === '' || v === false || v === 0) return true;
  if (v === '0' && LONG_TYPES.has(field.type)) return true;
  const e = field.resolvedType;
  // An enum's zero value, by name.
  return e !== null && e !== undefined && 'valuesById' in e && (e as protobuf.Enum).valuesById[0] === v;
}

/** The response type of `service`.`method` (for withoutDefaults). */
function responseTypeOf(route: Route): protobuf.Type {
  const method = protoMessageRoot().lookupService(SERVICE_NAMES[route.service]).methods[route.method];
  return method.resolvedResponseType!;
}

/** grpc-gateway's HTTP status for a gRPC code (its HTTPStatusFromCode, v1 as etcd 3.4/3.5 ship it); 500 otherwise. */
const HTTP_STATUS_OF_CODE: ReadonlyMap<grpc.status, number> = new Map([
  [grpc.status.OK, 200],
  [grpc.status.CANCELLED, 408],
  [grpc.status.INVALID_ARGUMENT, 400],
  [grpc.status.OUT_OF_RANGE, 400],
  [grpc.status.DEADLINE_EXCEEDED, 504],
  [grpc.status.NOT_FOUND, 404],
  [grpc.status.ALREADY_EXISTS, 409],
  [grpc.status.ABORTED, 409],
  [grpc.status.PERMISSION_DENIED, 403],
  [grpc.status.UNAUTHENTICATED, 401],
  [grpc.status.RESOURCE_EXHAUSTED, 429],
  [grpc.status.FAILED_PRECONDITION, 412],
  [grpc.status.UNIMPLEMENTED, 501],
  [grpc.status.UNAVAILABLE, 503],
]);

export function httpStatusOf(code: grpc.status): number {
  return HTTP_STATUS_OF_CODE.get(code) ?? 500;
}

/**
 * Splits `text` into the complete top-level JSON values at its start (grpc-gateway reads a streaming
 * call's body as successive JSON values) and what is left unfinished. Whitespace between values is
 * skipped; the values are not parsed here.
 */
export function splitJsonValues(text: string): { values: string[]; rest: string } {
  const values: string[] = [];
  let depth = 0;
  let inString = false;
  let start = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (depth === 0) start = i;
      depth++;
    } else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) {
        values.push(text.slice(start, i + 1));
        start = -1;
      }
    } else if (depth === 0 && !/\s/.test(c)) {
      return { values, rest: text.slice(i) }; // not an object: left for JSON.parse to refuse
    }
  }
  return { values, rest: depth > 0 ? text.slice(start) : '' };
}

export interface JsonGatewayOptions {
  /** Where the member's gRPC server listens for the gateway (a `unix:` address). */
  target: string;
  /** Largest request body taken, in bytes (base64 makes a value a third larger than on gRPC). */
  maxBodyBytes: number;
  /** How long a unary call may take. */
  unaryTimeoutMs: number;
}

export class JsonGateway {
  private readonly opts: JsonGatewayOptions;
  private channelClient: grpc.Client | null = null;
  private readonly definitions = new Map<EtcdServiceName, grpc.ServiceDefinition>();

  constructor(opts: JsonGatewayOptions) {
    this.opts = opts;
  }

  /** Whether `path` (without its query) is a gateway path: the request is then answered here. */
  handles(path: string): boolean {
    return path.startsWith('/v3/');
  }

  handle(path: string, req: http.IncomingMessage, res: http.ServerResponse): void {
    const route = GATEWAY_ROUTES.get(path);
    if (route === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not Found\n');
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8' }).end('Method Not Allowed\n');
      return;
    }
    const method = this.definition(route.service)[route.method];
    const metadata = new grpc.Metadata();
    const token = req.headers.authorization;
    if (typeof token === 'string' && token !== '') metadata.set('token', token);
    if (method.requestStream || method.responseStream) this.stream(route, method, metadata, req, res);
    else this.unary(route, method, metadata, req, res);
  }

  close(): void {
    this.channelClient?.close();
    this.channelClient = null;
  }

  private client(): grpc.Client {
    // No size limit of its own, as etcd's gateway (MaxCallRecvMsgSize MaxInt32): the server's limits apply.
    this.channelClient ??= new grpc.Client(this.opts.target, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });
    return this.channelClient;
  }

  private definition(service: EtcdServiceName): grpc.ServiceDefinition {
    let d = this.definitions.get(service);
    if (d === undefined) {
      d = grpcServiceClient(SERVICE_NAMES[service], JSON_CONVERSION).service;
      this.definitions.set(service, d);
    }
    return d;
  }

  private unary(route: Route, method: grpc.MethodDefinition<unknown, unknown>, metadata: grpc.Metadata, req: http.IncomingMessage, res: http.ServerResponse): void {
    readBody(req, this.opts.maxBodyBytes).then(
      (text) => {
        const request = requestBytes(method, text);
        if (request instanceof Error) {
          sendError(res, grpc.status.INVALID_ARGUMENT, request.message);
          return;
        }
        this.client().makeUnaryRequest(
          method.path,
          passBytes,
          (bytes: Buffer) => method.responseDeserialize(bytes),
          request,
          metadata,
          { deadline: Date.now() + this.opts.unaryTimeoutMs },
          (err: grpc.ServiceError | null, answer?: unknown) => {
            if (err) sendError(res, err.code, err.details || err.message);
            else sendJson(res, 200, JSON.stringify(withoutDefaults(responseTypeOf(route), answer ?? {})));
          },
        );
      },
      (err: Error) => sendError(res, grpc.status.INVALID_ARGUMENT, `${route.service}.${route.method}: ${err.message}`),
    );
  }

  private stream(route: Route, method: grpc.MethodDefinition<unknown, unknown>, metadata: grpc.Metadata, req: http.IncomingMessage, res: http.ServerResponse): void {
    const deserialize = (bytes: Buffer): unknown => method.responseDeserialize(bytes);
    const answer = new StreamAnswer(res, responseTypeOf(route));
    if (!method.requestStream) {
      // A server-streaming call (Observe, Snapshot) takes the whole body as its one request.
      readBody(req, this.opts.maxBodyBytes).then(
        (text) => {
          const request = requestBytes(method, text);
          if (request instanceof Error) {
            answer.fail(grpc.status.INVALID_ARGUMENT, request.message);
            return;
          }
          answer.follow(this.client().makeServerStreamRequest(method.path, passBytes, deserialize, request, metadata, {}));
        },
        (err: Error) => answer.fail(grpc.status.INVALID_ARGUMENT, `${route.service}.${route.method}: ${err.message}`),
      );
      return;
    }
    const call = this.client().makeBidiStreamRequest(method.path, passBytes, deserialize, metadata, {});
    answer.follow(call);
    let pending = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      const { values, rest } = splitJsonValues(pending + chunk);
      pending = rest;
      for (const value of values) {
        const request = requestBytes(method, value);
        if (request instanceof Error) {
          call.cancel();
          answer.fail(grpc.status.INVALID_ARGUMENT, request.message);
          return;
        }
        call.write(request);
      }
    });
    // The body's end half-closes the call; the answers go on (a watch keeps streaming, as etcd's does).
    req.on('end', () => {
      if (pending.trim() === '') {
        call.end();
        return;
      }
      call.cancel();
      answer.fail(grpc.status.INVALID_ARGUMENT, 'unexpected end of JSON input');
    });
  }
}

/** A streaming call's HTTP answer: one `{"result":...}` line per message, an `{"error":...}` line at the end of a failed one. */
class StreamAnswer {
  private readonly res: http.ServerResponse;
  private readonly type: protobuf.Type;
  private headersSent = false;
  private ended = false;

  constructor(res: http.ServerResponse, type: protobuf.Type) {
    this.res = res;
    this.type = type;
  }

  follow(call: grpc.ClientDuplexStream<unknown, unknown> | grpc.ClientReadableStream<unknown>): void {
    call.on('data', (message: unknown) => {
      this.start();
      this.res.write(`${JSON.stringify({ result: withoutDefaults(this.type, message) })}\n`);
    });
    call.on('error', (err: grpc.ServiceError) => this.fail(err.code, err.details || err.message));
    call.on('end', () => {
      if (this.ended) return;
      this.ended = true;
      this.start();
      this.res.end();
    });
    // The HTTP client went away: so does the call.
    this.res.on('close', () => {
      if (!this.ended) call.cancel();
    });
  }

  fail(code: grpc.status, message: string): void {
    if (this.ended) return;
    this.ended = true;
    if (this.res.destroyed) return;
    if (!this.headersSent) {
      sendError(this.res, code, message);
      return;
    }
    const status = httpStatusOf(code);
    this.res.end(`${JSON.stringify({ error: { grpc_code: code, http_code: status, message, http_status: STATUS_CODES[status] ?? 'Internal Server Error' } })}\n`);
  }

  private start(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.res.writeHead(200, { 'content-type': 'application/json' });
  }
}

/** Requests go to grpc-js already encoded (requestBytes). */
const passBytes = (bytes: Buffer): Buffer => bytes;

/**
 * One request's JSON as the RPC's request bytes, or why not: malformed JSON, or a value that is not an
 * object, is the client's mistake, answered 400 with code 3 as grpc-gateway answers it, not a failure of
 * the call; so is any field protobufjs refuses to convert. (Its conversion is lenient where Go's is not: a
 * number given for a bytes field is dropped, not refused.) An empty body is the empty message.
 */
export function requestBytes(method: grpc.MethodDefinition<unknown, unknown>, text: string): Buffer | Error {
  try {
    const value: unknown = text.trim() === '' ? {} : JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return new Error(`json: cannot unmarshal ${Array.isArray(value) ? 'array' : typeof value} into a request message`);
    return method.requestSerialize(value);
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

function sendJson(res: http.ServerResponse, status: number, body: string): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(body);
}

/** A unary call's error as grpc-gateway writes it: the message twice and the gRPC code. */
function sendError(res: http.ServerResponse, code: grpc.status, message: string): void {
  sendJson(res, httpStatusOf(code), JSON.stringify({ error: message, message, code }));
}

function readBody(req: http.IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        req.destroy();
        reject(new Error(`request body larger than ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
