// Node's on-disk compile cache for `make test` (type-stripped TypeScript and V8 code): every process
// the tests start loads the same few hundred modules (a Synod member: ~570), hundreds of times over.
// Node checks each entry against its source, so an edit only costs that module's next compile;
// NODE_DISABLE_COMPILE_CACHE=1 turns the cache off, NODE_COMPILE_CACHE=<dir> moves it.
//
// Node writes the cache when a process exits normally, and the tests end most members with SIGKILL,
// so `warmCompileCache` (vitest globalSetup) loads a member's modules once, in a process that exits,
// before the first cluster starts.
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { SOURCE_CLI, synodEntry } from './member-bundle.ts';

export const COMPILE_CACHE_DIR = process.env.NODE_COMPILE_CACHE ?? path.join(os.tmpdir(), 'synod-test-compile-cache');

/**
 * Loads every module `synod` imports (its --help exits right after) with the cache on, from the sources
 * and from the run's member bundle (test/support/member-bundle.ts, the globalSetup before this one).
 * Never fails the run.
 */
export default async function warmCompileCache(): Promise<void> {
  const entries = [...new Set([SOURCE_CLI, synodEntry()])];
  await Promise.all(
    entries.map(
      (entry) =>
        new Promise<void>((resolve) => {
          execFile(process.execPath, [entry, '--help'], { env: { ...process.env, NODE_COMPILE_CACHE: COMPILE_CACHE_DIR }, timeout: 30_000 }, () => resolve());
        }),
    ),
  );
}
