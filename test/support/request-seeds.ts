// Well-formed request bytes for protocol tests: for any etcd request type, a message with every
// field set (nested messages too, a txn two levels deep), encoded with protobufjs. Fuzzers mutate and
// truncate these, so every field's tag and wire type is in reach.
import path from 'node:path';
import protobuf from 'protobufjs';
import { PROTO_FILES, PROTO_ROOT, SERVICE_NAMES } from '../../server/etcd/proto.ts';

let root: protobuf.Root | undefined;

export function etcdProtoRoot(): protobuf.Root {
  if (root) return root;
  const r = new protobuf.Root();
  r.resolvePath = (_origin: string, target: string): string => (path.isAbsolute(target) ? target : path.join(PROTO_ROOT, target));
  r.loadSync([...PROTO_FILES], { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

export interface MethodInfo {
  /** gRPC path, /package.Service/Method. */
  path: string;
  requestType: protobuf.Type;
  requestStream: boolean;
  responseStream: boolean;
}

/** Every method of the eight etcd services. */
export function allMethods(): MethodInfo[] {
  const out: MethodInfo[] = [];
  for (const service of Object.values(SERVICE_NAMES)) {
    for (const m of etcdProtoRoot().lookupService(service).methodsArray) {
      m.resolve();
      out.push({
        path: `/${service}/${m.name}`,
        requestType: m.resolvedRequestType as protobuf.Type,
        requestStream: m.requestStream === true,
        responseStream: m.responseStream === true,
      });
    }
  }
  return out;
}

function sampleValue(field: protobuf.Field, depth: number): unknown {
  const t = field.resolvedType;
  if (t instanceof protobuf.Enum) return Object.values(t.values).find((v) => v !== 0) ?? 0;
  if (t instanceof protobuf.Type) return depth > 4 ? {} : fullObject(t, depth + 1);
  switch (field.type) {
    case 'string':
      return 'x';
    case 'bytes':
      return Buffer.from('k');
    case 'bool':
      return true;
    default:
      return 7;
  }
}

/** An object with every field of `type` set (one member per oneof, the first). */
function fullObject(type: protobuf.Type, depth = 0): Record<string, unknown> {
  const obj: Record<string, unknown> = {};
  const oneofDone = new Set<string>();
  for (const f of type.fieldsArray) {
    f.resolve();
    if (f.partOf) {
      if (oneofDone.has(f.partOf.name)) continue;
      oneofDone.add(f.partOf.name);
    }
    const v = sampleValue(f, depth);
    obj[f.name] = f.repeated ? [v] : v;
  }
  return obj;
}

/** A well-formed request of `type` with every field set. */
export function fullRequest(type: protobuf.Type): Buffer {
  return Buffer.from(type.encode(type.fromObject(fullObject(type))).finish());
}
