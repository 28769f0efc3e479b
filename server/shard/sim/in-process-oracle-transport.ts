// An OracleTransport inside one process, for tests: each request and each answer is delayed (setTimeout,
// so the member simulation's clock drives it), may be dropped (the caller then hears nothing, as over a
// broken stream), and crosses only between connected members. The real transport (the peer gRPC port)
// comes later; this one keeps both ends honest about lost and late messages meanwhile.
import type { NodeId } from '../../raft/types.ts';
import type { OracleRequest, OracleResponse, OracleServer, OracleTransport } from '../oracle-protocol.ts';

export interface InProcessOracleTransportOptions {
  /** Where the requester runs (partitions are decided between members). */
  from: NodeId;
  /** The oracle host on a member, or null while it is down. */
  server: (to: NodeId) => OracleServer | null;
  delayMs: () => number;
  /** Whether to lose this message (drawn once per request and once per answer). */
  drop: () => boolean;
  connected?: (a: NodeId, b: NodeId) => boolean;
  /** Runs the host's handling as that member's process (the simulation ties timers to it). */
  runAs?: <T>(to: NodeId, fn: () => T) => T;
}

export class InProcessOracleTransport implements OracleTransport {
  private readonly opts: InProcessOracleTransportOptions;
  readonly stats = { sent: 0, dropped: 0, answered: 0 };

  constructor(options: InProcessOracleTransportOptions) {
    this.opts = options;
  }

  request(to: NodeId, request: OracleRequest): Promise<OracleResponse> {
    const { from, server, delayMs, drop } = this.opts;
    const connected = this.opts.connected ?? (() => true);
    const runAs = this.opts.runAs ?? (<T>(_to: NodeId, fn: () => T): T => fn());
    this.stats.sent++;
    return new Promise<OracleResponse>((resolve) => {
      if (drop()) {
        this.stats.dropped++;
        return;
      }
      // As on the wire: the time left, which the host adds to its own clock (shard-peer-wire.ts).
      const leftMs = request.deadlineMs - Date.now();
      const copy: OracleRequest = { ...request };
      setTimeout(() => {
        const host = server(to);
        if (host === null || !connected(from, to)) {
          this.stats.dropped++;
          return;
        }
        void runAs(to, () =>
          host.handle({ ...copy, deadlineMs: Date.now() + leftMs }).then((response) => {
            if (drop()) {
              this.stats.dropped++;
              return;
            }
            setTimeout(() => {
              if (!connected(from, to)) {
                this.stats.dropped++;
                return;
              }
              this.stats.answered++;
              resolve({ ...response });
            }, delayMs());
          }),
        );
      }, delayMs());
    });
  }
}
