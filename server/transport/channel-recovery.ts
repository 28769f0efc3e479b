// How fast a gRPC channel finds a member again after its pod comes back under a new IP: the channel
// options every long-lived channel to a member uses (peer streams here, the operator's admin calls in
// operator/etcd/etcd-admin.ts), kept in one place so both recover the same way.
//
// Why these values (grpc-js 1.14, build/src/resolver-dns.js and resolving-load-balancer.js):
// - A channel re-resolves its name only when a connection fails, and then at most once per
//   `grpc.dns_min_time_between_resolutions_ms` (default 30 s). A pod recreated under a new IP was
//   unreachable for up to 30 s because the lookup made while it was down still returned the old IP
//   (or nothing) and the next one was not allowed for 30 s.
// - Failed lookups (the name does not resolve yet while the pod is Pending) are retried with the
//   reconnect backoff, which grows ×1.6 up to `grpc.max_reconnect_backoff_ms` (default 120 s): a
//   channel opened before the name existed kept failing for 50–70 s. The same cap bounds the wait
//   between connection attempts to an address that refuses.
// Re-resolving at most every 500 ms and backing off to at most 1 s puts recovery under 2 s; the cost is
// a DNS lookup per second per channel, and only while its member is unreachable.
import type { ChannelOptions } from '@grpc/grpc-js';

export const RECOVERY_CHANNEL_OPTIONS = {
  'grpc.dns_min_time_between_resolutions_ms': 500,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1_000,
} as const satisfies ChannelOptions;
