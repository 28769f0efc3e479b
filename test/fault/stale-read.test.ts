// The checker must catch a deliberately broken build. With --experimental-unsafe-stale-reads a
// member serves linearizable reads from its local store without ReadIndex. Scenario: write, cut the
// leader off from the other two, write again through the new majority, then read from the old
// leader. Broken build: the old leader answers with the value it has, which is stale, and the
// checker rejects the history. Correct build, same scenario: that read fails (no leader / timeout),
// and the history is linearizable.
import { afterEach, describe, expect, it } from 'vitest';
import { checkLinearizability, type LinearizabilityResult } from '../checker/linearizability.ts';
import { KvClient } from '../support/kv-client.ts';
import { FaultCluster } from './fault-cluster.ts';
import { HistoryRecorder, execute, monotonicClock } from './workload.ts';
import type { KvInput, KvOutput } from '../checker/history.ts';

let cluster: FaultCluster | null = null;
afterEach(async () => {
  await cluster?.destroy();
  cluster = null;
});

interface ScenarioResult {
  result: LinearizabilityResult;
  /** Outcomes of the reads sent to the partitioned old leader (null: the request failed). */
  oldLeaderReads: Array<KvOutput | null>;
}

async function staleReadScenario(unsafe: boolean): Promise<ScenarioResult> {
  cluster = await FaultCluster.start({ size: 3, extraArgs: unsafe ? ['--experimental-unsafe-stale-reads'] : [] });
  const c = cluster;
  const recorder = new HistoryRecorder(monotonicClock());
  const clients = c.cluster.members.map((_, i) => new KvClient(c.endpointOf(i)));
  const run = (member: number, input: KvInput, timeoutMs = 2_000): Promise<KvOutput | null> =>
    recorder.record(member, input, () => execute(clients[member], input, timeoutMs));
  try {
    const oldLeader = (await c.leaderIndex(10_000))!;
    expect(oldLeader).not.toBeNull();
    const majority = [0, 1, 2].filter((i) => i !== oldLeader);
    expect(await run(oldLeader, { kind: 'put', key: 'k', value: 'before' })).not.toBeNull();
    // Let the followers apply it too (polled off the record), so the only difference later is the partition.
    for (const m of majority) {
      const deadline = Date.now() + 10_000;
      while ((await clients[m].range('k', { serializable: true })).kvs[0]?.value.toString() !== 'before') {
        if (Date.now() > deadline) throw new Error(`${c.name(m)} never applied the first write`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    await c.partition(FaultCluster.cutsBetween([oldLeader], majority));
    // Write through the majority until it has elected a new leader and accepted the write.
    let written: KvOutput | null = null;
    for (let attempt = 0; attempt < 40 && written === null; attempt++) {
      written = await run(majority[attempt % 2], { kind: 'put', key: 'k', value: 'after' }, 1_000);
      if (written === null) await new Promise((r) => setTimeout(r, 200));
    }
    expect(written).not.toBeNull();

    // Read from the partitioned old leader (a linearizable read, the default).
    const oldLeaderReads: Array<KvOutput | null> = [];
    for (let i = 0; i < 3; i++) oldLeaderReads.push(await run(oldLeader, { kind: 'get', key: 'k' }, 1_500));
    for (const m of majority) await run(m, { kind: 'get', key: 'k' });

    await c.partition([]);
    return { result: checkLinearizability(recorder.ops), oldLeaderReads };
  } finally {
    for (const kv of clients) kv.close();
  }
}

describe('the linearizability checker against a deliberately broken build', () => {
  it('--experimental-unsafe-stale-reads: a partitioned old leader serves a stale read and the checker rejects the history', async () => {
    const { result, oldLeaderReads } = await staleReadScenario(true);
    console.log(`[stale-read] unsafe build: old leader answered ${JSON.stringify(oldLeaderReads)}; checker: ${result.violations.length} violations\n  ${result.violations.join('\n  ')}`);
    expect(oldLeaderReads.some((r) => r?.kind === 'get' && r.found?.value === 'before')).toBe(true);
    expect(result.ok).toBe(false);
    expect(result.violations.join('\n')).toMatch(/key k: not linearizable/);
    expect(result.violations.join('\n')).toMatch(/revision went back in real time/);
  }, 60_000);

  it('the correct build, same scenario: the old leader refuses the read and the history is linearizable', async () => {
    const { result, oldLeaderReads } = await staleReadScenario(false);
    console.log(`[stale-read] correct build: old leader answered ${JSON.stringify(oldLeaderReads)}; checker: ${result.ok ? 'linearizable' : result.violations.join('; ')}`);
    expect(oldLeaderReads.every((r) => r === null || (r.kind === 'get' && r.found?.value === 'after'))).toBe(true);
    expect(result.violations).toEqual([]);
    expect(result.operations).toBeGreaterThanOrEqual(4);
  }, 60_000);
});
