// Binary encodings of what the Raft log stores on disk: entries and hard state. Fixed layouts,
// big-endian, so a record written by one version reads the same in the next.
import type { Entry, EntryType, HardState } from '../raft/types.ts';

const ENTRY_TYPES: readonly EntryType[] = ['normal', 'confChange'];

// term u64 | index u64 | type u8 | data
export function encodeEntry(entry: Entry): Buffer {
  const out = Buffer.allocUnsafe(17 + entry.data.length);
  out.writeBigUInt64BE(BigInt(entry.term), 0);
  out.writeBigUInt64BE(BigInt(entry.index), 8);
  out[16] = ENTRY_TYPES.indexOf(entry.type);
  out.set(entry.data, 17);
  return out;
}

export function decodeEntry(buf: Buffer): Entry {
  const type = ENTRY_TYPES[buf[16]];
  if (type === undefined) throw new Error(`corrupt log entry: unknown type ${buf[16]}`);
  return {
    term: Number(buf.readBigUInt64BE(0)),
    index: Number(buf.readBigUInt64BE(8)),
    type,
    data: buf.subarray(17),
  };
}

// term u64 | vote u64 | commit u64
export function encodeHardState(hs: HardState): Buffer {
  const out = Buffer.allocUnsafe(24);
  out.writeBigUInt64BE(BigInt(hs.term), 0);
  out.writeBigUInt64BE(BigInt(hs.vote), 8);
  out.writeBigUInt64BE(BigInt(hs.commit), 16);
  return out;
}

export function decodeHardState(buf: Buffer): HardState {
  if (buf.length !== 24) throw new Error(`corrupt hard state: ${buf.length} bytes`);
  return {
    term: Number(buf.readBigUInt64BE(0)),
    vote: Number(buf.readBigUInt64BE(8)),
    commit: Number(buf.readBigUInt64BE(16)),
  };
}

export function encodeU64(n: number): Buffer {
  const out = Buffer.allocUnsafe(8);
  out.writeBigUInt64BE(BigInt(n), 0);
  return out;
}

export function decodeU64(buf: Buffer): number {
  return Number(buf.readBigUInt64BE(0));
}
