// TEST ONLY: a PeerTransport for tests that exercise the peer streams alone — no snapshots, no removals,
// silent logs, an 8 MiB frame budget; each test names the member, its address, its peers and what else
// it needs (onMessages, channel options).
import pino from 'pino';
import { PeerTransport, type PeerTransportOptions } from './peer-transport.ts';

export function testPeerTransport(opts: Pick<PeerTransportOptions, 'clusterId' | 'memberId' | 'listenAddress' | 'peers'> & Partial<PeerTransportOptions>): PeerTransport {
  return new PeerTransport({
    onMessages: () => {},
    logger: pino({ level: 'silent' }),
    maxFrameBytes: 8 * 1024 * 1024,
    snapshots: { dir: '/nonexistent', chunks: async function* () {}, report: () => {}, received: () => {} },
    clusterInfo: () => '{}',
    isRemoved: () => false,
    onRemoved: () => {},
    ...opts,
  });
}
