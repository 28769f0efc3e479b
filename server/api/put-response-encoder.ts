// PutResponse bytes written by hand: the reply to every put is a response header and, only when
// the client asked for it, the previous key-value. proto-loader's serializer turned each of the
// header's four 64-bit decimal strings into a Long first; this writes them as varints directly.
// Puts with prev_kv keep the object path (the KV service's serializer takes both).
import type { ResponseHeader } from '../etcd/wire-types.ts';
import { uint64Of, varintBytes, writeVarint } from '../protobuf/varint.ts';

const HEADER_FIELD_TAG = (1 << 3) | 2;

/** PutResponse{header} as protobuf bytes (proto3: zero fields left out). */
export function encodePutResponse(h: ResponseHeader): Buffer {
  const fields = [uint64Of(h.cluster_id, 'cluster_id'), uint64Of(h.member_id, 'member_id'), uint64Of(h.revision, 'revision'), uint64Of(h.raft_term, 'raft_term')];
  let headerBytes = 0;
  for (const v of fields) if (v !== 0n) headerBytes += 1 + varintBytes(v);
  const out = Buffer.allocUnsafe(1 + varintBytes(BigInt(headerBytes)) + headerBytes);
  out[0] = HEADER_FIELD_TAG;
  let p = writeVarint(out, 1, BigInt(headerBytes));
  for (let i = 0; i < fields.length; i++) {
    if (fields[i] === 0n) continue;
    out[p++] = ((i + 1) << 3) | 0;
    p = writeVarint(out, p, fields[i]);
  }
  return out;
}
