// Lease-based leader election with two replicas against the in-memory API double and a manual clock:
// one leader at a time, takeover only after the Lease expires, 409 races lost cleanly, release on stop;
// MicroTime fields sent with six fractional digits and read back from the server's strings; what the
// elector reports for /readyz; the identity once per log line.

import { Writable } from 'node:stream';
import type { V1Lease } from '@kubernetes/client-node';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { KubeApiError } from '../kube/kube-api.ts';
import { MICRO_TIME_PATTERN } from '../kube/kube-time.ts';
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

  it('sends acquireTime and renewTime as MicroTime (six fractional digits) on create, renew, takeover and release', async () => {
    const api = new InMemoryApiDouble();
    const clock = { nowMs: Date.UTC(2026, 11, 2, 21, 25, 54, 4) };
    const sent: V1Lease[] = [];
    const create = api.createLease.bind(api);
    const replace = api.replaceLease.bind(api);
    api.createLease = async (lease) => { sent.push(lease); return create(lease); };
    api.replaceLease = async (lease) => { sent.push(lease); return replace(lease); };
    const [a, b] = pair(api, clock);
    await a.tryAcquireOrRenew();
    clock.nowMs += 2_000;
    await a.tryAcquireOrRenew();
    clock.nowMs += 20_000;
    await b.tryAcquireOrRenew();
    await b.stop();
    expect(sent).toHaveLength(4);
    // What client-node writes on the wire is JSON.stringify of these values.
    const wire = sent.map((lease) => JSON.parse(JSON.stringify(lease)) as { spec: { acquireTime?: string; renewTime?: string } });
    expect(wire[0]?.spec.renewTime).toBe('2026-12-02T21:25:54.004000Z');
    for (const lease of wire) {
      expect(lease.spec.renewTime).toMatch(MICRO_TIME_PATTERN);
      expect(lease.spec.acquireTime).toMatch(MICRO_TIME_PATTERN);
    }
    // An update carries only the metadata it needs: no server-written creationTimestamp/managedFields.
    expect(Object.keys(sent[1]?.metadata ?? {}).sort()).toEqual(['name', 'namespace', 'resourceVersion', 'uid']);
  });

  it('reads the renewTime the server sends back (a six-digit string, not a Date) to judge expiry', async () => {
    const api = new InMemoryApiDouble();
    const clock = { nowMs: Date.UTC(2026, 11, 2, 21, 25, 54, 4) };
    const serverLease = (holder: string, renewTime: string): V1Lease => ({
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
      metadata: { name: 'lead', namespace: 'synod-system', resourceVersion: '7' },
      // client-node leaves MicroTime fields as the strings the server sent.
      spec: { holderIdentity: holder, leaseDurationSeconds: 15, renewTime: renewTime as unknown as Date, acquireTime: '2026-12-02T21:00:00.123456Z' as unknown as Date },
    });
    const replaced: V1Lease[] = [];
    api.getLease = async () => serverLease('other', '2026-12-02T21:25:50.004123Z');
    api.replaceLease = async (lease) => { replaced.push(lease); return lease; };
    const [a] = pair(api, clock);
    expect(await a.tryAcquireOrRenew()).toBe(false);
    expect(a.status()).toMatchObject({ observedHolder: 'other', observedFresh: true, consecutiveFailures: 0 });
    // 16 s after that renewal the lease has expired.
    clock.nowMs += 12_000;
    expect(await a.tryAcquireOrRenew()).toBe(true);
    expect(replaced).toHaveLength(1);
    // Renewing its own lease keeps the server's acquireTime to the microsecond.
    api.getLease = async () => serverLease('a', '2026-12-02T21:26:06.004000Z');
    clock.nowMs += 2_000;
    expect(await a.tryAcquireOrRenew()).toBe(true);
    expect(JSON.parse(JSON.stringify(replaced[1]?.spec)) as unknown).toMatchObject({ acquireTime: '2026-12-02T21:00:00.123456Z', renewTime: '2026-12-02T21:26:08.004000Z' });
  });

  it('reports failed Lease requests in its status, and contact again once the server answers', async () => {
    const api = new InMemoryApiDouble();
    const clock = { nowMs: 1_000_000 };
    const [a] = pair(api, clock);
    expect(a.status()).toMatchObject({ leading: false, observedHolder: null, lastContactMs: 0 });
    const getLease = api.getLease.bind(api);
    api.getLease = () => Promise.reject(new KubeApiError(503, 'unavailable'));
    await a.tryAcquireOrRenew();
    await a.tryAcquireOrRenew();
    expect(a.status()).toMatchObject({ leading: false, consecutiveFailures: 2 });
    api.getLease = getLease;
    clock.nowMs += 2_000;
    await a.tryAcquireOrRenew();
    expect(a.status()).toMatchObject({ leading: true, observedHolder: 'a', consecutiveFailures: 0, lastContactMs: 1_002_000 });
  });

  it('writes the identity once per log line (it is in the logger\'s bindings already)', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk: Buffer, _encoding, done) { lines.push(...chunk.toString().split('\n').filter((l) => l !== '')); done(); } });
    const base = pino({ level: 'info', base: { component: 'synod-operator', identity: 'a' } }, sink);
    const api = new InMemoryApiDouble();
    const clock = { nowMs: 1_000_000 };
    let sleeps = 0;
    const elector = new LeaderElector({
      api, namespace: 'synod-system', leaseName: 'lead', identity: 'a', now: () => clock.nowMs, logger: base,
      sleep: async () => {
        clock.nowMs += 2_000;
        if (++sleeps === 2) await elector.stop();
      },
    });
    await elector.run({ onStartedLeading: () => undefined, onStoppedLeading: () => undefined });
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines) expect(line.match(/"identity"/g), line).toHaveLength(1);
  });
});
