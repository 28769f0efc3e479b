// The order a lane starts its files in: longest first, so that the last files to start are short and
// the lane does not end with one worker running a long file while the other core idles. vitest's own
// order is longest first only from its results cache (node_modules/.vite), which a fresh clone — CI's
// every run — does not have: there it starts the largest files first, and file size says little about
// run time (the fault suites are small files of long runs). So a file's weight is, in this order:
// its duration in vitest's cache (a local rerun), its duration in test/support/file-durations.json
// (seconds, from a fresh clone's `make test`; regenerate with scripts/file-durations.ts after adding
// or reshaping long files), or, for a file in neither, the median of the known ones.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** test/support/file-durations.json (scripts/file-durations.ts writes it). */
export const DURATIONS_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'file-durations.json');

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    // Seconds per file, paths relative to the repository root.
    const committed = JSON.parse(fs.readFileSync(DURATIONS_FILE, 'utf8')) as Record<string, number>;
    const unknownSeconds = median(Object.values(committed));
    const root = this.ctx.config.root;
    const weight = new Map<TestSpecification, number>();
    for (const spec of files) {
      const relativePath = path.relative(root, spec.moduleId);
      const cachedMs = this.ctx.cache.getFileTestResults(`${spec.project.name}:${relativePath}`)?.duration;
      weight.set(spec, cachedMs !== undefined ? cachedMs / 1000 : (committed[relativePath] ?? unknownSeconds));
    }
    return [...files].sort((a, b) => weight.get(b)! - weight.get(a)!);
  }
}
