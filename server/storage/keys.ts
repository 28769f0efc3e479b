// The LevelDB keyspace of one member. Every Raft and state-machine key carries its group id, so one
// database (and one synced batch per event-loop turn) serves every Raft group the member hosts.
//
//   c                                   cluster identity and membership (JSON)
//   g <group u32> h                     Raft hard state
//   g <group u32> a                     applied index (written with the state machine's changes)
//   g <group u32> c                     membership (ConfState JSON) as of the applied index, written with it
//   g <group u32> n                     snapshot point (SnapshotMeta JSON): the log starts after it
//   g <group u32> l <index u64>         Raft log entry
//   g <group u32> s <store-relative key> state machine (MVCC) records
//   t <group u32>                       tombstone of a group this member stopped hosting (JSON): the
//                                       last term and vote of the removed replica, which a later
//                                       replica of the group here starts from (see member-db.ts)

const GROUP_PREFIX = 0x67; // 'g'
const HARD_STATE = 0x68; // 'h'
const APPLIED = 0x61; // 'a'
const CONF_STATE = 0x63; // 'c'
const SNAPSHOT_META = 0x6e; // 'n'
const LOG = 0x6c; // 'l'
const STATE = 0x73; // 's'

const TOMBSTONE_PREFIX = 0x74; // 't'

export const CLUSTER_KEY = Buffer.from('c');

function groupKey(groupId: number, kind: number, extraBytes: number): Buffer {
  const key = Buffer.allocUnsafe(6 + extraBytes);
  key[0] = GROUP_PREFIX;
  key.writeUInt32BE(groupId, 1);
  key[5] = kind;
  return key;
}

export function hardStateKey(groupId: number): Buffer {
  return groupKey(groupId, HARD_STATE, 0);
}

export function appliedKey(groupId: number): Buffer {
  return groupKey(groupId, APPLIED, 0);
}

export function confStateKey(groupId: number): Buffer {
  return groupKey(groupId, CONF_STATE, 0);
}

export function snapshotMetaKey(groupId: number): Buffer {
  return groupKey(groupId, SNAPSHOT_META, 0);
}

export function logKey(groupId: number, index: number): Buffer {
  const key = groupKey(groupId, LOG, 8);
  key.writeBigUInt64BE(BigInt(index), 6);
  return key;
}

export function logIndexOf(key: Buffer): number {
  return Number(key.readBigUInt64BE(6));
}

/** Bounds covering every log key of a group: [gte, lt). */
export function logRange(groupId: number): { gte: Buffer; lt: Buffer } {
  return { gte: groupKey(groupId, LOG, 0), lt: groupKey(groupId, LOG + 1, 0) };
}

export function stateKey(groupId: number, storeKey: Buffer): Buffer {
  // One allocation: every state-machine record of every turn goes through here.
  const key = groupKey(groupId, STATE, storeKey.length);
  storeKey.copy(key, 6);
  return key;
}

export function stateRange(groupId: number): { gte: Buffer; lt: Buffer } {
  return { gte: groupKey(groupId, STATE, 0), lt: groupKey(groupId, STATE + 1, 0) };
}

export const STATE_KEY_PREFIX_BYTES = 6;

/** Bounds covering every key of a group (its whole `g <group>` keyspace): [gte, lt). */
export function groupRange(groupId: number): { gte: Buffer; lt: Buffer } {
  const gte = Buffer.allocUnsafe(5);
  gte[0] = GROUP_PREFIX;
  gte.writeUInt32BE(groupId, 1);
  const lt = Buffer.allocUnsafe(5);
  if (groupId === 0xffffffff) {
    lt[0] = GROUP_PREFIX + 1;
    lt.writeUInt32BE(0, 1);
  } else {
    lt[0] = GROUP_PREFIX;
    lt.writeUInt32BE(groupId + 1, 1);
  }
  return { gte, lt };
}

/** Outside the group's keyspace on purpose: clearing groupRange leaves it. */
export function tombstoneKey(groupId: number): Buffer {
  const key = Buffer.allocUnsafe(5);
  key[0] = TOMBSTONE_PREFIX;
  key.writeUInt32BE(groupId, 1);
  return key;
}
