// Error types raised by the raft core. ProposalDroppedError is a normal, expected outcome
// (no leader / transfer in progress) that the server maps to "etcdserver: no leader";
// RaftInvariantError means the core or its driver is broken and must never be swallowed.

/** A proposal or ReadIndex request could not be accepted right now (e.g. no known leader). */
export class ProposalDroppedError extends Error {
  constructor(message = 'raft proposal dropped') {
    super(message);
    this.name = 'ProposalDroppedError';
  }
}

/** The leader refuses a membership change while an earlier one is not yet applied (etcd drops
 *  it silently; we throw so the server can answer the client). Also a ProposalDroppedError. */
export class ConfChangeInProgressError extends ProposalDroppedError {
  constructor(message = 'raft: a configuration change is already in progress') {
    super(message);
    this.name = 'ConfChangeInProgressError';
  }
}

/** The leader refuses a proposal while its uncommitted entries exceed maxUncommittedEntriesBytes
 *  (backpressure: the server answers "etcdserver: too many requests"). Also a ProposalDroppedError. */
export class UncommittedLimitError extends ProposalDroppedError {
  constructor(message = 'raft: too many uncommitted bytes') {
    super(message);
    this.name = 'UncommittedLimitError';
  }
}

/** A safety invariant was violated; the node must stop rather than limp on. */
export class RaftInvariantError extends Error {
  constructor(message: string) {
    super(`raft invariant violated: ${message}`);
    this.name = 'RaftInvariantError';
  }
}

/** Throws RaftInvariantError. Call sites guard with `if (!(cond)) fail(...)` so the message is
 *  only built on failure (no closure or string allocation on the hot path). */
export function fail(detail: string): never {
  throw new RaftInvariantError(detail);
}
