// The write a member forwards to a member hosting its shard (the ShardKv RPC's `write`): the Raft entry
// the forwarding member would have proposed, as bytes, with proposer and seq left 0 for the host to set.
// Owns only that round trip, so the host proposes exactly the entry the forwarding member built — the
// client's request, its caller (identity and token revision) and the lease generations read for it —
// and nothing the proposer adds later (the oracle revision, a txn's reads of other shards) can ride along.
import { decodeInternalRequest, encodeInternalRequest, type InternalRequestBody, type LeaseGeneration } from './request-codec.ts';
import type { Caller } from './auth-wire.ts';

export type ForwardedBody = InternalRequestBody & { lease_generations?: LeaseGeneration[] };

export function encodeForwardedEntry(body: ForwardedBody, caller: Caller | undefined): Uint8Array {
  return encodeInternalRequest({ proposer: '0', seq: '0', ...body, ...(caller ? { caller } : {}) });
}

/** The body and caller of a forwarded entry (caller undefined: the server's own work). */
export function decodeForwardedEntry(entry: Uint8Array): { body: ForwardedBody; caller: Caller | undefined } {
  const decoded = decodeInternalRequest(entry);
  const { proposer: _proposer, seq: _seq, revision: _revision, txn_reads: _reads, caller, ...body } = decoded;
  return { body: body as ForwardedBody, caller: caller ?? undefined };
}
