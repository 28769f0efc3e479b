// Debian's real etcdctl against 3 real Synod processes: the commands a user types, with etcd's answers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';

let cluster: ProcessCluster;
let ep: string;

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 3 });
  ep = cluster.endpoints;
});

afterAll(async () => {
  await cluster?.destroy();
});

/** Starts `etcdctl watch ...`, collects stdout until `until` matches, then kills it. */
function watchUntil(args: string[], until: (out: string) => boolean, timeoutMs = 10_000): { done: Promise<string>; started: Promise<void> } {
  return runUntil(['watch', ...args], until, timeoutMs);
}

/**
 * Starts a long-running etcdctl command, collects stdout until `until` matches, then kills it.
 * stdout arrives in arbitrary chunks: `until` must match the whole expected tail (line ends included).
 */
function runUntil(args: string[], until: (out: string) => boolean, timeoutMs = 10_000): { done: Promise<string>; started: Promise<void> } {
  const child = spawn('etcdctl', [`--endpoints=${ep}`, ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
  let out = '';
  const started = new Promise<void>((resolve) => setTimeout(resolve, 700));
  const done = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`watch ${args.join(' ')} timed out; got: ${JSON.stringify(out)}`));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (until(out)) {
        clearTimeout(timer);
        child.kill('SIGKILL');
        resolve(out);
      }
    });
  });
  return { done, started };
}

describe('etcdctl against a 3-member Synod cluster', () => {
  it('put and get a single key', async () => {
    expect(await etcdctlOk(ep, ['put', 'foo', 'bar'])).toBe('OK\n');
    expect(await etcdctlOk(ep, ['get', 'foo'])).toBe('foo\nbar\n');
    expect(await etcdctlOk(ep, ['get', 'missing'])).toBe('');
  });

  it('get --prefix, --from-key, --limit, --keys-only, --print-value-only, --count-only', async () => {
    for (const [k, v] of [['p/a', '1'], ['p/b', '2'], ['p/c', '3'], ['q', '4']]) await etcdctlOk(ep, ['put', k, v]);
    expect(await etcdctlOk(ep, ['get', '--prefix', 'p/'])).toBe('p/a\n1\np/b\n2\np/c\n3\n');
    expect(await etcdctlOk(ep, ['get', '--prefix', 'p/', '--limit=2'])).toBe('p/a\n1\np/b\n2\n');
    expect(await etcdctlOk(ep, ['get', '--from-key', 'p/c'])).toBe('p/c\n3\nq\n4\n');
    expect(await etcdctlOk(ep, ['get', '--prefix', 'p/', '--keys-only'])).toBe('p/a\n\np/b\n\np/c\n\n');
    expect(await etcdctlOk(ep, ['get', 'p/b', '--print-value-only'])).toBe('2\n');
    expect(await etcdctlOk(ep, ['get', '--prefix', 'p/', '--limit=1', '-w', 'json'])).toMatch(/"more":true,"count":3/);
    expect(await etcdctlOk(ep, ['get', 'p/a', 'p/c'])).toBe('p/a\n1\np/b\n2\n');
    expect(await etcdctlOk(ep, ['get', '--prefix', 'p/', '--sort-by=KEY', '--order=DESCEND'])).toBe('p/c\n3\np/b\n2\np/a\n1\n');
  });

  it('get --rev reads an older revision', async () => {
    const first = JSON.parse(await etcdctlOk(ep, ['put', 'rev-key', 'v1', '-w', 'json'])) as { header: { revision: number } };
    await etcdctlOk(ep, ['put', 'rev-key', 'v2']);
    expect(await etcdctlOk(ep, ['get', 'rev-key', `--rev=${first.header.revision}`])).toBe('rev-key\nv1\n');
    expect(await etcdctlOk(ep, ['get', 'rev-key'])).toBe('rev-key\nv2\n');
    const json = JSON.parse(await etcdctlOk(ep, ['get', 'rev-key', '-w', 'json'])) as {
      kvs: Array<{ create_revision: number; mod_revision: number; version: number }>;
    };
    expect(json.kvs[0].create_revision).toBe(first.header.revision);
    expect(json.kvs[0].mod_revision).toBe(first.header.revision + 1);
    expect(json.kvs[0].version).toBe(2);
  });

  it('del a key, a prefix, and with --prev-kv', async () => {
    await etcdctlOk(ep, ['put', 'd/1', 'x']);
    await etcdctlOk(ep, ['put', 'd/2', 'y']);
    await etcdctlOk(ep, ['put', 'd/3', 'z']);
    expect(await etcdctlOk(ep, ['del', 'd/1'])).toBe('1\n');
    expect(await etcdctlOk(ep, ['del', 'd/1'])).toBe('0\n');
    expect(await etcdctlOk(ep, ['del', '--prev-kv', 'd/2'])).toBe('1\nd/2\ny\n');
    expect(await etcdctlOk(ep, ['del', '--prefix', 'd/'])).toBe('1\n');
    expect(await etcdctlOk(ep, ['get', '--prefix', 'd/'])).toBe('');
  });

  it('txn in the interactive compare form takes the success or failure branch', async () => {
    await etcdctlOk(ep, ['put', 'tx-key', 'old']);
    const success = await etcdctlOk(ep, ['txn'], {
      input: 'value("tx-key") = "old"\n\nput tx-key new\nget tx-key\n\nput tx-other failed\n\n',
    });
    expect(success).toBe('SUCCESS\n\nOK\n\ntx-key\nnew\n');
    const failure = await etcdctlOk(ep, ['txn'], {
      input: 'value("tx-key") = "old"\n\nput tx-key newer\n\nput tx-other failed\n\n',
    });
    expect(failure).toBe('FAILURE\n\nOK\n');
    expect(await etcdctlOk(ep, ['get', 'tx-other'])).toBe('tx-other\nfailed\n');
    const ver = await etcdctlOk(ep, ['txn'], { input: 'version("tx-key") > "1"\nmod("tx-missing") = "0"\n\nget tx-key\n\n\n' });
    expect(ver).toBe('SUCCESS\n\ntx-key\nnew\n');
  });

  it('watch follows live events', async () => {
    const w = watchUntil(['live-key'], (out) => out.endsWith('second\n'));
    await w.started;
    await etcdctlOk(ep, ['put', 'live-key', 'first']);
    await etcdctlOk(ep, ['put', 'live-key', 'second']);
    expect(await w.done).toBe('PUT\nlive-key\nfirst\nPUT\nlive-key\nsecond\n');
  });

  it('watch --rev replays history, then a prefix watch sees deletes', async () => {
    const r1 = JSON.parse(await etcdctlOk(ep, ['put', 'hist/a', '1', '-w', 'json'])) as { header: { revision: number } };
    await etcdctlOk(ep, ['put', 'hist/b', '2']);
    await etcdctlOk(ep, ['del', 'hist/a']);
    const w = watchUntil([`--rev=${r1.header.revision}`, '--prefix', 'hist/'], (out) => out.includes('DELETE\nhist/a\n\n'));
    expect(await w.done).toBe('PUT\nhist/a\n1\nPUT\nhist/b\n2\nDELETE\nhist/a\n\n');
  });

  it('compaction makes old revisions unavailable with etcd\'s error', async () => {
    const r1 = JSON.parse(await etcdctlOk(ep, ['put', 'cmp', 'a', '-w', 'json'])) as { header: { revision: number } };
    const r2 = JSON.parse(await etcdctlOk(ep, ['put', 'cmp', 'b', '-w', 'json'])) as { header: { revision: number } };
    expect(await etcdctlOk(ep, ['compaction', String(r2.header.revision)])).toBe(`compacted revision ${r2.header.revision}\n`);
    const old = await etcdctl(ep, ['get', 'cmp', `--rev=${r1.header.revision}`]);
    expect(old.code).not.toBe(0);
    expect(old.stderr).toContain('etcdserver: mvcc: required revision has been compacted');
    expect(await etcdctlOk(ep, ['get', 'cmp', `--rev=${r2.header.revision}`])).toBe('cmp\nb\n');
    const again = await etcdctl(ep, ['compaction', String(r1.header.revision)]);
    expect(again.stderr).toContain('etcdserver: mvcc: required revision has been compacted');
    const future = await etcdctl(ep, ['get', 'cmp', '--rev=99999999']);
    expect(future.stderr).toContain('etcdserver: mvcc: required revision is a future revision');
  });

  it('endpoint status reports one leader, the same term and the member ids', async () => {
    const out = JSON.parse(await etcdctlOk(ep, ['endpoint', 'status', '-w', 'json'])) as Array<{
      Endpoint: string;
      Status: { header: { member_id: number; cluster_id: number; raft_term: number }; leader: number; raftTerm: number; version: string };
    }>;
    expect(out).toHaveLength(3);
    const leaders = new Set(out.map((s) => s.Status.leader));
    expect(leaders.size).toBe(1);
    const memberIds = new Set(out.map((s) => s.Status.header.member_id));
    expect(memberIds.size).toBe(3);
    expect(memberIds.has([...leaders][0])).toBe(true);
    expect(new Set(out.map((s) => s.Status.raftTerm)).size).toBe(1);
    expect(new Set(out.map((s) => s.Status.header.cluster_id)).size).toBe(1);
    const table = await etcdctlOk(ep, ['endpoint', 'status', '-w', 'table']);
    expect(table).toContain('IS LEADER');
    const health = await etcdctl(ep, ['endpoint', 'health']);
    expect(health.code).toBe(0);
    expect(health.stderr.match(/is healthy/g)).toHaveLength(3);
  });

  it('--cluster commands and http:// endpoints work: etcdctl 3.4 sends the URL as :authority, which Node\'s HTTP/2 refuses and etcd takes', async () => {
    // Member list gives the client URLs --cluster dials; each member publishes them through the log.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await etcdctlOk(ep, ['member', 'list'])).split('\n').filter((l) => l.includes(', http://127.0.0.1:')).length < 3) {
      await new Promise((r) => setTimeout(r, 200));
    }
    const status = JSON.parse(await etcdctlOk(ep, ['endpoint', 'status', '--cluster', '-w', 'json'])) as Array<{ Endpoint: string; Status: { leader: number } }>;
    expect(status.map((s) => s.Endpoint).sort()).toEqual(cluster.members.map((m) => `http://127.0.0.1:${m.clientPort}`).sort());
    expect(new Set(status.map((s) => s.Status.leader)).size).toBe(1);
    const health = await etcdctl(ep, ['endpoint', 'health', '--cluster']);
    expect(health.code, health.stderr).toBe(0);
    expect(health.stderr.match(/http:\/\/127\.0\.0\.1:\d+ is healthy/g)).toHaveLength(3);
    const hashes = (await etcdctlOk(ep, ['endpoint', 'hashkv', '--cluster'])).trim().split('\n');
    expect(hashes).toHaveLength(3);
    expect(new Set(hashes.map((l) => l.split(', ')[1])).size).toBe(1);
    expect((await etcdctlOk(ep, ['defrag', '--cluster'])).match(/Finished defragmenting etcd member\[http:/g)).toHaveLength(3);
    const one = `http://127.0.0.1:${cluster.members[0].clientPort}`;
    expect(await etcdctlOk(one, ['endpoint', 'status'])).toContain(`${one}, `);
    // Those of status, hashkv, defrag and the http:// endpoint reached member 0 repaired, and were counted.
    const metrics = await (await fetch(`http://127.0.0.1:${cluster.members[0].metricsPort}/metrics`)).text();
    expect(Number(/^synod_client_connections_authority_repaired_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(4);
  });

  it('elect campaigns and elect -l observes the leader and its successor', async () => {
    const observer = runUntil(['elect', '-l', 'ballot'], (out) => out.includes('second\n'), 20_000);
    await observer.started;
    const first = runUntil(['elect', 'ballot', 'first'], (out) => out.includes('first\n'));
    const firstOut = await first.done; // killed once elected: its session lease (60 s) still leads
    expect(firstOut).toMatch(/^ballot\/[0-9a-f]+\nfirst\n$/);
    const key = firstOut.split('\n')[0];
    // Resign the first leader by revoking its session's lease; the second candidate takes over.
    const lease = (await etcdctlOk(ep, ['get', key, '-w', 'fields'])).match(/"Lease" : (\d+)/)![1];
    const second = runUntil(['elect', 'ballot', 'second'], (out) => out.includes('second\n'));
    await new Promise((r) => setTimeout(r, 500));
    await etcdctlOk(ep, ['lease', 'revoke', BigInt(lease).toString(16)]);
    expect(await second.done).toMatch(/^ballot\/[0-9a-f]+\nsecond\n$/);
    const seen = await observer.done;
    expect(seen).toMatch(/^ballot\/[0-9a-f]+\nfirst\nballot\/[0-9a-f]+\nsecond\n$/);
  });

  it('member list shows every member with its peer and client URLs', async () => {
    const deadline = Date.now() + 10_000;
    let lines: string[] = [];
    while (Date.now() < deadline) {
      lines = (await etcdctlOk(ep, ['member', 'list'])).trim().split('\n');
      // Client URLs appear once each member has published them through the log.
      if (lines.length === 3 && lines.every((l) => l.split(', ')[4]?.startsWith('http'))) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(lines).toHaveLength(3);
    for (const [i, m] of cluster.members.entries()) {
      const line = lines.find((l) => l.includes(`, ${m.name}, `));
      expect(line, `member ${i} in ${lines.join('\n')}`).toBeDefined();
      expect(line).toContain(`http://127.0.0.1:${m.peerPort}`);
      expect(line).toContain(`http://127.0.0.1:${m.clientPort}`);
      expect(line).toMatch(/^[0-9a-f]+, started, /);
    }
  });
});
