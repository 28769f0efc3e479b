// In-process: three real members (LevelDB, Raft, the KV state machine) wired through an in-memory sink
// that can cut a member off. A leader appends a client's write, is cut off before replicating it, and
// the others elect a leader whose log has another entry at that index. Once the old leader rejoins and
// applies past the index, the write's waiter hears etcd's "leader changed" at once, instead of waiting
// out its deadline; and no member ever applies it (server/shard/appended-proposals.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Member } from './member.ts';
import { encodeInternalRequest } from '../shard/request-codec.ts';
import { rangeOf } from '../mvcc/types.ts';
import type { NodeId } from '../raft/types.ts';
import { startInProcessMembers, type InProcessMembers } from '../../test/support/in-process-members.ts';

const GROUP = 1;
const TICK_MS = 20;
const ELECTION_TICKS = 10;

let trio: InProcessMembers;
let cutOff: NodeId = 0;

beforeAll(async () => {
  trio = await startInProcessMembers({
    groupId: GROUP,
    ids: [1, 2, 3],
    tickMs: TICK_MS,
    electionTimeoutTicks: ELECTION_TICKS,
    name: 'lost-proposal',
    deliver: (m) => m.from !== cutOff && m.to !== cutOff,
  });
}, 20_000);

afterAll(async () => {
  await trio?.stop();
});

const putEntry = (proposer: NodeId, seq: string, key: string): Uint8Array =>
  encodeInternalRequest({ proposer: String(proposer), seq, put: { key: Buffer.from(key), value: Buffer.from('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } });

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('a write its leader appended and lost with its leadership', () => {
  it('fails with "leader changed" once its index applies with another entry, and is applied nowhere', async () => {
    const old: Member = await trio.leader();
    const oldId = old.memberId;
    // Raft's role changes in a turn, the member's own leader id at the next Ready: proposals are taken
    // from then on. Cut off only then, and propose in the same tick.
    await waitFor('the leader taking proposals', () => old.leaderId(GROUP) === oldId);
    const sm = trio.stateMachines.get(oldId)!;
    cutOff = oldId;
    const tracked = sm.track();
    const startedMs = Date.now();
    old.propose(GROUP, putEntry(oldId, tracked.seq, 'lost-key'));
    const outcome = tracked.outcome.then(
      () => 'applied',
      (err: { code?: number; details?: string }) => `${err.code} ${err.details}`,
    );
    // The others elect a leader and write at that index; the old one rejoins and follows it.
    await waitFor('a new leader among the others', () => [...trio.members.values()].some((m) => m !== old && m.role(GROUP) === 'leader'));
    const next = [...trio.members.values()].find((m) => m !== old && m.role(GROUP) === 'leader')!;
    const other = trio.stateMachines.get(next.memberId)!.track();
    // Raft's role changes in a turn; the member's own leader id at the next Ready: retried until then.
    await waitFor('the new leader taking proposals', () => {
      try {
        next.propose(GROUP, putEntry(next.memberId, other.seq, 'other-key'));
        return true;
      } catch (err) {
        if (err instanceof Error && err.name === 'NoLeaderError') return false;
        throw err;
      }
    });
    await other.outcome;
    cutOff = 0;
    expect(await outcome).toBe('14 etcdserver: leader changed');
    expect(Date.now() - startedMs).toBeLessThan(5_000);
    expect(sm.proposalsLost).toBe(1);
    await waitFor('every member applied the new leader\'s write', () => [...trio.stateMachines.values()].every((s) => s.store.range(rangeOf(Buffer.from('other-key'))).kvs.length === 1));
    for (const s of trio.stateMachines.values()) expect(s.store.range(rangeOf(Buffer.from('lost-key'))).kvs).toEqual([]);
  }, 30_000);
});
