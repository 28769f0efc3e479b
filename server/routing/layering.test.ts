// The sharding layers sit below the API: nothing in server/routing, server/placement or server/shard
// (tests aside) may import server/api or server/cli, so they stay pure and reusable by every edge.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');

describe('sharding layers', () => {
  it('import neither server/api nor server/cli', () => {
    const offenders: string[] = [];
    let files = 0;
    for (const dir of ['routing', 'placement', 'shard']) {
      for (const f of readdirSync(join(ROOT, dir))) {
        if (!f.endsWith('.ts') || f.endsWith('.test.ts')) continue;
        files++;
        const src = readFileSync(join(ROOT, dir, f), 'utf8');
        for (const m of src.matchAll(/from\s+'([^']+)'/g)) {
          if (/(^|\/)\.\.\/(api|cli)\//.test(m[1])) offenders.push(`${dir}/${f} imports ${m[1]}`);
        }
      }
    }
    expect(files).toBeGreaterThan(5);
    expect(offenders).toEqual([]);
  });
});
