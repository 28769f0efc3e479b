// Barrel for the raft core: import from here outside server/raft.
export type * from './types.ts';
export { RawNode, ProposalDroppedError, RaftInvariantError } from './raw-node.ts';
export type { RaftStatus } from './raw-node.ts';
