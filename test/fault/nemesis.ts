// The nemesis: a seeded schedule of faults, one at a time, each injected, held for a while, then
// healed. Kinds: kill -9 (then restart), pause (SIGSTOP, then SIGCONT), isolate a member from all
// others, cut a single link (a partial, non-transitive partition) and, with five or more members,
// split a minority from the majority. A target is a member index or "the current leader", resolved
// when the fault starts, so a seed replays the same schedule though not always the same victims.
//
// Membership: 'replace' removes a member (MemberRemove), wipes its data, and on heal adds it back as
// a learner with a new id, starts it empty and promotes it once it has caught up.
import { Rng } from '../../server/raft/rng.ts';
import { FaultCluster } from './fault-cluster.ts';

export type FaultKind = 'kill' | 'pause' | 'isolate' | 'cut-link' | 'split' | 'replace';

export interface FaultStep {
  /** When to inject, ms after the nemesis starts. */
  atMs: number;
  kind: FaultKind;
  target: number | 'leader';
  /** A second member some kinds need (the far end of a cut link, the partner in a minority). */
  other: number;
  holdMs: number;
}

export interface InjectedFault {
  atMs: number;
  text: string;
}

interface FaultAction {
  /** Injects the fault on `victim`; resolves with a description and the heal function. */
  inject(c: FaultCluster, victim: number, other: number): Promise<{ text: string; heal: () => Promise<void> }>;
}

const others = (c: FaultCluster, i: number): number[] => [...Array(c.size).keys()].filter((j) => j !== i);

const FAULTS: Record<FaultKind, FaultAction> = {
  kill: {
    async inject(c, v) {
      await c.kill(v);
      return { text: `kill -9 ${c.name(v)}`, heal: () => c.restart(v) };
    },
  },
  pause: {
    async inject(c, v) {
      c.pause(v);
      return { text: `pause ${c.name(v)}`, heal: async () => c.resume(v) };
    },
  },
  isolate: {
    async inject(c, v) {
      await c.partition(FaultCluster.cutsBetween([v], others(c, v)));
      return { text: `isolate ${c.name(v)}`, heal: () => c.partition([]) };
    },
  },
  'cut-link': {
    async inject(c, v, o) {
      const peer = others(c, v)[o % (c.size - 1)];
      await c.partition([[v, peer]]);
      return { text: `cut link ${c.name(v)}-${c.name(peer)}`, heal: () => c.partition([]) };
    },
  },
  replace: {
    async inject(c, v) {
      await c.removeMember(v);
      return { text: `remove ${c.name(v)}, wipe it, add it back`, heal: async () => c.addBackMember(v) };
    },
  },
  split: {
    async inject(c, v, o) {
      const rest = others(c, v);
      const minority = [v, ...rest.splice(o % rest.length, 1)].slice(0, Math.floor((c.size - 1) / 2));
      const majority = others(c, -1).filter((j) => !minority.includes(j));
      await c.partition(FaultCluster.cutsBetween(minority, majority));
      return { text: `split {${minority.map((j) => c.name(j)).join(',')}} | {${majority.map((j) => c.name(j)).join(',')}}`, heal: () => c.partition([]) };
    },
  },
};

/**
 * The schedule for a seed: faults back to back from 1 s in until 1.5 s before the end. Without
 * `membership`, no 'replace' (a cluster that does not serve membership changes).
 */
export function planSchedule(seed: number, runMs: number, members: number, opts: { membership: boolean } = { membership: true }): FaultStep[] {
  const rng = new Rng(seed);
  const kinds: FaultKind[] = members >= 5 ? ['kill', 'pause', 'isolate', 'cut-link', 'split', 'replace'] : ['kill', 'pause', 'isolate', 'cut-link', 'replace'];
  if (!opts.membership) kinds.splice(kinds.indexOf('replace'), 1);
  const steps: FaultStep[] = [];
  let t = 1_000;
  for (;;) {
    const holdMs = 700 + rng.nextInt(2_000);
    if (t + holdMs > runMs - 1_500) break;
    steps.push({
      atMs: t,
      kind: kinds[rng.nextInt(kinds.length)],
      target: rng.chance(0.5) ? 'leader' : rng.nextInt(members),
      other: rng.nextInt(members),
      holdMs,
    });
    t += holdMs + 300 + rng.nextInt(1_000);
  }
  return steps;
}

/**
 * Runs the schedule against the cluster; resolves when every step has been injected and healed.
 * Injecting and healing take real time (a restart waits for the process), so steps can fall behind
 * their planned times; a step that could no longer be healed before `runMs` is skipped.
 */
export async function runNemesis(c: FaultCluster, schedule: FaultStep[], clock: () => number, runMs: number): Promise<InjectedFault[]> {
  const start = clock();
  const injected: InjectedFault[] = [];
  for (const step of schedule) {
    if (Math.max(clock() - start, step.atMs) + step.holdMs > runMs - 1_000) break;
    const wait = start + step.atMs - clock();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    let victim = typeof step.target === 'number' ? step.target : await c.leaderIndex(1_500);
    const wasLeader = step.target === 'leader' && victim !== null;
    victim ??= step.other;
    const atMs = clock() - start;
    const { text, heal } = await FAULTS[step.kind].inject(c, victim, step.other);
    await new Promise((r) => setTimeout(r, step.holdMs));
    await heal();
    injected.push({ atMs, text: `${text}${wasLeader ? ' (leader)' : ''} for ${(step.holdMs / 1000).toFixed(1)}s` });
  }
  return injected;
}
