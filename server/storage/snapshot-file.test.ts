// The snapshot format round-trips through any chunking, refuses anything corrupted or cut short, and
// a received file only appears under its final name once complete; an install interrupted by a crash
// (the snapshot point durable, the state not) is finished from the file on restart.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeSnapshot, pruneSnapshotFiles, readSnapshotFile, SnapshotFileWriter, SnapshotParser, snapshotFileName, type SnapshotHeader } from './snapshot-file.ts';
import { MemberDb, TurnBatch } from './member-db.ts';
import { Member } from '../member/member.ts';

const header: SnapshotHeader = { groupId: 3, index: 1234, term: 7, confState: { voters: [1, 2, 3], learners: [9] } };

async function bytesOf(records: Array<[Buffer, Buffer]>, chunkBytes: number): Promise<Buffer> {
  async function* source(): AsyncGenerator<[Buffer, Buffer]> {
    yield* records;
  }
  const parts: Buffer[] = [];
  for await (const chunk of encodeSnapshot(header, source(), chunkBytes)) parts.push(chunk);
  return Buffer.concat(parts);
}

const recordsArb = fc.array(fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.uint8Array({ maxLength: 300 })), { maxLength: 60 }).map((rs) =>
  rs.map(([k, v]): [Buffer, Buffer] => [Buffer.from(k), Buffer.from(v)]),
);

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'synod-snap-'));
}

describe('snapshot format', () => {
  it('round-trips records and header through any split into chunks', async () => {
    await fc.assert(
      fc.asyncProperty(recordsArb, fc.integer({ min: 1, max: 500 }), fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 8 }), async (records, chunkBytes, cuts) => {
        const bytes = await bytesOf(records, chunkBytes);
        const parser = new SnapshotParser();
        const out: Array<[Buffer, Buffer]> = [];
        for (let pos = 0, i = 0; pos < bytes.length; i++) {
          const step = cuts[i % cuts.length];
          out.push(...parser.push(bytes.subarray(pos, pos + step)));
          pos += step;
        }
        expect(parser.complete).toBe(true);
        expect(parser.header).toEqual(header);
        expect(out).toEqual(records);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a corrupted byte anywhere', async () => {
    const records: Array<[Buffer, Buffer]> = [[Buffer.from('k1'), Buffer.from('v1')], [Buffer.from('k2'), Buffer.alloc(100, 7)]];
    const bytes = await bytesOf(records, 64);
    for (let i = 0; i < bytes.length; i++) {
      const bad = Buffer.from(bytes);
      bad[i] ^= 0x40;
      const parser = new SnapshotParser();
      let refused = false;
      try {
        parser.push(bad);
        refused = !parser.complete;
      } catch {
        refused = true;
      }
      expect(refused, `flipped byte ${i}`).toBe(true);
    }
  });

  it('keeps a received file under a temporary name until it is whole and verified', async () => {
    const dir = tmpDir();
    const records: Array<[Buffer, Buffer]> = [[Buffer.from('a'), Buffer.from('1')], [Buffer.from('b'), Buffer.alloc(5000, 1)]];
    const bytes = await bytesOf(records, 1000);
    const cut = new SnapshotFileWriter(dir);
    cut.write(bytes.subarray(0, bytes.length - 10));
    expect(() => cut.finish()).toThrow(/ended before its digest/);
    cut.abort();
    expect(fs.readdirSync(dir)).toEqual([]);

    const whole = new SnapshotFileWriter(dir);
    whole.write(bytes.subarray(0, 700));
    whole.write(bytes.subarray(700));
    const done = whole.finish();
    expect(path.basename(done.path)).toBe(snapshotFileName(3, 1234));
    expect(fs.readdirSync(dir)).toEqual([snapshotFileName(3, 1234)]);
    const read: Array<[Buffer, Buffer]> = [];
    const reader = readSnapshotFile(done.path);
    for (;;) {
      const next = await reader.next();
      if (next.done) {
        expect(next.value).toEqual(header);
        break;
      }
      read.push(...next.value);
    }
    expect(read).toEqual(records);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('pruning snapshot files', () => {
  it("keeps the file to keep, other groups' files, and temp files still being written; removes idle temp files", () => {
    const dir = tmpDir();
    try {
      const names = [snapshotFileName(3, 10), snapshotFileName(3, 20), snapshotFileName(4, 10), 'incoming-live.tmp', 'incoming-idle.tmp'];
      for (const name of names) fs.writeFileSync(path.join(dir, name), 'x');
      const longAgo = new Date(Date.now() - 60 * 60_000);
      fs.utimesSync(path.join(dir, 'incoming-idle.tmp'), longAgo, longAgo);
      pruneSnapshotFiles(dir, 3, 20, 15 * 60_000);
      expect(fs.readdirSync(dir).sort()).toEqual([snapshotFileName(3, 20), snapshotFileName(4, 10), 'incoming-live.tmp'].sort());
      // With no idle time given, every temp file goes.
      pruneSnapshotFiles(dir, 3, 20);
      expect(fs.readdirSync(dir).sort()).toEqual([snapshotFileName(3, 20), snapshotFileName(4, 10)].sort());
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('an interrupted snapshot install', () => {
  it('is finished from the file on restart: state replaced, applied and membership at the snapshot point', async () => {
    const dir = tmpDir();
    const db = await MemberDb.open(path.join(dir, 'db'));
    const groupId = 3;
    // Before: some state at applied 10, and a log.
    const before = new TurnBatch();
    before.stateOps(groupId, [{ key: Buffer.from('old-1'), value: Buffer.from('x') }, { key: Buffer.from('old-2'), value: Buffer.from('y') }]);
    before.setApplied(groupId, 10);
    before.appendEntries(groupId, [{ term: 1, index: 11, type: 'normal', data: new Uint8Array([1]) }], 10);
    await db.write(before, true);
    // The snapshot file arrived and its point was persisted; then the process died before installing.
    const records: Array<[Buffer, Buffer]> = [[Buffer.from('new-1'), Buffer.from('p')], [Buffer.from('new-2'), Buffer.from('q')]];
    const snapDir = path.join(dir, 'snap');
    const writer = new SnapshotFileWriter(snapDir);
    writer.write(await bytesOf(records, 8));
    writer.finish();
    const point = new TurnBatch();
    point.setSnapshotMeta(groupId, header);
    point.deleteLogRange(groupId, header.index + 1, 11);
    await db.write(point, true);

    const loaded = await db.loadGroup(groupId);
    expect(loaded.applied).toBe(10);
    const recovered = await Member.recoverSnapshot(db, groupId, snapDir, loaded, pino({ level: 'silent' }));
    expect(recovered.applied).toBe(header.index);
    expect(recovered.confState).toEqual(header.confState);
    expect(recovered.snapshot).toEqual(header);
    expect(recovered.firstIndex).toBe(header.index + 1);
    expect(recovered.entries).toEqual([]); // the old log (index 11) is covered by the snapshot
    expect(recovered.stateRecords).toEqual(records);
    // Idempotent: recovering again changes nothing.
    expect((await Member.recoverSnapshot(db, groupId, snapDir, recovered, pino({ level: 'silent' }))).stateRecords).toEqual(records);
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
