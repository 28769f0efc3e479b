// A backup written as an etcd snapshot (etcd-backup.ts) and read back (cli/etcd-snapshot-import.ts) gives
// the records it was made of: random stores (keys with zero bytes, tombstones, several keys per revision,
// leases with 63-bit ids, users and roles), each written, read and compared record by record.
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AUTH_RECORD_PREFIX, AuthStore } from '../auth/auth-store.ts';
import { importedLeaseRecord, LEASE_RECORD_PREFIX } from '../lease/lease-store.ts';
import { decodeRevKey, encodeLiveValue, encodeMeta, encodeRevKey, META_KEY, TOMBSTONE_VALUE } from '../mvcc/codec.ts';
import { MVCC_RECORD_PREFIX } from '../shard/kv-state-machine.ts';
import { readEtcdSnapshot, readEtcdSnapshotHeader } from '../cli/etcd-snapshot-import.ts';
import { encodeEtcdBackup } from './etcd-backup.ts';
import { etcdRevisionKey } from '../mvcc/etcd-records.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-backup-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const prefixed = (prefix: number, key: Buffer): Buffer => Buffer.concat([Buffer.from([prefix]), key]);

interface Store {
  records: Array<[Buffer, Buffer]>;
  /** Subs numbered per part, as a sharded cut numbers them per shard (so they may collide). */
  collidingSubs: boolean;
}

function randomStore(seed: number): Store {
  const r = rng(seed);
  const records: Array<[Buffer, Buffer]> = [];
  const collidingSubs = r() < 0.5;
  let main = 1 + Math.floor(r() * 50);
  const keys = Array.from({ length: 1 + Math.floor(r() * 40) }, (_, i) => (r() < 0.2 ? Buffer.from([0x6b, 0, i, 0]) : Buffer.from(`k/${i}/${'x'.repeat(Math.floor(r() * 30))}`)));
  const leases = Array.from({ length: Math.floor(r() * 4) }, () => (BigInt(Math.floor(r() * 2 ** 30)) << 32n) + BigInt(Math.floor(r() * 2 ** 32)) + 1n);
  const versions = new Map<string, { create: number; version: number }>();
  for (let rev = 0; rev < 30 + Math.floor(r() * 200); rev++) {
    main += 1 + Math.floor(r() * 3);
    const writes = 1 + Math.floor(r() * 4);
    const picked = [...new Set(Array.from({ length: writes }, () => keys[Math.floor(r() * keys.length)]))];
    picked.forEach((key, i) => {
      const sub = collidingSubs ? Math.floor(i / 2) : i; // two "shards" each numbering from 0
      const id = key.toString('hex');
      const before = versions.get(id);
      if (before && r() < 0.2) {
        records.push([prefixed(MVCC_RECORD_PREFIX, encodeRevKey(key, main, sub)), TOMBSTONE_VALUE]);
        versions.delete(id);
        return;
      }
      const now = before ? { create: before.create, version: before.version + 1 } : { create: main, version: 1 };
      versions.set(id, now);
      const lease = leases.length > 0 && r() < 0.3 ? leases[Math.floor(r() * leases.length)].toString() : '0';
      const value = Buffer.alloc(Math.floor(r() * (r() < 0.05 ? 20_000 : 200)), Math.floor(r() * 256));
      records.push([prefixed(MVCC_RECORD_PREFIX, encodeRevKey(key, main, sub)), Buffer.from(encodeLiveValue(now.create, now.version, lease, value).buf)]);
    });
  }
  const compacted = r() < 0.5 ? Math.floor(main / 2) : 0;
  records.push([prefixed(MVCC_RECORD_PREFIX, META_KEY), encodeMeta(main + (r() < 0.3 ? 5 : 0), compacted)]);
  for (const id of leases) {
    const [key, value] = importedLeaseRecord(id.toString(), 10 + Math.floor(r() * 1000), Math.floor(r() * 10));
    records.push([prefixed(LEASE_RECORD_PREFIX, key), value]);
  }
  if (r() < 0.7) {
    const auth = AuthStore.imported({
      enabled: r() < 0.5,
      revision: 1 + Math.floor(r() * 20),
      users: [
        { name: 'root', passwordHash: 'scrypt$32768$8$1$c2FsdA==$a2V5', noPassword: false, roles: ['root'], credentialRevision: 1 },
        { name: 'ünïcode', passwordHash: '', noPassword: true, roles: ['reader', 'writer'], credentialRevision: 1 },
      ],
      roles: [
        { name: 'reader', permissions: [{ permType: 'READ', key: Buffer.from('a'), rangeEnd: Buffer.from('b') }] },
        { name: 'writer', permissions: [{ permType: 'READWRITE', key: Buffer.from([0]), rangeEnd: Buffer.from([0]) }, { permType: 'WRITE', key: Buffer.from('k'), rangeEnd: Buffer.alloc(0) }] },
      ],
    });
    for (const [key, value] of auth.records()) records.push([prefixed(AUTH_RECORD_PREFIX, key), value]);
  }
  return { records, collidingSubs };
}

async function roundTrip(records: Array<[Buffer, Buffer]>, name: string): Promise<Array<[Buffer, Buffer]>> {
  const file = path.join(dir, name);
  const source = async function* (): AsyncGenerator<[Buffer, Buffer]> {
    yield* records;
  };
  const chunks: Buffer[] = [];
  for await (const chunk of encodeEtcdBackup({ format: 1, clusterId: 'c', memberId: 'm', createdAt: 'now', shards: 4 }, source(), path.join(dir, 'spool'))) chunks.push(chunk);
  fs.writeFileSync(file, Buffer.concat(chunks));
  expect(fs.statSync(file).size % 512).toBe(32);
  expect(readEtcdSnapshotHeader(file)?.shards).toBe(4);
  return [...readEtcdSnapshot(file)].flat();
}

const hex = ([k, v]: [Buffer, Buffer]): string => `${k.toString('hex')}=${v.toString('hex')}`;

/** An MVCC record without its sub (renumbered where a revision's subs collide). */
function withoutSub([k, v]: [Buffer, Buffer]): string {
  if (k[0] !== MVCC_RECORD_PREFIX || k.length === 2) return hex([k, v]);
  const { key, main } = decodeRevKey(k.subarray(1));
  return `${key.toString('hex')}@${main}=${v.toString('hex')}`;
}

describe('a backup as an etcd snapshot, read back', () => {
  it('gives back every record of 40 random stores (subs kept, or renumbered where a revision\'s collide)', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const { records, collidingSubs } = randomStore(seed);
      const back = await roundTrip(records, `store-${seed}.db`);
      const auth = (rs: Array<[Buffer, Buffer]>): ReturnType<AuthStore['exported']> | null => {
        const a = rs.filter(([k]) => k[0] === AUTH_RECORD_PREFIX).map(([k, v]): [Buffer, Buffer] => [k.subarray(1), v]);
        if (a.length === 0) return null;
        const state = AuthStore.restore(a).exported();
        return { ...state, users: state.users.map((u) => ({ ...u, credentialRevision: 0 })) };
      };
      const notAuth = (rs: Array<[Buffer, Buffer]>): Array<[Buffer, Buffer]> => rs.filter(([k]) => k[0] !== AUTH_RECORD_PREFIX);
      const key = collidingSubs ? withoutSub : hex;
      expect(notAuth(back).map(key).sort(), `seed ${seed}`).toEqual(notAuth(records).map(key).sort());
      expect(auth(back), `seed ${seed}`).toEqual(auth(records));
      // Subs within one revision stay distinct.
      const revisions = back.filter(([k]) => k[0] === MVCC_RECORD_PREFIX && k.length > 2).map(([k]) => decodeRevKey(k.subarray(1))).map((d) => `${d.main}/${d.sub}`);
      expect(new Set(revisions).size).toBe(revisions.length);
    }
  });

  it('an empty store is a valid snapshot at revision 1', async () => {
    const back = await roundTrip([[prefixed(MVCC_RECORD_PREFIX, META_KEY), encodeMeta(1, 0)]], 'empty.db');
    expect(back.map(hex)).toEqual([hex([prefixed(MVCC_RECORD_PREFIX, META_KEY), encodeMeta(1, 0)])]);
  });

  it('writes etcd\'s revision keys: main and sub big-endian around "_", and a tombstone\'s "t"', () => {
    expect(etcdRevisionKey(0x0102, 3, false).toString('hex')).toBe('0000000000000102' + '5f' + '0000000000000003');
    expect(etcdRevisionKey(5, 0, true).toString('hex')).toBe('0000000000000005' + '5f' + '0000000000000000' + '74');
  });
});
