// /health's query, as etcd 3.5 reads it: serializable=true, and exclude=<alarm> any number of times.
import { describe, expect, it } from 'vitest';
import { parseHealthQuery } from './etcd-health.ts';

describe('parseHealthQuery', () => {
  it('reads serializable and every exclude, and ignores the rest', () => {
    expect(parseHealthQuery('')).toEqual({ serializable: false, excludedAlarms: new Set() });
    expect(parseHealthQuery('serializable=true')).toEqual({ serializable: true, excludedAlarms: new Set() });
    expect(parseHealthQuery('serializable=1&exclude=NOSPACE&exclude=CORRUPT&x=y')).toEqual({ serializable: false, excludedAlarms: new Set(['NOSPACE', 'CORRUPT']) });
  });
});
