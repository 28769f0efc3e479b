// The requester's side of the revision oracle: what a shard leader uses to obtain the revisions of its
// turn's writes. Owns batching (every `next()` of one turn becomes one request, whose grant is split among
// the callers as contiguous ranges in call order; one request in flight at a time), following the
// metadata group's leader (a `not-leader` answer names it; without a name the next member is tried),
// retrying with jittered exponential backoff until the caller's deadline, and refusing grants it must
// not use:
//   - a grant of a term lower than the highest term this client has accepted a grant in is stale (an
//     older, deposed oracle answered late): using it could place revisions below ones already used;
//   - a grant not above the last revision this client accepted would break "strictly increasing".
// A refused grant is a gap, never a repeat: its revisions are simply not used. Terms are learned only
// from grants, not from `not-leader` answers, so a member with an inflated term (a failed candidate) can
// never make the real leader's grants look stale.
import type { NodeId } from '../raft/types.ts';
import type { OracleRequest, OracleResponse, OracleTransport } from './oracle-protocol.ts';

export interface OracleClientOptions {
  /** This requester's name (a shard leader's replica); one request per turn is sent under it. */
  requester: string;
  transport: OracleTransport;
  /** The members that may lead the metadata group (tried in turn when the leader is unknown). */
  members: () => readonly NodeId[];
  /** Longest one attempt waits for an answer before trying again (capped by the caller's deadline). */
  attemptTimeoutMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Uniform in [0, 1): the backoff's jitter (seeded in tests). */
  random?: () => number;
}

export interface ClientGrant {
  readonly first: number;
  readonly last: number;
  /** The oracle term that issued it. */
  readonly term: number;
}

/**
 * 'unavailable' or 'deadline' answers in a row from the member believed to lead the metadata group
 * before the client asks the others: one may be an election or a persist on the leader (worth waiting
 * for), two in a row more likely a dead member (a killed metadata leader cost 15 s of writes otherwise).
 */
const UNAVAILABLE_BEFORE_ROTATING = 2;

export class OracleDeadlineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OracleDeadlineError';
  }
}

export class OracleBadRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OracleBadRequestError';
  }
}

interface Caller {
  readonly count: number;
  readonly deadlineMs: number;
  settled: boolean;
  resolve(grant: ClientGrant): void;
  reject(err: Error): void;
}

export class OracleClient {
  private readonly opts: Required<Omit<OracleClientOptions, 'random'>> & { random: () => number };
  private waiting: Caller[] = [];
  private inFlight = false;
  private flushScheduled = false;
  private requestSeq = 0;
  private leaderHint: NodeId = 0;
  private rotation = 0;
  /** Highest term a grant was accepted in, and the last revision accepted. */
  private acceptedTerm = 0;
  private lastRevision = 0;
  readonly stats = { requests: 0, attempts: 0, grants: 0, staleGrantsRefused: 0, nonIncreasingRefused: 0, redirects: 0, timeouts: 0 };

  constructor(options: OracleClientOptions) {
    this.opts = {
      attemptTimeoutMs: 500,
      backoffMinMs: 5,
      backoffMaxMs: 200,
      random: Math.random,
      ...options,
    };
  }

  /** The highest term a grant was accepted in. */
  get term(): number {
    return this.acceptedTerm;
  }

  /** `count` revisions, strictly above every revision this client handed out before; rejects at `deadlineMs`. */
  next(count: number, deadlineMs: number): Promise<ClientGrant> {
    if (!Number.isSafeInteger(count) || count < 1) return Promise.reject(new OracleBadRequestError(`revision count must be a positive integer (got ${count})`));
    return new Promise<ClientGrant>((resolve, reject) => {
      const caller: Caller = {
        count,
        deadlineMs,
        settled: false,
        resolve: (g) => {
          if (caller.settled) return;
          caller.settled = true;
          clearTimeout(timer);
          resolve(g);
        },
        reject: (err) => {
          if (caller.settled) return;
          caller.settled = true;
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => caller.reject(new OracleDeadlineError(`no revisions from the oracle before the deadline (${this.opts.requester})`)), Math.max(0, deadlineMs - Date.now()));
      this.waiting.push(caller);
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.inFlight) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const callers = this.waiting.filter((c) => !c.settled);
    this.waiting = [];
    if (callers.length === 0 || this.inFlight) return;
    this.inFlight = true;
    try {
      const total = callers.reduce((n, c) => n + c.count, 0);
      const deadlineMs = Math.max(...callers.map((c) => c.deadlineMs));
      const grant = await this.obtain(total, deadlineMs, () => callers.some((c) => !c.settled));
      let next = grant.first;
      for (const c of callers) {
        // A caller that gave up leaves its share unused: a gap, never handed to anyone else.
        c.resolve({ first: next, last: next + c.count - 1, term: grant.term });
        next += c.count;
      }
    } catch (err) {
      for (const c of callers) c.reject(err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.inFlight = false;
      if (this.waiting.length > 0) this.scheduleFlush();
    }
  }

  private nextTarget(): NodeId {
    if (this.leaderHint !== 0) return this.leaderHint;
    const members = this.opts.members();
    if (members.length === 0) throw new Error('oracle client: no members to ask');
    return members[this.rotation++ % members.length];
  }

  /** One request's worth of revisions, retried until `deadlineMs` or until nobody waits any more. */
  private async obtain(count: number, deadlineMs: number, stillWanted: () => boolean): Promise<ClientGrant> {
    this.stats.requests++;
    let failures = 0;
    /** Consecutive 'unavailable'/'deadline' answers (see UNAVAILABLE_BEFORE_ROTATING). */
    let failuresHere = 0;
    for (;;) {
      if (!stillWanted()) throw new OracleDeadlineError('every caller gave up');
      const now = Date.now();
      if (now >= deadlineMs) throw new OracleDeadlineError(`no revisions from the oracle before the deadline (${this.opts.requester})`);
      const target = this.nextTarget();
      const request: OracleRequest = { requester: this.opts.requester, requestId: ++this.requestSeq, count, deadlineMs: Math.min(deadlineMs, now + this.opts.attemptTimeoutMs) };
      this.stats.attempts++;
      const response = await this.attempt(target, request);
      let backoff = true;
      if (response === null || response.requestId !== request.requestId) {
        this.stats.timeouts++;
        this.leaderHint = 0; // the target may be down or cut off: try the next member
      } else if (response.kind === 'granted') {
        if (response.term < this.acceptedTerm) {
          this.stats.staleGrantsRefused++;
          this.leaderHint = 0;
        } else if (response.first <= this.lastRevision || response.last - response.first + 1 !== count) {
          this.stats.nonIncreasingRefused++;
          this.leaderHint = 0;
        } else {
          this.acceptedTerm = response.term;
          this.lastRevision = response.last;
          this.leaderHint = target;
          this.stats.grants++;
          return { first: response.first, last: response.last, term: response.term };
        }
      } else if (response.kind === 'not-leader') {
        this.stats.redirects++;
        this.leaderHint = response.leaderId !== target ? response.leaderId : 0;
        backoff = this.leaderHint === 0; // a named leader is worth asking at once
      } else if (response.kind === 'bad-request') {
        throw new OracleBadRequestError(response.reason);
      } else if (++failuresHere >= UNAVAILABLE_BEFORE_ROTATING && target === this.leaderHint) {
        // 'unavailable' / 'deadline' again from the member believed to lead: it may be down (a transport
        // that cannot connect answers 'unavailable' at once) — ask the others, one of which leads now.
        this.leaderHint = 0;
      }
      if (response !== null && response.kind !== 'unavailable' && response.kind !== 'deadline') failuresHere = 0;
      // 'unavailable' and 'deadline': the same member may succeed shortly (an election, a persist).
      if (backoff) {
        failures++;
        const capMs = Math.min(this.opts.backoffMaxMs, this.opts.backoffMinMs * 2 ** Math.min(failures, 16));
        const waitMs = Math.min(Math.floor(capMs * this.opts.random()), Math.max(0, deadlineMs - Date.now()));
        if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
      }
    }
  }

  /** One request to one member; null when no answer arrives by the request's own deadline. */
  private attempt(target: NodeId, request: OracleRequest): Promise<OracleResponse | null> {
    return new Promise<OracleResponse | null>((resolve) => {
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        resolve(null);
      }, Math.max(0, request.deadlineMs - Date.now()));
      this.opts.transport.request(target, request).then(
        (response) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          resolve(response);
        },
        () => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          resolve(null);
        },
      );
    });
  }
}
