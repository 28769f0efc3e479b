// The etcdctl differential on a sharded cluster (issue 14): one etcdctl session against a real etcd and
// against a Synod with 16 shards must print the same thing, on two shapes of cluster: 3 members hosting
// every shard, and 4 members with 3 replicas per shard (each member hosts 12 of the 16, so requests are
// forwarded and watches follow remote shards). The session is the KV session of
// etcdctl-differential.test.ts reshaped for shards: keys a Txn writes together share a {hash tag}, and a
// write over a prefix uses one whose keys share one; reads range over every shard freely. A second
// session writes across shards without hash tags: txns (both branches, compares on several shards) and
// del --prefix are cross-shard transactions (docs/transactions.md), each at one revision, and a watch over
// every shard sends each one's events in etcd's order.
//
// What legitimately differs is masked, and only that: identities and raft terms (as in the one-group
// differential), and revision numbers. Revisions on a sharded cluster come from one oracle with gaps (the
// one documented difference from etcd), and a one-shard read's header is its shard's revision, not the
// cluster's. So every header revision is masked, and every other revision (mod, create, a compaction's)
// is replaced by the order in which it first appeared in the session's output: both systems must show the
// same revisions in the same relations (same key version, same write, older or newer). Revisions given
// to etcdctl (`--rev`, `compaction`) are written $REV(name), the revision each system gave the write
// captured under that name.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { EtcdReference } from './support/etcd-reference.ts';
import { etcdctl } from './support/etcdctl.ts';
import { KvClient } from './support/kv-client.ts';
import { eventually } from './support/eventually.ts';
import { WatchStream, type WatchResponse } from './support/watch-client.ts';

const SHARDS = 16;

interface Step {
  args: string[];
  input?: string;
  /** Remember the revision of this write (its JSON header) as $REV(name), per system. */
  captureRev?: string;
  stopAfterMs?: number;
}

const s = (...args: string[]): Step => ({ args });
const txn = (input: string, ...flags: string[]): Step => ({ args: ['txn', ...flags], input });
const watch = (...args: string[]): Step => ({ args: ['watch', ...args], stopAfterMs: 2_000 });
/** Such a command is stopped sooner once its output has come and then nothing more for this long (still at most stopAfterMs). */
const QUIET_MS = 700;
const putAt = (name: string, key: string, value: string): Step => ({ args: ['put', key, value, '-w', 'json'], captureRev: name });

// Keys written by one Txn share {t}; p/{p}* share {p} so `del --prefix p/{p}` is one shard's write;
// q, r, u/1, u/2 and the rest land wherever their hash puts them.
const SESSION: Step[] = [
  putAt('first', '{t}foo', 'bar'),
  s('get', '{t}foo'),
  s('get', '{t}foo', '-w', 'json'),
  s('put', '{t}foo', 'baz', '--prev-kv'),
  s('get', 'missing'),
  s('put', 'p/{p}a', '1'),
  s('put', 'p/{p}b', '2'),
  putAt('pc', 'p/{p}c', '3'),
  s('put', 'q', '4'),
  s('put', 'r', '5'),
  s('put', 'u/1', '6'),
  s('put', 'u/2', '7'),
  s('get', '--prefix', 'p/'),
  s('get', '--prefix', 'p/{p}', '--limit=2'),
  s('get', '--prefix', 'p/', '--limit=1', '-w', 'json'),
  s('get', '--prefix', 'u/', '-w', 'json'),
  s('get', '--from-key', 'p/{p}c'),
  s('get', '--from-key', ''),
  s('get', '--prefix', ''),
  s('get', 'p/{p}a', 'q'),
  s('get', '--prefix', 'p/', '--keys-only'),
  s('get', 'p/{p}b', '--print-value-only'),
  s('get', '--prefix', 'p/', '--sort-by=KEY', '--order=DESCEND'),
  s('get', '--prefix', '', '--sort-by=MODIFY', '--order=DESCEND', '--limit=3'),
  s('get', '--prefix', '', '--sort-by=VALUE', '--order=ASCEND'),
  s('get', '--prefix', '', '--sort-by=CREATE', '--order=DESCEND', '-w', 'json'),
  s('get', '--prefix', '', '--sort-by=VERSION', '--order=DESCEND', '--limit=1'),
  s('get', '{t}foo', '--rev=$REV(first)'),
  s('get', '--prefix', '', '--rev=$REV(pc)', '-w', 'json'),
  s('get', '{t}foo', '--consistency=s'),
  s('put', '{t}foo', '--ignore-value'),
  s('get', '{t}foo', '-w', 'json'),
  s('del', 'p/{p}a'),
  s('del', 'p/{p}a'),
  s('del', '--prev-kv', 'p/{p}b'),
  s('del', '--prefix', 'p/{p}'),
  s('del', 'r'),
  s('get', '--prefix', ''),
  txn('value("{t}foo") = "baz"\n\nput {t}foo new\nget {t}foo\n\nput {t}other failed\n\n'),
  txn('value("{t}foo") = "baz"\n\nput {t}foo newer\n\nput {t}other failed\nget {t}other\n\n'),
  txn('version("{t}foo") > "1"\nmod("{t}nope") = "0"\ncreate("{t}foo") < "100000000"\n\nget {t}foo\ndel {t}other\n\n\n'),
  txn('value("{t}foo") != "new"\n\n\nget {t}foo\n\n'),
  txn('mod("{t}foo") > "0"\n\nget {t}foo\n\n\n', '-w', 'json'),
  txn('mod("{t}foo") > "0"\n\nput {t}t1 x\ndel {t}nothing\nget {t}foo\n\n\n', '-w', 'json'),
  txn('mod("{t}foo") = "0"\n\n\nput {t}t1 y\ndel {t}t1\n\n', '-w', 'json'),
  s('get', '--prefix', '', '-w', 'json'),
  watch('--rev=$REV(first)', '--prefix', ''),
  watch('--rev=$REV(pc)', '--prefix', '', '-w', 'json'),
  watch('--rev=$REV(first)', '{t}foo', '--prev-kv'),
  watch('--rev=$REV(first)', 'p/', 'p0'),
  s('compaction', '$REV(pc)'),
  watch('--rev=$REV(first)', '--prefix', ''),
  s('get', '{t}foo', '--rev=$REV(first)'),
  s('get', 'p/{p}c', '--rev=$REV(pc)'),
  s('get', '{t}foo', '--rev=99999999'),
  s('compaction', '$REV(first)'),
  s('compaction', '99999999'),
  s('put', '', 'empty-key'),
  s('get', '--prefix', '', '-w', 'json'),
];

// Keys without hash tags, spread over the shards: every write below but the puts is a cross-shard transaction.
const CROSS_SHARD_SESSION: Step[] = [
  putAt('x0', 'x/a', '1'),
  s('put', 'x/b', '2'),
  s('put', 'x/c', '3'),
  s('put', 'x/d', '4'),
  s('put', 'x/e', '5'),
  txn('value("x/a") = "1"\nvalue("x/c") = "3"\n\nput x/a 10\nput x/b 20\nget x/c\n\nput x/d failed\n\n'),
  s('get', '--prefix', 'x/', '-w', 'json'),
  txn('value("x/a") = "1"\n\nput x/a 11\n\nput x/b 21\nput x/d 41\nget x/a\n\n', '-w', 'json'),
  txn('mod("x/a") > "0"\nversion("x/e") = "1"\n\ndel x/b\ndel x/d\nput x/e 50 --prev-kv\n\n\n', '-w', 'json'),
  txn('create("x/zz") = "0"\n\nput x/zz new\nput x/c 30\ndel x/a\n\n\n'),
  // Read-only txns over several shards: compares and gets at one revision, both branches; an empty txn.
  txn('value("x/c") = "30"\nmod("x/b") > "0"\n\nget x/b\nget x/e\nget x/zz\n\nget x/c\n\n', '-w', 'json'),
  txn('value("x/c") = "3"\n\nget x/b\n\nget x/c\nget x/e --prefix\n\n', '-w', 'json'),
  txn('\n\n\n'),
  s('get', '--prefix', 'x/', '-w', 'json'),
  s('get', '--prefix', 'x/', '--rev=$REV(x0)'),
  // A txn whose ops go against key order, with a range delete over several shards between two puts.
  s('put', 'x/b', '2b'),
  s('put', 'x/d', '4b'),
  txn('\nput x/zz last\ndel x/b x/e\nput x/a first\n\n\n', '-w', 'json'),
  // Each cross-shard txn's events at one revision, in etcd's order: the txn's ops in order, a range
  // delete's keys in key order (txn-op-position.ts), through one watch over every shard.
  watch('--rev=$REV(x0)', 'x/a'),
  watch('--rev=$REV(x0)', 'x/b', '--prev-kv'),
  watch('--rev=$REV(x0)', 'x/e', '-w', 'json'),
  watch('--rev=$REV(x0)', '--prefix', 'x/'),
  watch('--rev=$REV(x0)', '--prefix', 'x/', '--prev-kv', '-w', 'json'),
  s('del', '--prefix', 'x/', '--prev-kv'),
  s('get', '--prefix', 'x/'),
  watch('--rev=$REV(x0)', 'x/zz', '-w', 'json'),
  watch('--rev=$REV(x0)', '--prefix', 'x/', '--prev-kv'),
];

const b = (text: string): Buffer => Buffer.from(text);
const putOp = (key: string, value: string): object => ({ request_put: { key: b(key), value: b(value) } });
const getOp = (key: string, extra: object = {}): object => ({ request_range: { key: b(key), ...extra } });
const prefixOp = (prefix: string, extra: object = {}): object => getOp(prefix, { range_end: b(prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)), ...extra });
const valueIs = (key: string, value: string): object => ({ key: b(key), target: 'VALUE', result: 'EQUAL', value: b(value) });

/**
 * Nested txns whose keys lie on several shards (n/a … n/g spread over them), sent as gRPC requests (etcdctl
 * cannot write a nested txn): every compare of every level is evaluated before any op, the ops of the
 * chosen path run in order (a nested range sees the writes made before it), and each answer is etcd's.
 */
const NESTED_TXNS: object[] = [
  {
    compare: [valueIs('n/a', '1')],
    success: [
      putOp('n/d', '4'),
      { request_txn: { compare: [valueIs('n/b', '2')], success: [putOp('n/e', '5'), prefixOp('n/')], failure: [putOp('n/f', 'no')] } },
      getOp('n/c'),
    ],
    failure: [putOp('n/x', 'no')],
  },
  {
    compare: [],
    success: [
      {
        request_txn: {
          compare: [{ key: b('n/a'), target: 'VERSION', result: 'GREATER', version: 5 }],
          success: [{ request_delete_range: { key: b('n/a') } }],
          failure: [
            { request_delete_range: { key: b('n/b'), prev_kv: true } },
            { request_txn: { compare: [{ key: b('n/c'), target: 'MOD', result: 'GREATER', mod_revision: 0 }], success: [prefixOp('n/', { keys_only: true })], failure: [] } },
          ],
        },
      },
      putOp('n/g', '7'),
    ],
    failure: [],
  },
  // Read-only and nested, over several shards.
  { compare: [valueIs('n/a', '1')], success: [{ request_txn: { compare: [{ key: b('n/zz'), target: 'CREATE', result: 'EQUAL', create_revision: 0 }], success: [getOp('n/a'), getOp('n/d'), prefixOp('n/', { count_only: true })], failure: [] } }], failure: [] },
  // A nested compare that fails sends its txn down its failure branch while the outer one succeeds.
  { compare: [valueIs('n/g', '7')], success: [{ request_txn: { compare: [valueIs('n/e', 'wrong')], success: [putOp('n/e', 'no')], failure: [putOp('n/e', '55'), putOp('n/a', '11')] } }, prefixOp('n/')], failure: [] },
  // Refused as etcd refuses: a key written twice across levels; a lease that does not exist.
  { compare: [], success: [putOp('n/a', 'x'), { request_txn: { compare: [], success: [putOp('n/a', 'y')], failure: [] } }], failure: [] },
  { compare: [], success: [putOp('n/b', 'x'), { request_txn: { compare: [], success: [{ request_put: { key: b('n/c'), value: b('y'), lease: 1234 } }], failure: [] } }], failure: [] },
];

/**
 * Every event under `prefix` from `fromRevision` on, as "type key=value", each revision's in the order sent
 * and revisions numbered by their order: what a watcher sees, with the systems' revision numbers masked.
 */
async function watchedEvents(endpoint: string, prefix: string, fromRevision: number): Promise<string[]> {
  const ws = new WatchStream(endpoint);
  const got: WatchResponse[] = [];
  try {
    ws.subscribe((r) => got.push(r));
    ws.create({ key: b(prefix), range_end: b(prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)), start_revision: fromRevision });
    // The history is there already: wait until nothing more arrives for a while.
    let seen = -1;
    for (let i = 0; i < 50 && (seen !== got.length || got.length === 0); i++) {
      seen = got.length;
      await new Promise((r) => setTimeout(r, 200));
    }
    const order = new Map<string, number>();
    return got.flatMap((r) =>
      r.events.map((e) => {
        const rev = String(e.kv?.mod_revision);
        if (!order.has(rev)) order.set(rev, order.size + 1);
        return `R${order.get(rev)} ${e.type} ${e.kv?.key.toString()}=${e.kv?.value.toString()}`;
      }),
    );
  } finally {
    ws.close();
  }
}

/** A gRPC answer with its header masked and every other revision replaced by its token. */
function normalizeGrpc(value: unknown, revs: Revisions): unknown {
  if (Buffer.isBuffer(value)) return value.toString();
  if (Array.isArray(value)) return value.map((v) => normalizeGrpc(v, revs));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === 'header') continue;
    out[k] = k === 'mod_revision' || k === 'create_revision' ? (String(v) === '0' ? '0' : revs.token(Number(v))) : normalizeGrpc(v, revs);
  }
  return out;
}

/** Per system: revision numbers → their order of first appearance, and the captured revisions. */
class Revisions {
  private readonly order = new Map<number, number>();
  readonly captured = new Map<string, string>();

  token(revision: number): string {
    let n = this.order.get(revision);
    if (n === undefined) {
      n = this.order.size + 1;
      this.order.set(revision, n);
    }
    return `R${n}`;
  }

  bind(args: string[]): string[] {
    return args.map((a) =>
      a.replace(/\$REV\((\w+)\)/g, (_m, name: string) => {
        const rev = this.captured.get(name);
        if (rev === undefined) throw new Error(`$REV(${name}) used before it was captured`);
        return rev;
      }),
    );
  }

  /** Masks identities, terms and header revisions; turns every other revision into its token. */
  normalize(text: string): string {
    return text
      .replace(/"(cluster_id|member_id|raft_term)":\d+/g, '"$1":0')
      .replace(/"revision":\d+/g, '"revision":"<header>"')
      .replace(/"(mod_revision|create_revision|compact_revision)":(\d+)/g, (_m, field: string, rev: string) => `"${field}":"${this.token(Number(rev))}"`)
      .replace(/compacted revision (\d+)/g, (_m, rev: string) => `compacted revision ${this.token(Number(rev))}`)
      .replace(/took = [\d.]+[µm]?s/g, 'took = X')
      .split('\n')
      .filter((l) => !l.startsWith('{"level":"warn"'))
      .join('\n');
  }
}

/**
 * `watch -w json` prints one JSON object per WatchResponse. How a watch's events are split into
 * responses is not part of etcd's contract (only that one revision's events share a response), and a
 * watch merged over several shards may send its history in more than one: compare the events, in order,
 * as one response.
 */
function oneWatchResponse(stdout: string): string {
  const lines = stdout.split('\n').filter((l) => l.startsWith('{"Header"'));
  if (lines.length === 0) return stdout;
  const responses = lines.map((l) => JSON.parse(l) as { Events?: unknown[] });
  const merged = { ...responses[0], Events: responses.flatMap((r) => r.Events ?? []) };
  return `${JSON.stringify(merged)}\n`;
}

/**
 * The two shapes of a sharded cluster: every member hosting every shard (asked for with
 * --replication-factor 0), and placement on a subset (the default: 3 replicas per shard).
 */
const CLUSTERS = [
  { name: `3 members, ${SHARDS} shards on every member (--replication-factor 0)`, size: 3, args: ['--shards', String(SHARDS), '--replication-factor', '0'], replicasPerShard: 3 },
  // Each member hosts 12 of the 16 shards: etcdctl's requests are forwarded and its watches follow remote shards.
  { name: `4 members, ${SHARDS} shards on 3 each (the default placement on a subset)`, size: 4, args: ['--shards', String(SHARDS)], replicasPerShard: 3 },
] as const;

let synod: ProcessCluster;
let etcd: EtcdReference | null = null;

async function runSession(steps: Step[]): Promise<string[]> {
  const mismatches: string[] = [];
  const revs = { etcd: new Revisions(), synod: new Revisions() };
  for (const step of steps) {
    const [a, b] = await Promise.all([
      etcdctl(etcd!.endpoint, revs.etcd.bind(step.args), { input: step.input, timeoutMs: step.stopAfterMs, quietMs: step.stopAfterMs && QUIET_MS }),
      etcdctl(synod.endpoints, revs.synod.bind(step.args), { input: step.input, timeoutMs: step.stopAfterMs, quietMs: step.stopAfterMs && QUIET_MS }),
    ]);
    if (step.captureRev) {
      for (const [system, out] of [['etcd', a], ['synod', b]] as const) {
        const rev = /"revision":(\d+)/.exec(out.stdout)?.[1];
        if (rev === undefined) throw new Error(`${system}: no revision to capture from ${step.args.join(' ')}: ${out.stdout}${out.stderr}`);
        revs[system].captured.set(step.captureRev, rev);
      }
    }
    const show = (o: { code: number | null; stdout: string; stderr: string }, r: Revisions): string =>
      step.stopAfterMs ? r.normalize(oneWatchResponse(o.stdout)) : `code=${o.code}\n${r.normalize(o.stdout)}\n${r.normalize(o.stderr)}`;
    const left = show(a, revs.etcd);
    const right = show(b, revs.synod);
    if (process.env.SYNOD_DIFF_LOG) fs.appendFileSync(process.env.SYNOD_DIFF_LOG, `$ etcdctl ${step.args.join(' ')}\n--- etcd\n${left}\n--- synod\n${right}\n`);
    if (left !== right) {
      mismatches.push(`etcdctl ${step.args.join(' ')}${step.input ? ` <<< ${JSON.stringify(step.input)}` : ''}\n--- etcd\n${left}\n--- synod\n${right}`);
    }
  }
  return mismatches;
}

describe.each(CLUSTERS)('etcdctl on $name: Synod answers as etcd does', (shape) => {
  beforeAll(async () => {
    [synod, etcd] = await Promise.all([
      ProcessCluster.start({ size: shape.size, tickMs: 100, electionTimeoutMs: 1000, memberArgs: () => [...shape.args] }),
      EtcdReference.available() ? EtcdReference.start() : null,
    ]);
  });

  afterAll(async () => {
    await Promise.all([synod?.destroy(), etcd?.stop()]);
  });

  it(`/placement shows each shard on ${shape.replicasPerShard} distinct members`, async () => {
    await eventually('every shard placed and reported', async () => {
      const res = await fetch(`http://127.0.0.1:${synod.members[0].metricsPort}/placement`);
      const shards = ((await res.json()) as { shards: Array<{ replicas: string[]; leader: string | null }> }).shards;
      expect(shards).toHaveLength(SHARDS);
      for (const s of shards) {
        expect(new Set(s.replicas).size).toBe(shape.replicasPerShard);
        expect(s.leader).not.toBeNull();
      }
      return true;
    }, 20_000);
  });

  it.skipIf(!EtcdReference.available())('a KV session with multi-shard reads, hash-tagged txns, history and compaction prints the same on both', async () => {
    const mismatches = await runSession(SESSION);
    expect(mismatches, mismatches.join('\n\n')).toEqual([]);
  });

  it.skipIf(!EtcdReference.available())('writes across shards — txns, both branches, del --prefix — print the same on both', async () => {
    const mismatches = await runSession(CROSS_SHARD_SESSION);
    expect(mismatches, mismatches.join('\n\n')).toEqual([]);
  });

  it.skipIf(!EtcdReference.available())('nested txns over several shards answer as etcd does, and a watch sends their events in its order (gRPC)', async () => {
    const clients = [new KvClient(etcd!.endpoint), new KvClient(synod.endpointOf(1))];
    const revs = [new Revisions(), new Revisions()];
    const firstRevs: number[] = [];
    try {
      for (const [key, value] of [['n/a', '1'], ['n/b', '2'], ['n/c', '3']]) {
        const written = await Promise.all(clients.map((c) => c.put(key, value)));
        if (firstRevs.length === 0) firstRevs.push(...written.map((w) => Number(w.header.revision)));
      }
      const answers: Array<[unknown, unknown]> = [];
      for (const req of NESTED_TXNS) {
        const [a, z] = await Promise.all(
          clients.map((c, i) => c.txn(req, 10_000).then((r) => normalizeGrpc(r, revs[i]), (e: { code?: number; details?: string }) => ({ code: e.code, details: e.details }))),
        );
        answers.push([a, z]);
        expect(z, JSON.stringify(req)).toEqual(a);
      }
      const [a, z] = await Promise.all(clients.map((c, i) => c.range('n/', { range_end: b('n0') }).then((r) => normalizeGrpc(r, revs[i]))));
      expect(z).toEqual(a);
      // The session went where it had to: nested txns that wrote, and refusals with etcd's codes.
      expect(answers.filter(([x]) => (x as { succeeded?: boolean }).succeeded === true).length).toBeGreaterThanOrEqual(4);
      expect(answers.slice(-2).map(([x]) => (x as { code?: number }).code)).toEqual([3, 5]);
      // A watch over every shard sends each nested txn's events in the order etcd ran its ops.
      const [onEtcd, onSynod] = await Promise.all([watchedEvents(etcd!.endpoint, 'n/', firstRevs[0]), watchedEvents(synod.endpointOf(2), 'n/', firstRevs[1])]);
      expect(onSynod).toEqual(onEtcd);
      expect(onEtcd.length).toBe(9);
    } finally {
      for (const c of clients) c.close();
    }
  });

  // etcdctl 3.4 (Debian's) has no --count-only: the same reads through the gRPC API, on both.
  it.skipIf(!EtcdReference.available())('count_only, keys_only and limit over every shard answer as etcd does (gRPC)', async () => {
    const clients = [new KvClient(etcd!.endpoint), new KvClient(synod.endpointOf(1))];
    try {
      const everything = { range_end: Buffer.from([0]) };
      const reads = [
        { count_only: true, ...everything },
        { count_only: true, limit: '2', ...everything },
        { keys_only: true, limit: '3', ...everything },
        { keys_only: true, count_only: true, range_end: Buffer.from('v') },
        { limit: '1', sort_order: 'DESCEND', sort_target: 'VALUE', ...everything },
      ];
      for (const extra of reads) {
        const [a, b] = await Promise.all(clients.map((c) => c.range(Buffer.from([0]), extra)));
        const shape = (r: Awaited<ReturnType<KvClient['range']>>): object => ({
          count: r.count,
          more: r.more,
          kvs: r.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), version: kv.version })),
        });
        expect(shape(b), JSON.stringify(extra)).toEqual(shape(a));
      }
      const counted = await clients[1].range(Buffer.from([0]), { count_only: true, ...everything });
      expect(Number(counted.count)).toBeGreaterThan(3);
    } finally {
      for (const c of clients) c.close();
    }
  });
});
