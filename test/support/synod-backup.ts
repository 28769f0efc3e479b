// Test helpers around backups and stored data: the `synod` CLI as a child process, restoring a backup
// into every member of a fresh cluster (stopped, data dirs replaced, started again), and altering one
// stored MVCC value behind a stopped member's back (what HashKV must notice).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClassicLevel } from 'classic-level';
import { stateRange } from '../../server/storage/keys.ts';
import type { ProcessCluster } from './process-cluster.ts';

const SYNOD_CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'server', 'cli', 'synod.ts');

/** `synod <args>` run to completion (30 s at most). */
export function synodCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SYNOD_CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout, stderr });
    });
  });
}

/**
 * Stops `cluster`'s members if any runs (one from ProcessCluster.unstarted has none), restores `file` into
 * each data dir (`synod snapshot restore` with the member's name, peer URL and `restoreArgs`), starts the
 * members and waits until ready. Returns what each restore printed; throws with its stderr if one fails.
 */
export async function restoreInto(cluster: ProcessCluster, file: string, restoreArgs: string[] = []): Promise<string[]> {
  await cluster.stop();
  const initialCluster = cluster.members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
  const outputs: string[] = [];
  for (const m of cluster.members) {
    fs.rmSync(m.dataDir, { recursive: true, force: true });
    const r = await synodCli([
      'snapshot', 'restore', file, '--name', m.name, '--data-dir', m.dataDir, '--initial-cluster', initialCluster,
      '--initial-cluster-token', 'restored', '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peerPort}`, ...restoreArgs,
    ]);
    if (r.code !== 0) throw new Error(`snapshot restore for ${m.name} failed (${r.code}): ${r.stderr}`);
    outputs.push(r.stdout);
  }
  for (let i = 0; i < cluster.members.length; i++) cluster.startMember(i);
  await cluster.waitReady(60_000);
  return outputs;
}

/**
 * Flips the last byte of the first live MVCC value whose record key contains `keyPart`, in the first of
 * `groupIds` that has one, in a stopped member's LevelDB. Whether one was found.
 */
export async function alterStoredValue(dataDir: string, groupIds: readonly number[], keyPart: string): Promise<boolean> {
  const db = new ClassicLevel<Buffer, Buffer>(path.join(dataDir, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  try {
    for (const groupId of groupIds) {
      for await (const [key, value] of db.iterator(stateRange(groupId))) {
        // State key: 'g' group(4) 's', then the store-relative key: 'k' 0x01 <user key>... (a revision record), live.
        if (key[6] === 0x6b && key[7] === 0x01 && key.includes(Buffer.from(keyPart)) && value[0] === 0x00) {
          const changed = Buffer.from(value);
          changed[changed.length - 1] ^= 0x01;
          await db.put(key, changed);
          return true;
        }
      }
    }
    return false;
  } finally {
    await db.close();
  }
}
