// Forwarding a single-shard KV operation from a member that does not host the shard to one that does
// (the ShardKv peer RPC, shard-kv-wire.ts). Owns which member is asked, in which order, and when a
// failed attempt may be tried on the next member; the host executes (server/api/shard-kv-host.ts).
//
// Safe because:
//   - nothing waits past the request's deadline: every attempt carries it (reads: a part of it, so a
//     host that stops answering leaves time for the next), and a member that is down is found out in
//     at most CONNECT_WAIT_MS (peer-shard-rpc.ts) and asked last for a while after;
//   - a write is never executed twice: it is sent to the next member only when the previous one
//     certainly did not execute it (not connected, so never sent; or answered "not hosted here"). A
//     write sent whose answer never came fails with etcd's "request timed out, possibly due to
//     connection lost", as a client of etcd sees when its member dies mid-request; reads, which change
//     nothing, are simply asked again elsewhere;
//   - what the host answers (a result, or etcd's error code and text) is the client's answer, unchanged.
// The member that answered, or the leader it named when that is a candidate, is asked first next time.
import { ETCD_ERRORS, grpcError, type EtcdErrorSpec } from '../etcd/errors.ts';
import type { NodeId } from '../raft/types.ts';
import type { ShardKvOutcome } from './peer-shard-rpc.ts';
import type { ShardKvAnswer, ShardKvOp, ShardKvRequest } from './shard-kv-wire.ts';

/** After a member was found down (or lost an answer), it is asked last for this long. */
export const DOWN_FOR_MS = 3_000;
/** Pause between rounds over every candidate when none could serve (a shard between placements). */
const ROUND_PAUSE_MS = 50;
/** A read attempt gets at least this long, or half of what remains, whichever is more (capped by the deadline). */
const MIN_READ_ATTEMPT_MS = 1_000;

/** The answers a forward resolves with (an `error` answer is thrown as the client's gRPC error). */
export type ForwardedAnswer = Extract<ShardKvAnswer, { kind: 'done' } | { kind: 'beyond-applied' }>;

export interface ShardForwarderOptions {
  selfId: NodeId;
  /** The members believed to host the group (this member among them or not). */
  candidates: (groupId: number) => readonly NodeId[];
  /** One attempt on one member, waiting for its answer until `callDeadlineMs` (shardKvOnPeer); never rejects. */
  send: (to: NodeId, request: ShardKvRequest, callDeadlineMs: number) => Promise<ShardKvOutcome>;
  now?: () => number;
}

/**
 * The order to ask `candidates` in: the preferred one first, then those not recently down, then those
 * recently down (each group in the candidates' own order); never `self`. Pure.
 */
export function candidateOrder(candidates: readonly NodeId[], self: NodeId, preferred: NodeId | undefined, downUntilMs: ReadonlyMap<NodeId, number>, nowMs: number): NodeId[] {
  const others = [...new Set(candidates)].filter((m) => m !== self && m !== 0);
  const down = (m: NodeId): boolean => (downUntilMs.get(m) ?? 0) > nowMs;
  const first = preferred !== undefined && others.includes(preferred) && !down(preferred) ? [preferred] : [];
  const rest = others.filter((m) => !first.includes(m));
  return [...first, ...rest.filter((m) => !down(m)), ...rest.filter(down)];
}

/** What to do after one attempt. Pure. */
export type AttemptVerdict =
  | { readonly kind: 'answer' }
  | { readonly kind: 'next'; readonly down: boolean }
  | { readonly kind: 'fail'; readonly error: EtcdErrorSpec };

export function judgeAttempt(outcome: ShardKvOutcome, op: ShardKvOp['kind']): AttemptVerdict {
  switch (outcome.kind) {
    case 'done':
    case 'beyond-applied':
    case 'error':
      return { kind: 'answer' };
    case 'not-hosted':
      return { kind: 'next', down: false };
    case 'unreachable':
      return { kind: 'next', down: true };
    case 'lost':
      // A read changes nothing: ask the next member (one that stopped answering is asked last for a
      // while; a slow one is not). A write may have been executed: never twice.
      if (op !== 'write') return { kind: 'next', down: !outcome.deadline };
      return { kind: 'fail', error: outcome.deadline ? ETCD_ERRORS.TIMEOUT : ETCD_ERRORS.TIMEOUT_DUE_TO_CONNECTION_LOST };
  }
}

export class ShardForwarder {
  private readonly opts: ShardForwarderOptions;
  private readonly now: () => number;
  /** Per group: the member to ask first (the last that answered, or the leader it named). */
  private readonly preferred = new Map<number, NodeId>();
  private readonly downUntilMs = new Map<NodeId, number>();
  readonly stats = { forwards: 0, attempts: 0, notHosted: 0, unreachable: 0, lost: 0 };

  constructor(opts: ShardForwarderOptions) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
  }

  /**
   * `request` executed on a member hosting its shard: its `done` or `beyond-applied` answer. Throws the
   * host's error (etcd's code and text), or etcd's timeout errors when no member answered in time.
   */
  async forward(request: ShardKvRequest): Promise<ForwardedAnswer> {
    this.stats.forwards++;
    const { groupId, deadlineMs } = request;
    let lastFailure: EtcdErrorSpec = ETCD_ERRORS.TIMEOUT;
    while (this.now() < deadlineMs) {
      const order = candidateOrder(this.opts.candidates(groupId), this.opts.selfId, this.preferred.get(groupId), this.downUntilMs, this.now());
      // A leader named by an answer is asked next, once per round.
      const hinted = new Set<NodeId>();
      for (let i = 0; i < order.length && this.now() < deadlineMs; i++) {
        const to = order[i];
        // The host works until the request's deadline; a read stops waiting for it sooner (a host that
        // went silent), leaving time to ask the next.
        const callDeadlineMs = request.op.kind === 'write' ? deadlineMs : this.readAttemptDeadline(deadlineMs);
        this.stats.attempts++;
        const outcome = await this.opts.send(to, request, callDeadlineMs);
        const verdict = judgeAttempt(outcome, request.op.kind);
        if (verdict.kind === 'fail') {
          this.markDown(to);
          throw grpcError(verdict.error);
        }
        if (verdict.kind === 'answer') {
          const answer = outcome as ShardKvAnswer;
          this.downUntilMs.delete(to);
          const leader = answer.leaderId;
          this.preferred.set(groupId, leader !== 0 && leader !== this.opts.selfId && order.includes(leader) ? leader : to);
          if (answer.kind === 'error') throw grpcError({ code: answer.code, message: answer.message });
          return answer as ForwardedAnswer;
        }
        if (outcome.kind === 'not-hosted') this.stats.notHosted++;
        else if (outcome.kind === 'unreachable') this.stats.unreachable++;
        else this.stats.lost++;
        if (verdict.down) {
          this.markDown(to);
          lastFailure = outcome.kind === 'lost' ? ETCD_ERRORS.TIMEOUT_DUE_TO_CONNECTION_LOST : ETCD_ERRORS.TIMEOUT;
        }
        if (this.preferred.get(groupId) === to) this.preferred.delete(groupId);
        const hint = 'leaderId' in outcome ? outcome.leaderId : 0;
        const at = order.indexOf(hint);
        if (hint !== 0 && at > i + 1 && !hinted.has(hint)) {
          hinted.add(hint);
          order.splice(at, 1);
          order.splice(i + 1, 0, hint);
        }
      }
      const left = deadlineMs - this.now();
      if (left <= 0) break;
      await new Promise((r) => setTimeout(r, Math.min(ROUND_PAUSE_MS, left)));
    }
    throw grpcError(lastFailure);
  }

  private readAttemptDeadline(deadlineMs: number): number {
    const now = this.now();
    return Math.min(deadlineMs, now + Math.max(MIN_READ_ATTEMPT_MS, (deadlineMs - now) / 2));
  }

  private markDown(member: NodeId): void {
    this.downUntilMs.set(member, this.now() + DOWN_FOR_MS);
  }
}
