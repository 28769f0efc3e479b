// The process-cluster tests' members run from one esbuild bundle of the member's sources, built at the
// start of each test run (vitest globalSetup of the process and exclusive lanes). A member started
// from the .ts sources spends ~0.65 s of CPU getting ready, a third of it resolving, reading and
// type-stripping ~470 modules; from the bundle ~0.15 s less, and `make test` starts ~320 members.
// The bundle is the same code: the build runs on every test run, so it never lags the sources, and
// these stay outside it (each loaded from node_modules as the sources load it):
//  - @grpc/grpc-js, whose server internals preframed-response.ts patches through `require` (a bundled
//    copy would not be the one patched);
//  - classic-level, a native addon found from its own directory.
// bcrypt-worker.ts becomes bcrypt-worker.mjs beside the bundle (bcrypt-pool.ts picks by its own
// extension). The layout puts the bundle two directories below a root holding node_modules and proto
// (links to the repository's), as the modules find proto/ from their own directory.
// Stack traces in a member's log point into the bundle (function names are kept).
// What runs the sources as users do: `synod local` (test/local-cluster*.test.ts), the operator's kubelet
// stand-in (test/support/process-kubelet.ts), the backup commands (test/support/synod-backup.ts), and
// the bench scripts, whose ProcessCluster finds no bundle outside a test run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The `synod` command's sources. */
export const SOURCE_CLI = path.join(ROOT, 'server', 'cli', 'synod.ts');
/** Set by the globalSetup below for the test workers it starts: the bundle's path. */
const BUNDLE_ENV = 'SYNOD_TEST_MEMBER_BUNDLE';

/** The `synod` entry a test starts members and CLI commands with: the run's bundle, or the sources. */
export function synodEntry(): string {
  return process.env[BUNDLE_ENV] ?? SOURCE_CLI;
}

/** Builds the bundle into a fresh temporary root; returns the entry's path. */
export async function buildMemberBundle(): Promise<{ root: string; cli: string }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-member-bundle-'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(root, 'node_modules'));
  fs.symlinkSync(path.join(ROOT, 'proto'), path.join(root, 'proto'));
  const outdir = path.join(root, 'server', 'dist');
  // Loaded here, not at the top: the workers import this module for synodEntry() alone.
  const { build } = await import('esbuild');
  await build({
    entryPoints: [SOURCE_CLI, path.join(ROOT, 'server', 'auth', 'bcrypt-worker.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    outdir,
    entryNames: '[name]',
    outExtension: { '.js': '.mjs' },
    external: ['@grpc/grpc-js', 'classic-level'],
    keepNames: true,
    // The CommonJS dependencies' own requires (bundled ESM has no `require`).
    banner: { js: "import { createRequire as __synodCreateRequire } from 'node:module'; const require = __synodCreateRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  return { root, cli: path.join(outdir, 'synod.mjs') };
}

/** vitest globalSetup: builds the bundle for this run's workers and removes it afterwards. */
export default async function setup(): Promise<() => void> {
  const { root, cli } = await buildMemberBundle();
  process.env[BUNDLE_ENV] = cli;
  return () => fs.rmSync(root, { recursive: true, force: true });
}
