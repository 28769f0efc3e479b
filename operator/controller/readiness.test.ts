// /readyz: ready while leading with synced informers, or standing by behind a fresh Lease held by
// another replica; not ready while Lease requests fail, before the API server answered, or while the
// Lease is free/expired and not yet taken.

import { describe, expect, it } from 'vitest';
import type { ElectionStatus } from './leader-election.ts';
import { operatorReadiness } from './readiness.ts';

const NOW = 1_000_000;
const election = (over: Partial<ElectionStatus>): ElectionStatus => ({
  leading: false, observedHolder: 'other-pod', observedFresh: true, lastContactMs: NOW - 1_000, consecutiveFailures: 0, leaseDurationMs: 15_000, ...over,
});

describe('operatorReadiness', () => {
  it('is ready as a leader only once its informers have synced', () => {
    const leading = election({ leading: true, observedHolder: 'me' });
    expect(operatorReadiness({ nowMs: NOW, controllerStarted: true, informersSynced: false, election: leading })).toEqual({ ready: false, message: 'leader: informers not synced' });
    expect(operatorReadiness({ nowMs: NOW, controllerStarted: true, informersSynced: true, election: leading })).toEqual({ ready: true, message: 'leader: informers synced' });
  });

  it('is ready as a standby behind a fresh Lease held by another, and says so', () => {
    expect(operatorReadiness({ nowMs: NOW, controllerStarted: false, informersSynced: false, election: election({}) }))
      .toEqual({ ready: true, message: 'standby: lease held by other-pod' });
  });

  it('is not ready while its Lease requests keep failing, leader or not', () => {
    expect(operatorReadiness({ nowMs: NOW, controllerStarted: false, informersSynced: false, election: election({ consecutiveFailures: 3 }) }).ready).toBe(false);
    const failingLeader = election({ leading: true, observedHolder: 'me', consecutiveFailures: 1 });
    expect(operatorReadiness({ nowMs: NOW, controllerStarted: true, informersSynced: true, election: failingLeader }))
      .toEqual({ ready: false, message: 'leader: 1 lease request(s) failed in a row' });
  });

  it('is not ready before it has read the Lease, nor when its last answer is older than a lease duration', () => {
    expect(operatorReadiness({ nowMs: NOW, controllerStarted: false, informersSynced: false, election: election({ observedHolder: null, lastContactMs: 0 }) }).ready).toBe(false);
    expect(operatorReadiness({ nowMs: NOW, controllerStarted: false, informersSynced: false, election: election({ lastContactMs: NOW - 16_000 }) }).ready).toBe(false);
  });

  it('is not ready while the Lease is free or expired but not yet its own (it should be acquiring)', () => {
    expect(operatorReadiness({ nowMs: NOW, controllerStarted: false, informersSynced: false, election: election({ observedFresh: false }) }).ready).toBe(false);
    expect(operatorReadiness({ nowMs: NOW, controllerStarted: false, informersSynced: false, election: election({ observedHolder: '' }) }).ready).toBe(false);
  });

  it('without leader election: ready once the controller runs with synced informers', () => {
    expect(operatorReadiness({ nowMs: NOW, controllerStarted: false, informersSynced: false, election: undefined }).ready).toBe(false);
    expect(operatorReadiness({ nowMs: NOW, controllerStarted: true, informersSynced: true, election: undefined })).toEqual({ ready: true, message: 'leader election off: informers synced' });
  });
});
