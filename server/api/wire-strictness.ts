// What grpc-go refuses before etcd's handlers ever see a request, refused here with grpc-go's and
// gogoproto's exact code and text (etcd 3.4 checked by test/protocol-strictness.test.ts):
//   - a message whose compressed flag is set while the call's grpc-encoding is identity or absent
//     (INTERNAL "grpc: compressed flag set with identity or empty encoding"), a flag byte other than
//     0 or 1 ("grpc: received unexpected payload format N"), a grpc-encoding it has no decompressor
//     for (UNIMPLEMENTED); grpc-js serves the first two and words the third differently;
//   - a message etcd's generated Unmarshal refuses (wrong wire type, field number 0, truncation...),
//     INTERNAL "grpc: error unmarshalling request: <gogoproto's error>" for unary calls and
//     "grpc: failed to unmarshal the received message <error>" on streams (wire-check.ts); grpc-js
//     would misread some of them and answer the others "Error deserializing request".
// grpc-js has no option for either, and its deserializer cannot choose the status. The narrowest
// hook is the one step that sees each message's raw frame before decoding: the call's
// decompressMessage(frame, encoding), whose failure grpc-js sends as the call's status. A server
// interceptor (the first in the chain receives grpc-js's base call) wraps it per call. That method
// is grpc-js-internal (1.14): etcdWireStrictness() refuses to start if it is missing, and the
// differential test fails if its behaviour changes.
import * as grpc from '@grpc/grpc-js';
import { BaseServerInterceptingCall } from '@grpc/grpc-js/build/src/server-interceptors.js';
import protobuf from 'protobufjs';
import { SERVICE_NAMES, allowMessageNesting } from '../etcd/proto.ts';
import { protoMessageRoot } from '../protobuf/proto-schemas.ts';
import { canonicalRequest, checkWire, messageRule, type MessageRule } from './wire-check.ts';
import { PLACEMENT_SERVICE_NAME } from './placement-service.ts';

/** Encodings grpc-js can decompress; anything else is refused as grpc-go refuses it. */
const DECOMPRESSORS = new Set(['identity', 'gzip', 'deflate']);

interface MethodRule {
  readonly rule: MessageRule;
  /** grpc-go words decode errors on streams differently from unary calls. */
  readonly unmarshalPrefix: string;
}

interface StatusLike {
  code: grpc.status;
  details: string;
}

/** The grpc-js internals this hook relies on (BaseServerInterceptingCall). */
interface BaseCallInternals {
  decompressMessage(message: Buffer, encoding: string): Buffer | Promise<Buffer>;
  incomingEncoding: string;
}

let methodRules: Map<string, MethodRule> | undefined;

/** Request rules of every method of the eight etcd services and Synod's own client-facing service, keyed by gRPC path. */
function requestRules(): Map<string, MethodRule> {
  if (methodRules) return methodRules;
  const root = protoMessageRoot();
  const out = new Map<string, MethodRule>();
  for (const service of [...Object.values(SERVICE_NAMES), PLACEMENT_SERVICE_NAME]) {
    for (const method of root.lookupService(service).methodsArray) {
      method.resolve();
      const streaming = method.requestStream === true || method.responseStream === true;
      out.set(`/${service}/${method.name}`, {
        rule: messageRule(method.resolvedRequestType as protobuf.Type),
        unmarshalPrefix: streaming ? 'grpc: failed to unmarshal the received message ' : 'grpc: error unmarshalling request: ',
      });
    }
  }
  methodRules = out;
  return out;
}

function refuse(code: grpc.status, details: string): never {
  const status: StatusLike = { code, details };
  throw status;
}

export interface WireStrictnessOptions {
  /** --max-txn-ops: txns nested deeper than this allows are cut before decoding (wire-check.ts). */
  maxTxnOps: number;
}

/**
 * The server interceptor (put it first in grpc.Server's `interceptors`). Also raises protobufjs's
 * nesting limits to fit the deepest txn `maxTxnOps` allows.
 */
export function etcdWireStrictness(opts: WireStrictnessOptions): grpc.ServerInterceptor {
  if (typeof (BaseServerInterceptingCall.prototype as unknown as Partial<BaseCallInternals>).decompressMessage !== 'function') {
    throw new Error('grpc-js no longer has BaseServerInterceptingCall.decompressMessage: the wire strictness hook needs porting');
  }
  const maxTxnDepth = opts.maxTxnOps + 1;
  allowMessageNesting(Math.max(100, 2 * maxTxnDepth + 16));
  const rules = requestRules();
  return (method, call) => {
    const entry = rules.get(method.path);
    if (entry !== undefined && call instanceof BaseServerInterceptingCall) hook(call as unknown as BaseCallInternals, entry, maxTxnDepth);
    // Nothing else to intercept: hand grpc-js its own call back rather than a pass-through layer
    // that every message and status would cross.
    return call as unknown as grpc.ServerInterceptingCall;
  };
}

function hook(call: BaseCallInternals, entry: MethodRule, maxTxnDepth: number): void {
  const decompress = call.decompressMessage;
  const check = (bytes: Buffer): Buffer => {
    const verdict = checkWire(entry.rule, bytes, maxTxnDepth);
    if (verdict.error !== null) refuse(grpc.status.INTERNAL, entry.unmarshalPrefix + verdict.error);
    return verdict.rewrite ? canonicalRequest(entry.rule, bytes, maxTxnDepth) : bytes;
  };
  call.decompressMessage = function (this: BaseCallInternals, frame: Buffer, encoding: string): Buffer | Promise<Buffer> {
    const flag = frame[0];
    if (flag > 1) refuse(grpc.status.INTERNAL, `grpc: received unexpected payload format ${flag}`);
    // grpc-go looks up the decompressor when the stream starts, whatever the messages' flags.
    if (!DECOMPRESSORS.has(this.incomingEncoding)) {
      refuse(grpc.status.UNIMPLEMENTED, `grpc: Decompressor is not installed for grpc-encoding ${JSON.stringify(this.incomingEncoding)}`);
    }
    // grpc-js passes 'identity' for an unflagged message, and for a flagged one when the call's
    // encoding is identity (or absent, its default).
    if (flag === 1 && encoding === 'identity') refuse(grpc.status.INTERNAL, 'grpc: compressed flag set with identity or empty encoding');
    const bytes = decompress.call(this, frame, encoding);
    return Buffer.isBuffer(bytes) ? check(bytes) : bytes.then(check);
  };
}
