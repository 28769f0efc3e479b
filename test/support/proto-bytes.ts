// Hand-made protobuf bytes for protocol tests: fields written one by one with any wire type and any
// field number (including the invalid ones an encoder library would refuse to produce).

/** A varint's bytes (values up to 2^64 - 1). */
export function varint(v: number | bigint): Buffer {
  let n = BigInt(v);
  if (n < 0n) n += 1n << 64n;
  const out: number[] = [];
  do {
    let b = Number(n & 0x7fn);
    n >>= 7n;
    if (n > 0n) b |= 0x80;
    out.push(b);
  } while (n > 0n);
  return Buffer.from(out);
}

export function tag(field: number, wire: number): Buffer {
  return varint((BigInt(field) << 3n) | BigInt(wire));
}

/** Field `field` as a varint (wire type 0). */
export function vField(field: number, v: number | bigint): Buffer {
  return Buffer.concat([tag(field, 0), varint(v)]);
}

/** Field `field` as length-delimited bytes (wire type 2). */
export function lField(field: number, body: Uint8Array | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body);
  return Buffer.concat([tag(field, 2), varint(b.length), b]);
}

/** Field `field` as fixed32 (wire type 5). */
export function f32Field(field: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return Buffer.concat([tag(field, 5), b]);
}

/** Field `field` as fixed64 (wire type 1). */
export function f64Field(field: number, v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, v));
  return Buffer.concat([tag(field, 1), b]);
}

/**
 * A TxnRequest nesting `depth` txns (depth 1 = one txn holding a range): each level's success branch
 * holds one RequestOp carrying the next level's TxnRequest.
 */
export function nestedTxn(depth: number, innermostOp: Buffer = lField(1, lField(1, 'k'))): Buffer {
  let txn = lField(2, innermostOp); // success: [RequestOp{request_range{key:'k'}}]
  for (let i = 1; i < depth; i++) txn = lField(2, lField(4, txn)); // success: [RequestOp{request_txn}]
  return txn;
}
