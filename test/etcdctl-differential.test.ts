// The same etcdctl session against a real etcd and against Synod must print the same thing.
// Both start empty, so revisions line up exactly; only identities (member and cluster ids, raft
// term) are masked before comparing.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { EtcdReference } from './support/etcd-reference.ts';
import { etcdctl } from './support/etcdctl.ts';

interface Step {
  args: string[];
  input?: string;
  /** Remember the lease id this step prints; later steps use it as $LEASE (each system its own). */
  captureLease?: boolean;
  /** Remember the header revision this step prints (-w json); later steps use it as $REV (each system its own). */
  captureRevision?: boolean;
  /** For commands that never exit by themselves (watch): stop them after this long, compare stdout. */
  stopAfterMs?: number;
}

const s = (...args: string[]): Step => ({ args });
const txn = (input: string): Step => ({ args: ['txn'], input });
const watch = (...args: string[]): Step => ({ args: ['watch', ...args], stopAfterMs: 2_000 });
/** Such a command is stopped sooner once its output has come and then nothing more for this long (still at most stopAfterMs). */
const QUIET_MS = 700;

// One session: every command etcd users reach for, in an order where each depends on the last.
const SESSION: Step[] = [
  s('put', 'foo', 'bar'),
  s('get', 'foo'),
  s('get', 'foo', '-w', 'json'),
  s('put', 'foo', 'baz', '--prev-kv'),
  s('get', 'missing'),
  s('put', 'p/a', '1'),
  s('put', 'p/b', '2'),
  s('put', 'p/c', '3'),
  s('put', 'q', '4'),
  s('put', 'r', '5'),
  s('get', '--prefix', 'p/'),
  s('get', '--prefix', 'p/', '--limit=2'),
  s('get', '--prefix', 'p/', '--limit=1', '-w', 'json'),
  s('get', '--from-key', 'p/c'),
  s('get', '--from-key', ''),
  s('get', '--prefix', ''),
  s('get', 'p/a', 'q'),
  s('get', '--prefix', 'p/', '--keys-only'),
  s('get', 'p/b', '--print-value-only'),
  s('get', '--prefix', 'p/', '--sort-by=KEY', '--order=DESCEND'),
  s('get', '--prefix', '', '--sort-by=MODIFY', '--order=DESCEND', '--limit=3'),
  s('get', '--prefix', '', '--sort-by=VALUE', '--order=ASCEND'),
  s('get', '--prefix', '', '--sort-by=CREATE', '--order=DESCEND', '-w', 'json'),
  s('get', '--prefix', '', '--sort-by=VERSION', '--order=DESCEND', '--limit=1'),
  s('get', 'foo', '--rev=2'),
  s('get', 'foo', '--rev=3'),
  s('get', '--prefix', '', '--rev=4', '-w', 'json'),
  s('get', 'foo', '--consistency=s'),
  s('put', 'foo', '--ignore-value'),
  s('get', 'foo', '-w', 'json'),
  s('del', 'p/a'),
  s('del', 'p/a'),
  s('del', '--prev-kv', 'p/b'),
  s('del', '--prefix', 'p/'),
  s('del', '--from-key', 'r'),
  s('get', '--prefix', ''),
  txn('value("foo") = "baz"\n\nput foo new\nget foo\n\nput other failed\n\n'),
  txn('value("foo") = "baz"\n\nput foo newer\n\nput other failed\nget other\n\n'),
  txn('version("foo") > "1"\nmod("nope") = "0"\ncreate("foo") < "100"\n\nget foo\ndel q\n\n\n'),
  txn('value("foo") != "new"\n\n\nget foo\n\n'),
  { args: ['txn', '-w', 'json'], input: 'mod("foo") > "0"\n\nget foo\n\n\n' },
  { args: ['txn', '-w', 'json'], input: 'mod("foo") > "0"\n\nput t1 x\ndel nothing\nget foo\n\n\n' },
  { args: ['txn', '-w', 'json'], input: 'mod("foo") = "0"\n\n\nput t1 y\ndel t1\n\n' },
  s('get', '--prefix', '', '-w', 'json'),
  watch('--rev=1', '--prefix', ''),
  watch('--rev=3', 'foo', '--prev-kv'),
  watch('--rev=2', 'p/', 'p0'),
  watch('--rev=1', '--prefix', '', '-w', 'json'),
  s('compaction', '5'),
  watch('--rev=2', 'foo'),
  s('get', 'foo', '--rev=3'),
  s('get', 'foo', '--rev=5'),
  s('get', 'foo', '--rev=9999'),
  s('compaction', '4'),
  s('compaction', '9999'),
  s('put', '', 'empty-key'),
  s('get', '--prefix', '', '-w', 'json'),
];

// Leases, locks and elections: etcdctl's lease, lock and elect commands.
const LEASE_SESSION: Step[] = [
  { args: ['lease', 'grant', '100'], captureLease: true },
  s('put', '--lease=$LEASE', 'lk1', 'v1'),
  s('put', '--lease=$LEASE', 'lk2', 'v2'),
  // On a sharded cluster lt/1, lt/2 and lt/3 are on three shards: one cross-shard transaction attaches them.
  { args: ['txn'], input: '\nput lt/1 a --lease=$LEASE\nput lt/2 b --lease=$LEASE\nput lt/3 c --lease=$LEASE\n\n\n' },
  // $REV: the txn's revision on each system (the watch below starts there).
  { args: ['get', 'lt/1', '-w', 'json'], captureRevision: true },
  s('lease', 'timetolive', '$LEASE'),
  s('lease', 'timetolive', '--keys', '$LEASE'),
  s('lease', 'timetolive', '--keys', '$LEASE', '-w', 'json'),
  s('lease', 'list'),
  s('lease', 'keep-alive', '--once', '$LEASE'),
  s('get', '--prefix', 'lk', '-w', 'json'),
  s('lease', 'revoke', '$LEASE'),
  s('get', '--prefix', 'lk'),
  s('get', '--prefix', 'lt/'),
  // The txn's puts, then the revoke's deletes in key order, as etcd sends them (on 16 shards lt/1, lt/2,
  // lt/3 sit on shards 11, 15 and 3: each revision merged from three shards).
  watch('--rev=$REV', '--prefix', 'lt/'),
  s('lease', 'revoke', '$LEASE'),
  s('lease', 'keep-alive', '--once', '$LEASE'),
  s('lease', 'timetolive', '$LEASE'),
  s('lease', 'grant', '1'),
  s('lease', 'grant', '99999999999'),
  s('put', '--lease=1234', 'x', 'y'),
  // A range delete over four shards (14, 10, 6, 3 on 16 shards): one revision, events in key order.
  { args: ['put', 'del/a', '1', '-w', 'json'], captureRevision: true },
  s('put', 'del/b', '2'),
  s('put', 'del/c', '3'),
  s('put', 'del/d', '4'),
  s('del', '--prefix', '--prev-kv', 'del/'),
  watch('--rev=$REV', '--prefix', 'del/', '--prev-kv'),
  s('lock', 'mylock', 'echo', 'held'),
  s('lock', '--ttl=5', 'mylock', 'printenv', 'ETCD_LOCK_KEY'),
  { args: ['elect', 'myelection', 'proposal1'], stopAfterMs: 2_000 },
  { args: ['elect', '-l', 'myelection'], stopAfterMs: 2_000 },
];

/** Lease ids (hex as etcdctl prints them, and decimal in JSON) differ between systems. */
function maskLeases(text: string): string {
  // The JSON ids first: a decimal id of exactly 16 digits would otherwise pass for a hex one.
  return text
    .replace(/"(ID|id|lease)":\d{10,}/g, '"$1":"<lease>"')
    .replace(/\b[0-9a-f]{16}\b/g, '<lease>')
    .replace(/\/[0-9a-f]{8,16}\b/g, '/<lease>')
    .replace(/remaining\(\d+s\)/g, 'remaining(Ns)')
    .replace(/"ttl":\d+/g, '"ttl":N')
    .replace(/found \d+ leases/g, 'found N leases')
    // etcd lists a lease's keys in Go map order (random from run to run): compare them as a set.
    .replace(/attached keys\(\[([^\]]*)\]\)/g, (_m, keys: string) => `attached keys([${keys.split(' ').sort().join(' ')}])`)
    .replace(/"keys":\[([^\]]*)\]/g, (_m, keys: string) => `"keys":[${keys.split(',').sort().join(',')}]`);
}

/** Masks what legitimately differs between two clusters: identities, raft term, timing. */
function normalize(text: string): string {
  return maskLeases(text.replace(/"(cluster_id|member_id|raft_term)":\d+/g, '"$1":0'))
    .replace(/took = [\d.]+[µm]?s/g, 'took = X')
    .split('\n')
    .filter((l) => !l.startsWith('{"level":"warn"'))
    .join('\n');
}

let synod: ProcessCluster;
let etcd: EtcdReference | null = null;

beforeAll(async () => {
  // etcd's default timing (100 ms heartbeat, 1 s election), so the minimum lease TTL matches too.
  [synod, etcd] = await Promise.all([
    ProcessCluster.start({ size: 3, tickMs: 100, electionTimeoutMs: 1000 }),
    EtcdReference.available() ? EtcdReference.start() : null,
  ]);
});

/** Where a session runs: Synod's endpoints, etcd's, and what else to mask (a sharded cluster's revisions). */
interface Target {
  synod: () => string;
  etcd: () => string;
  mask: (text: string) => string;
}

async function runSession(steps: Step[], target: Target = { synod: () => synod.endpoints, etcd: () => etcd!.endpoint, mask: (t) => t }): Promise<string[]> {
  const mismatches: string[] = [];
  const leases = { etcd: '', synod: '' };
  const revisions = { etcd: '', synod: '' };
  const bind = (args: string[], system: 'etcd' | 'synod'): string[] => args.map((a) => a.replaceAll('$LEASE', leases[system]).replaceAll('$REV', revisions[system]));
  for (const step of steps) {
    const [a, b] = await Promise.all([
      etcdctl(target.etcd(), bind(step.args, 'etcd'), { input: step.input && bind([step.input], 'etcd')[0], timeoutMs: step.stopAfterMs, quietMs: step.stopAfterMs && QUIET_MS }),
      etcdctl(target.synod(), bind(step.args, 'synod'), { input: step.input && bind([step.input], 'synod')[0], timeoutMs: step.stopAfterMs, quietMs: step.stopAfterMs && QUIET_MS }),
    ]);
    if (step.captureLease) {
      leases.etcd = /lease ([0-9a-f]{16}) granted/.exec(a.stdout)?.[1] ?? '';
      leases.synod = /lease ([0-9a-f]{16}) granted/.exec(b.stdout)?.[1] ?? '';
    }
    if (step.captureRevision) {
      revisions.etcd = /"revision":(\d+)/.exec(a.stdout)?.[1] ?? '';
      revisions.synod = /"revision":(\d+)/.exec(b.stdout)?.[1] ?? '';
    }
    const norm = (text: string): string => target.mask(normalize(text));
    const left = step.stopAfterMs ? norm(a.stdout) : `code=${a.code}\n${norm(a.stdout)}\n${norm(a.stderr)}`;
    const right = step.stopAfterMs ? norm(b.stdout) : `code=${b.code}\n${norm(b.stdout)}\n${norm(b.stderr)}`;
    if (process.env.SYNOD_DIFF_LOG) fs.appendFileSync(process.env.SYNOD_DIFF_LOG, `$ etcdctl ${step.args.join(' ')}\n--- etcd\n${left}\n--- synod\n${right}\n`);
    if (left !== right) {
      mismatches.push(`etcdctl ${step.args.join(' ')}${step.input ? ` <<< ${JSON.stringify(step.input)}` : ''}\n--- etcd\n${left}\n--- synod\n${right}`);
    }
  }
  return mismatches;
}

afterAll(async () => {
  await Promise.all([synod?.destroy(), etcd?.stop()]);
});

describe('etcdctl: Synod answers as etcd does', () => {
  it.skipIf(!EtcdReference.available())('a whole KV session prints the same on both (etcd-server installed by make)', async () => {
    const mismatches = await runSession(SESSION);
    expect(mismatches, mismatches.join('\n\n')).toEqual([]);
  });

  it.skipIf(!EtcdReference.available())('lease, lock and elect print the same on both', async () => {
    const mismatches = await runSession(LEASE_SESSION);
    expect(mismatches, mismatches.join('\n\n')).toEqual([]);
  });
});

// The same lease, lock and elect session against a 16-shard Synod cluster. Only revisions are masked
// besides the above: a sharded cluster's come from the revision oracle (gaps, a window above etcd's).
describe('etcdctl on a 16-shard cluster: leases, locks and elections as etcd', () => {
  let sharded: ProcessCluster | undefined;
  let reference: EtcdReference | null = null;

  beforeAll(async () => {
    if (!EtcdReference.available()) return;
    [sharded, reference] = await Promise.all([
      ProcessCluster.start({ size: 3, tickMs: 100, electionTimeoutMs: 1000, memberArgs: () => ['--shards', '16'] }),
      EtcdReference.start(),
    ]);
  }, 90_000);

  afterAll(async () => {
    await Promise.all([sharded?.destroy(), reference?.stop()]);
  });

  it.skipIf(!EtcdReference.available())('lease, lock and elect print the same on both', async () => {
    const mismatches = await runSession(LEASE_SESSION, {
      synod: () => sharded!.endpoints,
      etcd: () => reference!.endpoint,
      mask: (text) => text.replace(/"(revision|create_revision|mod_revision)":\d+/g, '"$1":N'),
    });
    expect(mismatches, mismatches.join('\n\n')).toEqual([]);
  }, 120_000);
});
