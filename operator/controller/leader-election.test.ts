// Lease-based leader election with two replicas against the in-memory API double and a manual clock:
// one leader at a time, takeover only after the Lease expires, 409 races lost cleanly, release on stop.

import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { InMemoryApiDouble } from '../testing/in-memory-api-double.ts';
import { LeaderElector } from './leader-election.ts';

const logger = pino({ level: 'silent' });

function pair(api: InMemoryApiDouble, clock: { nowMs: number }): [LeaderElector, LeaderElector] {
  const make = (identity: string): LeaderElector =>
    new LeaderElector({ api, namespace: 'synod-system', leaseName: 'lead', identity, leaseDurationMs: 15_000, renewDeadlineMs: 10_000, now: () => clock.nowMs, logger });
  return [make('a'), make('b')];
}

function holder(api: InMemoryApiDouble): string | undefined {
  return (api.get('Lease', 'synod-system', 'lead') as { spec?: { holderIdentity?: string } } | undefined)?.spec?.holderIdentity;
}

describe('LeaderElector', () => {
  it('lets exactly one of two replicas lead, and keeps it while it renews', async () => {
    const api = new InMemoryApiDouble();
    const clock = { nowMs: 1_000_000 };
    const [a, b] = pair(api, clock);
    expect(await a.tryAcquireOrRenew()).toBe(true);
    expect(await b.tryAcquireOrRenew()).toBe(false);
    for (let i = 0; i < 5; i++) {
      clock.nowMs += 5_000;
      expect(await a.tryAcquireOrRenew()).toBe(true);
      expect(await b.tryAcquireOrRenew()).toBe(false);
    }
    expect(holder(api)).toBe('a');
  });

  it('hands over only after the holder stops renewing for a whole lease duration', async () => {
    const api = new InMemoryApiDouble();
    const clock = { nowMs: 1_000_000 };
    const [a, b] = pair(api, clock);
    await a.tryAcquireOrRenew();
    clock.nowMs += 14_000;
    expect(await b.tryAcquireOrRenew()).toBe(false);
    clock.nowMs += 2_000;
    expect(await b.tryAcquireOrRenew()).toBe(true);
    expect(holder(api)).toBe('b');
    expect((api.get('Lease', 'synod-system', 'lead') as { spec: { leaseTransitions: number } }).spec.leaseTransitions).toBe(1);
    // The old holder finds out on its next renewal.
    expect(await a.tryAcquireOrRenew()).toBe(false);
    expect(a.leading).toBe(false);
  });

  it('loses a race on a stale resourceVersion with a 409 instead of stealing the Lease', async () => {
    const api = new InMemoryApiDouble();
    const clock = { nowMs: 1_000_000 };
    const [a, b] = pair(api, clock);
    await a.tryAcquireOrRenew();
    clock.nowMs += 20_000;
    // b read the expired Lease, but a renews first: b's replace carries a stale resourceVersion.
    const stale = await api.getLease('synod-system', 'lead');
    await a.tryAcquireOrRenew();
    await expect(api.replaceLease({ ...stale!, spec: { ...stale!.spec, holderIdentity: 'b' } })).rejects.toMatchObject({ statusCode: 409 });
    expect(await b.tryAcquireOrRenew()).toBe(false);
    expect(holder(api)).toBe('a');
  });

  it('keeps leading through a failed renewal within the renew deadline, not beyond', async () => {
    const api = new InMemoryApiDouble();
    const clock = { nowMs: 1_000_000 };
    const [a] = pair(api, clock);
    await a.tryAcquireOrRenew();
    clock.nowMs += 2_000;
    api.conflictNext.add('getLease');
    expect(await a.tryAcquireOrRenew()).toBe(true);
    clock.nowMs += 11_000;
    api.conflictNext.add('getLease');
    expect(await a.tryAcquireOrRenew()).toBe(false);
  });

  it('releases the Lease on stop so a standby takes over at once', async () => {
    const api = new InMemoryApiDouble();
    const clock = { nowMs: 1_000_000 };
    const [a, b] = pair(api, clock);
    await a.tryAcquireOrRenew();
    await a.stop();
    expect(holder(api)).toBe('');
    expect(await b.tryAcquireOrRenew()).toBe(true);
  });

  it('run() calls onStartedLeading once leading and onStoppedLeading when the Lease is lost', async () => {
    const api = new InMemoryApiDouble();
    const clock = { nowMs: 1_000_000 };
    const log: string[] = [];
    const elector = new LeaderElector({
      api, namespace: 'synod-system', leaseName: 'lead', identity: 'a', now: () => clock.nowMs, logger,
      sleep: async () => {
        clock.nowMs += 2_000;
        // Someone else takes the Lease by force after a few renewals.
        if (clock.nowMs > 1_008_000) {
          const lease = await api.getLease('synod-system', 'lead');
          await api.replaceLease({ ...lease!, spec: { ...lease!.spec, holderIdentity: 'intruder', renewTime: new Date(clock.nowMs) } });
        }
      },
    });
    await elector.run({ onStartedLeading: () => log.push('started'), onStoppedLeading: () => log.push('stopped') });
    expect(log).toEqual(['started', 'stopped']);
  });
});
