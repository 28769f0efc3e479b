// etcdserverpb.TxnRequest in protobuf bytes, decoded to the shape the entry codec gives (request-codec.ts):
// how a prepared cross-shard transaction's share is kept in the shard's state records.
import type protobuf from 'protobufjs';
import type { TxnRequest } from '../etcd/wire-types.ts';
import { internalProtoRoot } from './request-codec.ts';

let cachedType: protobuf.Type | undefined;
function txnRequestType(): protobuf.Type {
  cachedType ??= internalProtoRoot().lookupType('etcdserverpb.TxnRequest');
  return cachedType;
}

export function encodeTxnRequest(ops: TxnRequest): Uint8Array {
  const type = txnRequestType();
  return type.encode(type.fromObject(ops)).finish();
}

export function decodeTxnRequest(bytes: Uint8Array): TxnRequest {
  const type = txnRequestType();
  return type.toObject(type.decode(bytes), { longs: String, enums: String, bytes: Buffer, defaults: true, oneofs: true }) as TxnRequest;
}
