// The frame codec's commit_only field (RaftMessage field 14): present only when set, so every other
// message keeps its exact bytes; decoded by this version and by protobufjs from the published
// transport.proto; skipped as an unknown field by a decoder that predates it (which then answers the
// append, as before: harmless).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { newMessage } from '../raft/raft.ts';
import { decodeBatch, encodeBatch } from './frame-codec.ts';

const PROTO_ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto');

function commitAppend(commitOnly: boolean | undefined) {
  const m = newMessage('app', 1, 2, 5);
  m.index = 40;
  m.logTerm = 5;
  m.commit = 40;
  if (commitOnly !== undefined) m.commitOnly = commitOnly;
  return m;
}

const frame = (commitOnly: boolean | undefined): Buffer =>
  encodeBatch({ clusterId: 9, fromMember: 1, toMember: 2, envelopes: [{ groupId: 3, message: commitAppend(commitOnly) }] });

describe('commit_only field on the wire', () => {
  it('absent or false: the bytes of before', () => {
    expect(frame(false).equals(frame(undefined))).toBe(true);
    expect(decodeBatch(frame(undefined)).envelopes[0].message.commitOnly).toBeUndefined();
  });

  it('set: two more bytes (tag 0x70, value 1), decoded back with every other field', () => {
    const set = frame(true);
    expect(set.length).toBe(frame(undefined).length + 2);
    expect(set.subarray(set.length - 2)).toEqual(Buffer.from([0x70, 0x01]));
    const m = decodeBatch(set).envelopes[0].message;
    expect([m.type, m.commitOnly, m.index, m.logTerm, m.commit, m.entries.length]).toEqual(['app', true, 40, 5, 40, 0]);
  });

  it('protobufjs reads it from the published transport.proto', () => {
    const root = new protobuf.Root().loadSync(path.join(PROTO_ROOT, 'synod', 'transport.proto'), { keepCase: true });
    const Batch = root.lookupType('synod.transport.Batch');
    const flagOf = (b: Buffer): unknown => {
      const o = Batch.toObject(Batch.decode(b), { defaults: true }) as { envelopes: Array<{ message: { commit_only: unknown } }> };
      return o.envelopes[0].message.commit_only;
    };
    expect(flagOf(frame(true))).toBe(true);
    expect(flagOf(frame(undefined))).toBe(false);
  });
});
