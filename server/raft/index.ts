// Barrel for the raft core: import from here outside server/raft.
export type * from './types.ts';
export {
  RawNode,
  ProposalDroppedError,
  RaftInvariantError,
  ConfChangeInProgressError,
  encodeConfChange,
  decodeConfChange,
  LEARNER_READY_RATIO,
} from './raw-node.ts';
export type { RaftStatus, FollowerProgress } from './raw-node.ts';
export type { ProgressState } from './progress.ts';
