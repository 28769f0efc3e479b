// The Dockerfiles, checked without Docker (none runs here): multi-stage on the Node 24 slim base,
// non-root, entrypoints that exist, and every file the entrypoint imports (transitively) copied
// into the image and allowed by the Dockerfile's .dockerignore.

import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `runs`: what the ENTRYPOINT starts when it is not `entry` itself (the operator's esbuild bundle of it). */
interface Image { dockerfile: string; entry: string; stages: number; runs?: string }

const images: Record<string, Image> = {
  server: { dockerfile: 'images/server/Dockerfile', entry: 'operator/bootstrap/server-entrypoint.ts', stages: 2 },
  operator: { dockerfile: 'images/operator/Dockerfile', entry: 'operator/main.ts', stages: 3, runs: 'operator/dist/main.mjs' },
};

/** Relative .ts imports of a file, transitively (repository-relative paths). */
function importClosure(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(path.join(ROOT, file), 'utf8');
    for (const match of text.matchAll(/from '(\.{1,2}\/[^']+\.ts)'/g)) visit(path.relative(ROOT, path.resolve(path.dirname(path.join(ROOT, file)), match[1])));
  };
  visit(entry);
  return seen;
}

function copiedDirs(dockerfile: string): string[] {
  return [...dockerfile.matchAll(/^COPY (?!--from)(\S+) /gm)].map((m) => m[1].replace(/\/$/, ''));
}

describe('images', () => {
  for (const [name, image] of Object.entries(images)) {
    describe(name, () => {
      const text = readFileSync(path.join(ROOT, image.dockerfile), 'utf8');

      it('is multi-stage on the Node 24 slim base and runs as a non-root user', () => {
        expect(text).toMatch(/^ARG NODE_IMAGE=node:24-bookworm-slim$/m);
        expect(text.match(/^FROM /gm)).toHaveLength(image.stages);
        expect(text).toMatch(/^FROM \$\{NODE_IMAGE\} AS deps$/m);
        expect(text).toMatch(/^USER 10001:10001$/m);
        expect(text).toContain('--omit=dev');
      });

      it('starts the entrypoint it ships', () => {
        expect(text).toContain(`ENTRYPOINT ["node", "/app/${image.runs ?? image.entry}"]`);
        if (image.runs !== undefined) {
          expect(text).toContain(`bundle-operator.sh /tools/node_modules/.bin/esbuild ${image.entry} /app/${image.runs}`);
          // The image bundles with the esbuild the tests bundle members with (test/support/member-bundle.ts).
          const pinned = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies.esbuild;
          expect(text).toMatch(new RegExp(`^ARG ESBUILD_VERSION=${pinned.replaceAll('.', '\\.')}$`, 'm'));
        }
        expect(existsSync(path.join(ROOT, image.entry))).toBe(true);
      });

      it('copies every file the entrypoint imports, and .dockerignore lets them through', () => {
        const copied = copiedDirs(text);
        const ignore = readFileSync(path.join(ROOT, `${image.dockerfile}.dockerignore`), 'utf8');
        const allowed = [...ignore.matchAll(/^!(\S+?)(\/\*\*)?$/gm)].map((m) => m[1]);
        for (const file of importClosure(image.entry)) {
          expect(copied.some((dir) => file === dir || file.startsWith(`${dir}/`)), `${file} is copied`).toBe(true);
          expect(allowed.some((dir) => file === dir || file.startsWith(`${dir}/`)), `${file} passes .dockerignore`).toBe(true);
          expect(file.startsWith('operator/testing/'), `${file} is test code`).toBe(false);
        }
        for (const dir of copied) expect(existsSync(path.join(ROOT, dir)), dir).toBe(true);
      });
    });
  }

  it('the server entrypoint needs only operator/bootstrap, operator/etcd, operator/api/types.ts and the server tree the image copies', () => {
    expect([...importClosure(images.server.entry)].sort()).toEqual([
      'operator/api/types.ts', // names and paths shared with the operator (TLS mounts, Secret keys)
      'operator/bootstrap/server-entrypoint.ts',
      'operator/etcd/etcd-admin.ts',
      'server/cli/member-node-flags.ts', // the Node flags every member process runs with
      'server/transport/channel-recovery.ts', // the admin channels' DNS re-resolution and backoff
    ]);
  });
});
