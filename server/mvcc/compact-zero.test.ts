// Compact(0) as etcd answers it: a never-compacted store accepts it (etcd's compactMainRev starts at
// -1) as a no-op; after a real compaction, or for a negative revision, it is "compacted".
import { describe, expect, it } from 'vitest';
import { MvccStore } from './store.ts';

describe('MvccStore.compact(0)', () => {
  it('succeeds on a fresh store and compacts nothing', () => {
    const s = new MvccStore();
    expect(() => s.compact(0)).not.toThrow();
    expect(s.compactedRevision()).toBe(0);
    expect(() => s.compact(-1)).toThrow(/compacted/);
    expect(() => s.compact(1)).not.toThrow();
  });

  it('is refused after any compaction, and a negative revision always', () => {
    const s = new MvccStore();
    expect(() => s.compact(-1)).toThrow(/compacted/);
    expect(() => s.compact(1)).not.toThrow();
    expect(() => s.compact(0)).toThrow(/compacted/);
  });
});
