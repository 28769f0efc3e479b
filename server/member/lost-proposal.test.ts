// In-process: three real members (LevelDB, Raft, the KV state machine) wired through an in-memory sink
// that can cut a member off. Writes are fenced to the term they were proposed in (proposal-fence.ts).
// 1. A leader appends a client's write, is cut off before replicating it, and the others elect a leader
//    whose log has another entry at that index. Once the old leader rejoins and applies an entry of the
//    new term, the write's waiter hears etcd's "leader changed" at once, instead of waiting out its
//    deadline; and no member ever applies it.
// 2. A follower forwards a write to its leader, which is cut off before the write arrives (as a leader
//    killed with -9 would be). The write never reaches any log; once the follower applies the next
//    leader's first entry, its waiter hears "leader changed" (so ApiContext proposes it again), instead
//    of waiting out its deadline.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APPLY_RULES, BCRYPT_PASSWORD_RULES, CLUSTER_GROUP_ID, CONCURRENT_PREPARE_RULES, DECIDE_AT_PREPARE_RULES, LeaderUnreachableError, NoLeaderError, PROPOSAL_FENCE_RULES, TXN_OP_POSITION_RULES, type Member } from './member.ts';
import { encodeInternalRequest } from '../shard/request-codec.ts';
import { rangeOf } from '../mvcc/types.ts';
import type { NodeId } from '../raft/types.ts';
import { startInProcessMembers, type InProcessMembers, type InProcessMembersOptions } from '../../test/support/in-process-members.ts';

const GROUP = 1;
const TICK_MS = 20;
const ELECTION_TICKS = 10;

/** Three in-process members `ids` of `groupId` (default GROUP) at this file's timing, with a test's sink options. */
function startThree(name: string, ids: NodeId[], opts: Partial<InProcessMembersOptions> = {}): Promise<InProcessMembers> {
  return startInProcessMembers({ groupId: GROUP, ids, tickMs: TICK_MS, electionTimeoutTicks: ELECTION_TICKS, name, ...opts });
}

let trio: InProcessMembers;
let cutOff: NodeId = 0;

beforeAll(async () => {
  trio = await startThree('lost-proposal', [1, 2, 3], { deliver: (m) => m.from !== cutOff && m.to !== cutOff });
}, 20_000);

afterAll(async () => {
  await trio?.stop();
});

const putEntry = (proposer: NodeId, seq: string, key: string, proposalTerm: number): Uint8Array =>
  encodeInternalRequest({ proposer: String(proposer), seq, proposal_term: String(proposalTerm), put: { key: Buffer.from(key), value: Buffer.from('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } });

/** A write proposed through `m`, fenced to the term it sees, with its outcome as text. */
function proposeFenced(m: Member, key: string): { outcome: Promise<string>; seq: string } {
  const sm = trio.stateMachines.get(m.memberId)!;
  const term = m.proposalTerm(GROUP);
  const tracked = sm.track(term);
  m.propose(GROUP, putEntry(m.memberId, tracked.seq, key, term));
  const outcome = tracked.outcome.then(
    () => 'applied',
    (err: { code?: number; details?: string }) => `${err.code} ${err.details}`,
  );
  return { outcome, seq: tracked.seq };
}

/** Once a leader other than `old` takes proposals: proposes `key` through it and waits for the apply. */
async function writeThroughNewLeader(old: Member, key: string): Promise<Member> {
  await waitFor('a new leader among the others', () => [...trio.members.values()].some((m) => m !== old && m.role(GROUP) === 'leader'));
  const next = [...trio.members.values()].find((m) => m !== old && m.role(GROUP) === 'leader')!;
  let outcome: Promise<string> | null = null;
  // Raft's role changes in a turn; the member's own leader id at the next Ready: retried until then.
  await waitFor('the new leader taking proposals', () => {
    try {
      outcome = proposeFenced(next, key).outcome;
      return true;
    } catch (err) {
      if (err instanceof Error && err.name === 'NoLeaderError') return false;
      throw err;
    }
  });
  expect(await outcome!).toBe('applied');
  return next;
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('proposals are fenced only once every member of the group applies fences', () => {
  it('fences to the current term when every peer said so, and not at all while one has not (an older build)', async () => {
    let olderMember: NodeId = 0;
    const mixed = await startThree('fence-gate', [11, 12, 13], { peerApplyRules: (id) => (id === olderMember ? 0 : APPLY_RULES) });
    try {
      const leader = await mixed.leader();
      const term = leader.role(GROUP) === 'leader' ? leader.proposalTerm(GROUP) : -1;
      expect(term).toBeGreaterThan(0);
      olderMember = [...mixed.members.keys()].find((id) => id !== leader.memberId)!;
      for (const m of mixed.members.values()) expect(m.proposalTerm(GROUP)).toBe(m.memberId === olderMember ? term : 0);
    } finally {
      await mixed.stop();
    }
  }, 20_000);
});

describe('rules used once every member of the cluster implements them', () => {
  it('a member that says apply rules 1 gets fenced proposals, and no cross-shard prepares that decide their branch; rules 3 wait for every member too', async () => {
    let rulesOfOthers = PROPOSAL_FENCE_RULES;
    let heardFrom23 = false;
    const cluster = await startThree('rules-gate', [21, 22, 23], {
      groupId: CLUSTER_GROUP_ID,
      peerApplyRules: (id) => (id === 23 ? rulesOfOthers : APPLY_RULES),
      peerHasSaidHello: (id) => id !== 23 || heardFrom23,
    });
    try {
      const leader = await cluster.leader();
      const others = [...cluster.members.values()].filter((m) => m.memberId !== 23);
      for (const m of others) {
        expect(m.clusterImplements(PROPOSAL_FENCE_RULES)).toBe(true);
        expect(m.clusterImplements(DECIDE_AT_PREPARE_RULES)).toBe(false);
      }
      if (leader.memberId !== 23) expect(leader.proposalTerm(CLUSTER_GROUP_ID)).toBeGreaterThan(0);
      // Member 23 upgraded to a build with rules 2: every member now says at least 2, not yet 3.
      rulesOfOthers = DECIDE_AT_PREPARE_RULES;
      for (const m of cluster.members.values()) expect(m.clusterImplements(DECIDE_AT_PREPARE_RULES)).toBe(true);
      for (const m of others) expect(m.clusterImplements(TXN_OP_POSITION_RULES)).toBe(false);
      // To the build before bcrypt passwords: rules 3, not 4.
      rulesOfOthers = TXN_OP_POSITION_RULES;
      for (const m of cluster.members.values()) expect(m.clusterImplements(TXN_OP_POSITION_RULES)).toBe(true);
      for (const m of others) expect(m.clusterImplements(BCRYPT_PASSWORD_RULES)).toBe(false);
      // To the build before several cross-shard prepares per shard: rules 4, not 5 (a leader then
      // proposes one prepare at a time, as that build's replicas apply them).
      rulesOfOthers = BCRYPT_PASSWORD_RULES;
      for (const m of cluster.members.values()) expect(m.clusterImplements(BCRYPT_PASSWORD_RULES)).toBe(true);
      for (const m of others) expect(m.clusterImplements(CONCURRENT_PREPARE_RULES)).toBe(false);
      // A member's hello not heard yet (streams still coming up) is told apart from an older build's.
      for (const m of others) expect(m.heardFromEveryMember()).toBe(false);
      heardFrom23 = true;
      for (const m of others) expect(m.heardFromEveryMember()).toBe(true);
      // And to this build: every rule.
      rulesOfOthers = APPLY_RULES;
      for (const m of cluster.members.values()) expect(m.clusterImplements(CONCURRENT_PREPARE_RULES)).toBe(true);
    } finally {
      await cluster.stop();
    }
  }, 20_000);
});

describe('a write its leader appended and lost with its leadership', () => {
  it('fails with "leader changed" once its index applies with another entry, and is applied nowhere', async () => {
    const old: Member = await trio.leader();
    const oldId = old.memberId;
    // Raft's role changes in a turn, the member's own leader id at the next Ready: proposals are taken
    // from then on. Cut off only then, and propose in the same tick.
    await waitFor('the leader taking proposals', () => old.leaderId(GROUP) === oldId);
    const sm = trio.stateMachines.get(oldId)!;
    cutOff = oldId;
    const lostBefore = sm.proposalsLost;
    const startedMs = Date.now();
    const { outcome } = proposeFenced(old, 'lost-key');
    // The others elect a leader and write at that index; the old one rejoins and follows it.
    await writeThroughNewLeader(old, 'other-key');
    cutOff = 0;
    expect(await outcome).toBe('14 etcdserver: leader changed');
    expect(Date.now() - startedMs).toBeLessThan(5_000);
    expect(sm.proposalsLost).toBe(lostBefore + 1);
    await waitFor('every member applied the new leader\'s write', () => [...trio.stateMachines.values()].every((s) => s.store.range(rangeOf(Buffer.from('other-key'))).kvs.length === 1));
    for (const s of trio.stateMachines.values()) expect(s.store.range(rangeOf(Buffer.from('lost-key'))).kvs).toEqual([]);
  }, 30_000);

  it('fails with "leader changed" a write forwarded to a leader cut off before it arrived, once the next leader\'s term applies', async () => {
    const old: Member = await trio.leader();
    await waitFor('the leader taking proposals', () => [...trio.members.values()].every((m) => m.leaderId(GROUP) === old.memberId));
    const follower = [...trio.members.values()].find((m) => m !== old)!;
    const sm = trio.stateMachines.get(follower.memberId)!;
    const lostBefore = sm.proposalsLost;
    cutOff = old.memberId; // nothing reaches it any more: the forwarded write is dropped on the way
    const startedMs = Date.now();
    const { outcome } = proposeFenced(follower, 'forwarded-key');
    await writeThroughNewLeader(old, 'next-key');
    await waitFor('the follower applying the next leader\'s write', () => sm.store.range(rangeOf(Buffer.from('next-key'))).kvs.length === 1);
    // Heard as soon as the follower applied the new term's first entry, whoever leads now.
    expect(await outcome).toBe('14 etcdserver: leader changed');
    expect(Date.now() - startedMs).toBeLessThan(5_000);
    expect(sm.proposalsLost).toBe(lostBefore + 1);
    cutOff = 0;
    // The old leader rejoins; nothing applies the forwarded write anywhere, even if a copy still arrived.
    await writeThroughNewLeader(old, 'after-rejoin');
    await waitFor('every member applied the last write', () => [...trio.stateMachines.values()].every((s) => s.store.range(rangeOf(Buffer.from('after-rejoin'))).kvs.length === 1));
    for (const s of trio.stateMachines.values()) expect(s.store.range(rangeOf(Buffer.from('forwarded-key'))).kvs).toEqual([]);
  }, 30_000);
});

describe('a follower whose stream to its leader is down', () => {
  it('refuses a write while its stream to the leader never came up (the transport would drop it unsent), and the write applies once the stream is up', async () => {
    let down = false;
    let neverUp = false;
    let leaderId: NodeId = 0;
    let followerId: NodeId = 0;
    const cutStream = (from: NodeId, to: NodeId): boolean => down && from === followerId && to === leaderId;
    const pair = await startThree('stream-down', [31, 32, 33], {
      // As a real transport's flush does: what is queued for a peer whose stream is down is dropped.
      deliver: (m) => !cutStream(m.from, m.to),
      isConnected: (from, to) => !cutStream(from, to),
      // The leader's hello comes on the follower's stream to it: not yet, while that stream never came up.
      peerHasSaidHello: (id) => !(neverUp && id === leaderId),
    });
    try {
      const leader = await pair.leader();
      leaderId = leader.memberId;
      await waitFor('every member following the leader', () => [...pair.members.values()].every((m) => m.leaderId(GROUP) === leaderId));
      const follower = [...pair.members.values()].find((m) => m !== leader)!;
      followerId = follower.memberId;
      const sm = pair.stateMachines.get(followerId)!;
      // A stream that was up and went down (a leader killed) is left to the term fence: the write is sent.
      down = true;
      const sent = sm.track(0);
      sent.outcome.catch(() => undefined);
      follower.propose(GROUP, putEntry(followerId, sent.seq, 'sent-into-a-broken-stream', 0));
      expect(follower.stats.proposalsToUnreachableLeader).toBe(0);
      sent.forget();
      neverUp = true; // as in a member's first moments, before its stream to the leader ever came up
      const put = (): { outcome: Promise<string> } => {
        const tracked = sm.track(0); // unfenced: a peer's hello may not have come yet
        try {
          follower.propose(GROUP, putEntry(followerId, tracked.seq, 'through-follower', 0));
        } catch (err) {
          tracked.forget();
          throw err;
        }
        return { outcome: tracked.outcome.then(() => 'applied', (err: { details?: string }) => `failed: ${err.details}`) };
      };
      expect(put).toThrow(LeaderUnreachableError); // a NoLeaderError: the API waits for a leader
      expect(follower.stats.proposalsToUnreachableLeader).toBe(1);
      // The caller waits for a leader as the API does (whileLeaderless), trying again every 20 ms.
      setTimeout(() => {
        down = false;
        neverUp = false;
      }, 300);
      const startedMs = Date.now();
      let outcome: Promise<string> | null = null;
      await waitFor('the write taken once the stream is up', () => {
        try {
          outcome = put().outcome;
          return true;
        } catch (err) {
          if (err instanceof NoLeaderError) return false;
          throw err;
        }
      });
      expect(await outcome!).toBe('applied');
      expect(Date.now() - startedMs).toBeLessThan(3_000);
      await waitFor('every member applied it', () => [...pair.stateMachines.values()].every((s) => s.store.range(rangeOf(Buffer.from('through-follower'))).kvs.length === 1));
      for (const s of pair.stateMachines.values()) expect(s.store.range(rangeOf(Buffer.from('through-follower'))).kvs[0].version).toBe(1);
    } finally {
      await pair.stop();
    }
  }, 20_000);
});
