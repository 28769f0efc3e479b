// Reads what the no-stall measurement checks of a RangeResponse (count, how many kvs, each value's length)
// by walking the protobuf wire format, without decoding it into objects. The measurement's range clients
// receive gigabytes of replies on the same two cores as the members they measure; protobufjs turning each
// reply into a JS object graph cost the machine more CPU than the member spent encoding it, and that is
// a cost of the test's client, not of Synod. The scan still visits every key-value.

interface Cursor {
  buf: Buffer;
  pos: number;
}

function varint(c: Cursor): number {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (c.pos >= c.buf.length) throw new RangeError('truncated varint');
    const byte = c.buf[c.pos++];
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return value;
    scale *= 128;
  }
}

/** Skips one field's payload of the given wire type; returns [start, end) of a length-delimited one. */
function skip(c: Cursor, wireType: number): [number, number] {
  switch (wireType) {
    case 0:
      varint(c);
      return [c.pos, c.pos];
    case 1:
      c.pos += 8;
      return [c.pos, c.pos];
    case 2: {
      const length = varint(c);
      const start = c.pos;
      c.pos += length;
      if (c.pos > c.buf.length) throw new RangeError('truncated length-delimited field');
      return [start, c.pos];
    }
    case 5:
      c.pos += 4;
      return [c.pos, c.pos];
    default:
      throw new RangeError(`unexpected wire type ${wireType}`);
  }
}

export interface ScannedRange {
  count: number;
  valueLengths: number[];
}

/** etcdserverpb.RangeResponse: kvs = 2 (KeyValue: value = 5), count = 4. */
export function scanRangeReply(buf: Buffer): ScannedRange {
  const c: Cursor = { buf, pos: 0 };
  const out: ScannedRange = { count: 0, valueLengths: [] };
  while (c.pos < buf.length) {
    const tag = varint(c);
    const field = Math.floor(tag / 8);
    if (field === 4 && (tag & 7) === 0) {
      out.count = varint(c);
      continue;
    }
    const [start, end] = skip(c, tag & 7);
    if (field !== 2) continue;
    const kv: Cursor = { buf: buf.subarray(start, end), pos: 0 };
    let valueLength = 0;
    while (kv.pos < kv.buf.length) {
      const kvTag = varint(kv);
      const [vs, ve] = skip(kv, kvTag & 7);
      if (Math.floor(kvTag / 8) === 5) valueLength = ve - vs;
    }
    out.valueLengths.push(valueLength);
  }
  return out;
}
