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
  /** For commands that never exit by themselves (watch): stop them after this long, compare stdout. */
  stopAfterMs?: number;
}

const s = (...args: string[]): Step => ({ args });
const txn = (input: string): Step => ({ args: ['txn'], input });
const watch = (...args: string[]): Step => ({ args: ['watch', ...args], stopAfterMs: 2_000 });

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

/** Masks what legitimately differs between two clusters: identities, raft term, timing. */
function normalize(text: string): string {
  return text
    .replace(/"(cluster_id|member_id|raft_term)":\d+/g, '"$1":0')
    .replace(/took = [\d.]+[µm]?s/g, 'took = X')
    .split('\n')
    .filter((l) => !l.startsWith('{"level":"warn"'))
    .join('\n');
}

let synod: ProcessCluster;
let etcd: EtcdReference | null = null;

beforeAll(async () => {
  [synod, etcd] = await Promise.all([ProcessCluster.start({ size: 3 }), EtcdReference.available() ? EtcdReference.start() : null]);
});

afterAll(async () => {
  await Promise.all([synod?.destroy(), etcd?.stop()]);
});

describe('etcdctl: Synod answers as etcd does', () => {
  it.skipIf(!EtcdReference.available())('a whole session prints the same on both (etcd-server installed by make)', async () => {
    const mismatches: string[] = [];
    for (const step of SESSION) {
      const [a, b] = await Promise.all([
        etcdctl(etcd!.endpoint, step.args, { input: step.input, timeoutMs: step.stopAfterMs }),
        etcdctl(synod.endpoints, step.args, { input: step.input, timeoutMs: step.stopAfterMs }),
      ]);
      const left = step.stopAfterMs ? normalize(a.stdout) : `code=${a.code}\n${normalize(a.stdout)}\n${normalize(a.stderr)}`;
      const right = step.stopAfterMs ? normalize(b.stdout) : `code=${b.code}\n${normalize(b.stdout)}\n${normalize(b.stderr)}`;
      if (process.env.SYNOD_DIFF_LOG) fs.appendFileSync(process.env.SYNOD_DIFF_LOG, `$ etcdctl ${step.args.join(" ")}\n${right}\n`);
      if (left !== right) {
        mismatches.push(`etcdctl ${step.args.join(' ')}${step.input ? ` <<< ${JSON.stringify(step.input)}` : ''}\n--- etcd\n${left}\n--- synod\n${right}`);
      }
    }
    expect(mismatches, mismatches.join('\n\n')).toEqual([]);
  });
});
