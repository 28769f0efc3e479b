// What a shard leader (the requester) and the metadata group's leader (the oracle host) say to each other,
// and the transport between them as an interface: a later step carries it on the peer gRPC port; tests
// carry it in process, with delays and drops. Owns nothing but the shapes, so both ends and every
// transport agree on them.
import type { NodeId } from '../raft/types.ts';

export interface OracleRequest {
  /** Who asks (a shard leader's replica): one batch per turn per requester. */
  readonly requester: string;
  /** Increases with every request the requester sends; an answer names the request it answers. */
  readonly requestId: number;
  /** Revisions wanted: the requester's whole turn, batched. */
  readonly count: number;
  /** Absolute time (ms, Date.now()) after which the requester no longer waits: the host drops it then. */
  readonly deadlineMs: number;
}

export type OracleResponse =
  | { readonly kind: 'granted'; readonly requestId: number; readonly first: number; readonly last: number; readonly term: number }
  /** Not the metadata group's leader (or deposed): go to `leaderId` (0 when unknown). `term` is the host's. */
  | { readonly kind: 'not-leader'; readonly requestId: number; readonly leaderId: NodeId; readonly term: number }
  /** The leader could not confirm itself or persist a mark in time (no quorum, busy): retry, maybe elsewhere. */
  | { readonly kind: 'unavailable'; readonly requestId: number; readonly reason: string }
  /** The request itself is wrong (count not a positive integer): retrying will not help. */
  | { readonly kind: 'bad-request'; readonly requestId: number; readonly reason: string }
  /** The deadline passed before the host could answer. */
  | { readonly kind: 'deadline'; readonly requestId: number };

/** Carries one request to the oracle host on member `to` and its answer back; may never settle (a lost message). */
export interface OracleTransport {
  request(to: NodeId, request: OracleRequest): Promise<OracleResponse>;
}

/** The serving side a transport delivers requests to. */
export interface OracleServer {
  handle(request: OracleRequest): Promise<OracleResponse>;
}
