// The frame codec's quiesce field (RaftMessage field 13) and the member-level liveness envelope:
// present only when set, so every other message keeps its exact bytes; decoded by this version;
// skipped (as an unknown field) by a decoder that predates it.
import { describe, expect, it } from 'vitest';
import { newMessage } from '../raft/raft.ts';
import { decodeBatch, encodeBatch } from './frame-codec.ts';
import { LIVENESS_GROUP_ID } from '../raft/liveness-wake.ts';

function heartbeat(quiesce: boolean | undefined) {
  const m = newMessage('heartbeat', 1, 2, 5);
  m.commit = 42;
  if (quiesce !== undefined) m.quiesce = quiesce;
  return m;
}

describe('quiesce field on the wire', () => {
  it('absent or false: the bytes of today', () => {
    const plain = encodeBatch({ clusterId: 9, fromMember: 1, toMember: 2, envelopes: [{ groupId: 3, message: heartbeat(undefined) }] });
    const unset = encodeBatch({ clusterId: 9, fromMember: 1, toMember: 2, envelopes: [{ groupId: 3, message: heartbeat(false) }] });
    expect(unset.equals(plain)).toBe(true);
    const decoded = decodeBatch(plain).envelopes[0].message;
    expect(decoded.quiesce).toBeUndefined();
  });

  it('set: two more bytes (tag 0x68, value 1), decoded back', () => {
    const plain = encodeBatch({ clusterId: 9, fromMember: 1, toMember: 2, envelopes: [{ groupId: 3, message: heartbeat(undefined) }] });
    const set = encodeBatch({ clusterId: 9, fromMember: 1, toMember: 2, envelopes: [{ groupId: 3, message: heartbeat(true) }] });
    expect(set.length).toBe(plain.length + 2);
    expect(set.subarray(set.length - 2)).toEqual(Buffer.from([0x68, 0x01]));
    const decoded = decodeBatch(set).envelopes[0].message;
    expect(decoded.quiesce).toBe(true);
    expect(decoded.commit).toBe(42);
    expect(decoded.type).toBe('heartbeat');
  });

  it('a liveness message travels in the reserved envelope group', () => {
    const m = newMessage('heartbeat', 1, 2, 0);
    const frame = encodeBatch({ clusterId: 9, fromMember: 1, toMember: 2, envelopes: [{ groupId: LIVENESS_GROUP_ID, message: m }] });
    const env = decodeBatch(frame).envelopes[0];
    expect(env.groupId).toBe(LIVENESS_GROUP_ID);
    expect(env.message.term).toBe(0);
    expect(env.message.from).toBe(1);
  });
});
