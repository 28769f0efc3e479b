// Lock and Election edge cases over raw gRPC, against a real etcd and against Synod: the same
// requests must get the same answers (statuses, texts, key shapes), ids and revisions masked.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { etcdClients } from '../server/etcd/proto.ts';
import { ProcessCluster } from './support/process-cluster.ts';
import { EtcdReference } from './support/etcd-reference.ts';

type Unary = (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

class Api {
  private readonly clients: Record<string, grpc.Client>;
  constructor(endpoint: string) {
    const c = etcdClients();
    const creds = grpc.credentials.createInsecure();
    this.clients = { Lock: new c.Lock(endpoint, creds), Election: new c.Election(endpoint, creds), Lease: new c.Lease(endpoint, creds) };
  }
  call(service: string, method: string, req: object, timeoutMs = 3_000): Promise<Record<string, unknown>> {
    const client = this.clients[service];
    const fn = (client as unknown as Record<string, Unary>)[method].bind(client);
    return new Promise((resolve) => {
      fn(req, { deadline: Date.now() + timeoutMs }, (err, res) =>
        resolve(err ? { code: err.code, details: err.details } : (res as Record<string, unknown>)),
      );
    });
  }
  close(): void {
    for (const c of Object.values(this.clients)) c.close();
  }
}

/**
 * Runs one scripted conversation and renders every answer as comparable text. `gappedRevisions`: a sharded
 * cluster's revisions come from one oracle with gaps (docs/sharding.md), so header revisions are masked and
 * every other revision is replaced by the order in which it first appeared — the same relations (same
 * write, older, newer) must hold on both.
 */
async function conversation(api: Api, gappedRevisions = false): Promise<string[]> {
  const out: string[] = [];
  const order = new Map<string, number>();
  const token = (rev: string): string => {
    if (!order.has(rev)) order.set(rev, order.size + 1);
    return `R${order.get(rev)}`;
  };
  const revisions = (text: string): string =>
    gappedRevisions
      ? text.replace(/"revision":"\d+"/g, '"revision":"<header>"').replace(/"(rev|create_revision|mod_revision)":"(\d+)"/g, (_m, field: string, rev: string) => `"${field}":"${token(rev)}"`)
      : text;
  const show = (label: string, v: unknown): void => {
    const text = JSON.stringify(v, (_k, x: unknown) => {
      if (x && typeof x === 'object' && (x as { type?: string }).type === 'Buffer') return Buffer.from((x as { data: number[] }).data).toString();
      return x;
    });
    out.push(
      `${label} ${revisions(text)
        .replace(/"(cluster_id|member_id|raft_term)":"\d+"/g, '"$1":"X"')
        .replace(/\/[0-9a-f]{8,16}"/g, '/<lease>"')
        .replace(/"(lease|ID)":"\d+"/g, '"$1":"<lease>"')}`,
    );
  };
  const b = (s: string): Buffer => Buffer.from(s);
  const grant = (await api.call('Lease', 'LeaseGrant', { TTL: 30 })) as { ID: string };
  show('lock', await api.call('Lock', 'Lock', { name: b('n1'), lease: grant.ID }));
  show('lock again, same lease (keeps its place)', await api.call('Lock', 'Lock', { name: b('n1'), lease: grant.ID }));
  show('lock empty name', await api.call('Lock', 'Lock', { name: Buffer.alloc(0), lease: grant.ID }));
  show('lock unknown lease', await api.call('Lock', 'Lock', { name: b('x'), lease: 12345 }));
  show('unlock missing', await api.call('Lock', 'Unlock', { key: b('nope') }));
  show('unlock empty', await api.call('Lock', 'Unlock', { key: Buffer.alloc(0) }));
  show('leader when none', await api.call('Election', 'Leader', { name: b('e1') }));
  const camp = (await api.call('Election', 'Campaign', { name: b('e1'), lease: grant.ID, value: b('v1') })) as { leader: object };
  show('campaign', camp);
  show('proclaim', await api.call('Election', 'Proclaim', { leader: camp.leader, value: b('v2') }));
  show('leader', await api.call('Election', 'Leader', { name: b('e1') }));
  show('proclaim stale', await api.call('Election', 'Proclaim', { leader: { ...camp.leader, rev: 1 }, value: b('v3') }));
  show('proclaim without leader', await api.call('Election', 'Proclaim', { value: b('v3') }));
  show('resign stale', await api.call('Election', 'Resign', { leader: { ...camp.leader, rev: 1 } }));
  show('resign without leader', await api.call('Election', 'Resign', {}));
  show('resign', await api.call('Election', 'Resign', { leader: camp.leader }));
  show('leader after resign', await api.call('Election', 'Leader', { name: b('e1') }));
  show('campaign unknown lease', await api.call('Election', 'Campaign', { name: b('e2'), lease: 999, value: b('v') }));
  show('revoke', await api.call('Lease', 'LeaseRevoke', { ID: grant.ID }));
  show('revoke twice', await api.call('Lease', 'LeaseRevoke', { ID: grant.ID }));
  show('ttl of revoked', await api.call('Lease', 'LeaseTimeToLive', { ID: grant.ID, keys: true }));
  show('lock of revoked lease', await api.call('Lock', 'Lock', { name: b('n2'), lease: grant.ID }));
  return out;
}

let synod: ProcessCluster;
let etcd: EtcdReference | null = null;

beforeAll(async () => {
  etcd = EtcdReference.available() ? await EtcdReference.start() : null;
});

afterAll(async () => {
  await etcd?.stop();
});

// On a 16-shard cluster the contenders' keys live on the shards (server/api/contender-kv.ts).
describe.each([
  { name: 'one group', args: [] as string[], gapped: false },
  { name: '16 shards', args: ['--shards', '16'], gapped: true },
])('Lock and Election answer as etcd does ($name)', ({ args, gapped }) => {
  beforeAll(async () => {
    synod = await ProcessCluster.start({ size: 3, tickMs: 100, electionTimeoutMs: 1000, memberArgs: () => [...args] });
  });

  afterAll(async () => {
    await synod?.destroy();
  });

  it.skipIf(!EtcdReference.available())('the same conversation gets the same answers (etcd-server installed by make)', async () => {
    const left = new Api(etcd!.endpoint);
    const right = new Api(synod.endpointOf(0));
    try {
      const [a, b] = [await conversation(left, gapped), await conversation(right, gapped)];
      expect(b).toEqual(a);
    } finally {
      left.close();
      right.close();
    }
  });
});
