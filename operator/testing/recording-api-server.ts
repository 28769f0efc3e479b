// A stand-in for the Kubernetes API server, for tests that must see the operator's requests as a real
// API server sees them: a plain HTTP server on 127.0.0.1 (port 0) that a real client-node KubeConfig
// points at, so requests go through client-node's own serialization and HTTP path. It records every
// request (method, path, query, content type, raw and parsed body) and answers plausibly: discovery
// for the groups the operator uses, get/list (label selectors)/watch (a stream kept open, fed by
// emit()), create (409 when present, generateName), update (409 on a stale resourceVersion),
// server-side apply (create or replace, the status subresource), delete (uid preconditions) — and,
// like the real API server, 400 for a Lease whose MicroTime fields are not six fractional digits.
// It is not an API server: no admission, no defaulting, no field management.

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { MICRO_TIME_PATTERN } from '../kube/kube-time.ts';

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
  rawBody: string;
  body: unknown;
  /** The stand-in's answer (201 for an apply that created the object). */
  responseStatus?: number;
}

/** Where a request points, in API terms; null for discovery and other non-resource URLs. */
export interface ResourceTarget {
  group: string;
  version: string;
  namespace: string | undefined;
  resource: string;
  name: string | undefined;
  subresource: string | undefined;
}

interface StoredObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string; generateName?: string; labels?: Record<string, string>; creationTimestamp?: string; generation?: number };
  [field: string]: unknown;
}

interface ResourceInfo { group: string; version: string; resource: string; kind: string; namespaced: boolean; subresources?: string[] }

/** The resources the operator touches, for discovery and list kinds. */
const RESOURCES: ResourceInfo[] = [
  { group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true },
  { group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false },
  { group: '', version: 'v1', resource: 'persistentvolumeclaims', kind: 'PersistentVolumeClaim', namespaced: true },
  { group: '', version: 'v1', resource: 'services', kind: 'Service', namespaced: true },
  { group: '', version: 'v1', resource: 'configmaps', kind: 'ConfigMap', namespaced: true },
  { group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true },
  { group: '', version: 'v1', resource: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true },
  { group: '', version: 'v1', resource: 'events', kind: 'Event', namespaced: true },
  { group: 'apps', version: 'v1', resource: 'statefulsets', kind: 'StatefulSet', namespaced: true, subresources: ['status', 'scale'] },
  { group: 'policy', version: 'v1', resource: 'poddisruptionbudgets', kind: 'PodDisruptionBudget', namespaced: true, subresources: ['status'] },
  { group: 'coordination.k8s.io', version: 'v1', resource: 'leases', kind: 'Lease', namespaced: true },
  { group: 'synod.dev', version: 'v1alpha1', resource: 'synodclusters', kind: 'SynodCluster', namespaced: true, subresources: ['status', 'scale'] },
];

/** Parses an API path (/api/v1/namespaces/ns/pods/name/status, /apis/apps/v1/statefulsets, ...). */
export function resourceTarget(path: string): ResourceTarget | null {
  const segments = path.split('/').filter((s) => s !== '');
  let group: string;
  let version: string;
  let rest: string[];
  if (segments[0] === 'api' && segments.length >= 3) {
    group = '';
    version = segments[1] ?? '';
    rest = segments.slice(2);
  } else if (segments[0] === 'apis' && segments.length >= 4) {
    group = segments[1] ?? '';
    version = segments[2] ?? '';
    rest = segments.slice(3);
  } else {
    return null;
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, subresource] = rest;
  if (resource === undefined) return null;
  return { group, version, namespace, resource, name, subresource };
}

function status(code: number, reason: string, message: string): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Status', metadata: {}, status: 'Failure', reason, message, code };
}

/** Equality (a=b, a==b, a!=b) and existence (a, !a) label selectors, comma-separated. */
function matchesSelector(labels: Record<string, string> | undefined, selector: string | undefined): boolean {
  if (selector === undefined || selector === '') return true;
  const have = labels ?? {};
  return selector.split(',').every((term) => {
    const t = term.trim();
    const ne = /^([^!=]+)!=(.*)$/.exec(t);
    if (ne !== null) return have[ne[1]!.trim()] !== ne[2]!.trim();
    const eq = /^([^!=]+)==?(.*)$/.exec(t);
    if (eq !== null) return have[eq[1]!.trim()] === eq[2]!.trim();
    if (t.startsWith('!')) return !(t.slice(1) in have);
    return t in have;
  });
}

/** The Time text the API server writes: whole seconds. */
function serverTime(): string {
  return `${new Date().toISOString().slice(0, 19)}Z`;
}

interface OpenWatch { target: ResourceTarget; labelSelector: string | undefined; res: ServerResponse }

export class RecordingApiServer {
  readonly requests: RecordedRequest[] = [];
  readonly #server: Server;
  readonly #objects = new Map<string, StoredObject>();
  readonly #watches = new Set<OpenWatch>();
  #resourceVersion = 100;
  #port = 0;

  private constructor() {
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  static async start(): Promise<RecordingApiServer> {
    const server = new RecordingApiServer();
    await new Promise<void>((resolve) => server.#server.listen(0, '127.0.0.1', resolve));
    server.#port = (server.#server.address() as AddressInfo).port;
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** A real client-node KubeConfig pointing at this stand-in (bearer token, plain HTTP). */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'stand-in', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'operator', token: 'stand-in-token' }],
      contexts: [{ name: 'stand-in', cluster: 'stand-in', user: 'operator', namespace: 'default' }],
      currentContext: 'stand-in',
    });
    return kc;
  }

  /** Puts an object into the store (as if someone else had created it); returns it as stored. */
  seed(path: string, object: StoredObject): StoredObject {
    const target = resourceTarget(path);
    if (target === null) throw new Error(`not a resource path: ${path}`);
    return this.#store(target, object);
  }

  /** Sends a watch event to every open watch on the object's resource (and namespace, selector). */
  emit(type: 'ADDED' | 'MODIFIED' | 'DELETED', path: string, object: StoredObject): void {
    const target = resourceTarget(path);
    if (target === null) throw new Error(`not a resource path: ${path}`);
    const stored = type === 'DELETED' ? object : this.#store(target, object);
    for (const watch of this.#watches) {
      if (watch.target.group !== target.group || watch.target.resource !== target.resource) continue;
      if (watch.target.namespace !== undefined && watch.target.namespace !== target.namespace) continue;
      if (!matchesSelector(stored.metadata.labels, watch.labelSelector)) continue;
      watch.res.write(`${JSON.stringify({ type, object: stored })}\n`);
    }
  }

  get openWatches(): number {
    return this.#watches.size;
  }

  async close(): Promise<void> {
    for (const watch of this.#watches) watch.res.end();
    this.#watches.clear();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #key(target: ResourceTarget, name: string): string {
    return `${target.group}/${target.resource}/${target.namespace ?? ''}/${name}`;
  }

  #store(target: ResourceTarget, object: StoredObject): StoredObject {
    const name = object.metadata.name;
    const previous = this.#objects.get(this.#key(target, name));
    this.#resourceVersion += 1;
    const stored: StoredObject = {
      ...object,
      metadata: {
        ...object.metadata,
        namespace: target.namespace,
        uid: previous?.metadata.uid ?? object.metadata.uid ?? `uid-${target.resource}-${name}`,
        creationTimestamp: previous?.metadata.creationTimestamp ?? serverTime(),
        resourceVersion: String(this.#resourceVersion),
      },
    };
    this.#objects.set(this.#key(target, name), stored);
    return stored;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const rawBody = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', this.url);
    const query = Object.fromEntries(url.searchParams.entries());
    const contentType = req.headers['content-type'];
    // Apply patches are YAML (JSON is YAML too); everything else the operator sends is JSON.
    const body: unknown = rawBody === '' ? undefined : contentType?.includes('yaml') === true ? parseYaml(rawBody) : JSON.parse(rawBody);
    const recorded: RecordedRequest = { method: req.method ?? 'GET', path: url.pathname, query, contentType, rawBody, body };
    this.requests.push(recorded);
    const send = (code: number, payload: unknown): void => {
      recorded.responseStatus = code;
      res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
    };
    const target = resourceTarget(url.pathname);
    if (target === null) {
      const discovery = this.#discovery(url.pathname);
      if (discovery === null) send(404, status(404, 'NotFound', `the server could not find the requested resource (${url.pathname})`));
      else send(200, discovery);
      return;
    }
    const info = RESOURCES.find((r) => r.group === target.group && r.version === target.version && r.resource === target.resource);
    if (info === undefined) {
      send(404, status(404, 'NotFound', `the server could not find the requested resource (${url.pathname})`));
      return;
    }
    const method = req.method ?? 'GET';
    if (method === 'GET' && target.name === undefined) {
      if (query['watch'] === 'true' || query['watch'] === '1') {
        recorded.responseStatus = 200;
        res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
        res.flushHeaders();
        const watch: OpenWatch = { target, labelSelector: query['labelSelector'], res };
        this.#watches.add(watch);
        res.on('close', () => this.#watches.delete(watch));
        return;
      }
      const items = [...this.#objects.entries()]
        .filter(([key]) => key.startsWith(`${target.group}/${target.resource}/${target.namespace === undefined ? '' : `${target.namespace}/`}`))
        .map(([, o]) => o)
        .filter((o) => matchesSelector(o.metadata.labels, query['labelSelector']));
      const apiVersion = target.group === '' ? target.version : `${target.group}/${target.version}`;
      send(200, { apiVersion, kind: `${info.kind}List`, metadata: { resourceVersion: String(this.#resourceVersion) }, items });
      return;
    }
    const object = body as StoredObject | undefined;
    if (method === 'POST' && target.name === undefined) {
      if (object?.metadata === undefined) {
        send(400, status(400, 'BadRequest', 'no metadata'));
        return;
      }
      const invalid = leaseTimeError(object);
      if (invalid !== null) {
        send(400, status(400, 'BadRequest', invalid));
        return;
      }
      const name = object.metadata.name ?? `${object.metadata.generateName ?? 'x-'}${Math.random().toString(36).slice(2, 7)}`;
      if (this.#objects.has(this.#key(target, name))) {
        send(409, status(409, 'AlreadyExists', `${target.resource} "${name}" already exists`));
        return;
      }
      send(201, this.#store(target, { ...object, metadata: { ...object.metadata, name } }));
      return;
    }
    const name = target.name;
    if (name === undefined) {
      send(405, status(405, 'MethodNotAllowed', `${method} on a collection`));
      return;
    }
    const key = this.#key(target, name);
    const current = this.#objects.get(key);
    if (method === 'GET') {
      if (current === undefined) send(404, status(404, 'NotFound', `${target.resource} "${name}" not found`));
      else send(200, current);
      return;
    }
    if (method === 'PUT') {
      if (current === undefined || object?.metadata === undefined) {
        send(404, status(404, 'NotFound', `${target.resource} "${name}" not found`));
        return;
      }
      const invalid = leaseTimeError(object);
      if (invalid !== null) {
        send(400, status(400, 'BadRequest', invalid));
        return;
      }
      if (object.metadata.resourceVersion !== current.metadata.resourceVersion) {
        send(409, status(409, 'Conflict', `Operation cannot be fulfilled on ${target.resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`));
        return;
      }
      send(200, this.#store(target, object));
      return;
    }
    if (method === 'PATCH') {
      if (contentType?.startsWith('application/apply-patch+yaml') !== true) {
        send(415, status(415, 'UnsupportedMediaType', `the stand-in only implements server-side apply, not ${contentType ?? 'no content type'}`));
        return;
      }
      if (query['fieldManager'] === undefined || query['fieldManager'] === '') {
        send(422, status(422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'));
        return;
      }
      if (object?.metadata === undefined) {
        send(400, status(400, 'BadRequest', 'apply patch without metadata'));
        return;
      }
      if (target.subresource === 'status') {
        if (current === undefined) {
          send(404, status(404, 'NotFound', `${target.resource} "${name}" not found`));
          return;
        }
        send(200, this.#store(target, { ...current, status: object['status'] }));
        return;
      }
      const { metadata, ...fields } = object;
      const merged: StoredObject = { ...(current ?? {}), ...fields, metadata: { ...(current?.metadata ?? {}), ...metadata, name } };
      send(current === undefined ? 201 : 200, this.#store(target, merged));
      return;
    }
    if (method === 'DELETE') {
      if (current === undefined) {
        send(404, status(404, 'NotFound', `${target.resource} "${name}" not found`));
        return;
      }
      const uid = (body as { preconditions?: { uid?: string } } | undefined)?.preconditions?.uid;
      if (uid !== undefined && uid !== current.metadata.uid) {
        send(409, status(409, 'Conflict', `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${current.metadata.uid ?? ''}`));
        return;
      }
      this.#objects.delete(key);
      send(200, current);
      return;
    }
    send(405, status(405, 'MethodNotAllowed', method));
  }

  #discovery(path: string): Record<string, unknown> | null {
    const segments = path.split('/').filter((s) => s !== '');
    const groupVersion = segments[0] === 'api' && segments.length === 2 ? { group: '', version: segments[1] }
      : segments[0] === 'apis' && segments.length === 3 ? { group: segments[1], version: segments[2] } : null;
    if (groupVersion === null) return null;
    const resources = RESOURCES.filter((r) => r.group === groupVersion.group && r.version === groupVersion.version);
    if (resources.length === 0) return null;
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: groupVersion.group === '' ? groupVersion.version : `${groupVersion.group}/${groupVersion.version}`,
      resources: resources.flatMap((r) => [
        { name: r.resource, singularName: r.kind.toLowerCase(), namespaced: r.namespaced, kind: r.kind, verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] },
        ...(r.subresources ?? []).map((sub) => ({ name: `${r.resource}/${sub}`, singularName: '', namespaced: r.namespaced, kind: sub === 'scale' ? 'Scale' : r.kind, verbs: ['get', 'patch', 'update'] })),
      ]),
    };
  }
}

/** The 400 the real API server gives a Lease whose MicroTime fields are not in its one layout. */
function leaseTimeError(object: StoredObject): string | null {
  if (object.kind !== 'Lease') return null;
  const spec = (object['spec'] ?? {}) as Record<string, unknown>;
  for (const field of ['acquireTime', 'renewTime']) {
    const value = spec[field];
    if (value !== undefined && value !== null && (typeof value !== 'string' || !MICRO_TIME_PATTERN.test(value))) {
      return `Lease in version "v1" cannot be handled as a Lease: parsing time ${JSON.stringify(value)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse as ".000000"`;
    }
  }
  return null;
}
