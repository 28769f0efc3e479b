// The fault suite against real server processes. `make test` runs a short version (two seeds,
// 15 s each); `make soak` (SYNOD_SOAK=1) runs more and longer seeds, alternating 3 and 5 members,
// within a fixed time budget (SYNOD_SOAK_MINUTES, default 10). SYNOD_FAULT_SEED=<n> replays one
// seed's schedule (with SYNOD_SOAK=1 for a soak seed). Every run prints a
// summary line: operations checked and faults injected.
import { describe, it } from 'vitest';
import { runFaultTest, type FaultRunOptions } from './run-fault-test.ts';
import { expectCleanRun } from './expect-clean-run.ts';

const soak = process.env.SYNOD_SOAK === '1';
const replay = process.env.SYNOD_FAULT_SEED ? Number(process.env.SYNOD_FAULT_SEED) : null;
/** The soak's overall budget; the last seed that would overrun it is not started. */
const SOAK_BUDGET_MS = Number(process.env.SYNOD_SOAK_MINUTES ?? 10) * 60_000;

/** What one soak seed costs end to end: 60 s of faults, cluster start, healing and checking. */
const SOAK_SEED_MS = 100_000;

/** A seed's run: the same seed always gets the same shape, so SYNOD_FAULT_SEED replays it exactly. */
function optionsFor(seed: number): FaultRunOptions {
  return soak ? { seed, members: seed % 2 === 0 ? 5 : 3, durationMs: 60_000, clients: 8 } : { seed, members: 3, durationMs: 15_000 };
}

function runs(): FaultRunOptions[] {
  if (replay !== null) return [optionsFor(replay)];
  if (!soak) return [1, 2].map(optionsFor);
  const out: FaultRunOptions[] = [];
  for (let seed = 101, spent = 0; spent + SOAK_SEED_MS <= SOAK_BUDGET_MS; seed++, spent += SOAK_SEED_MS) out.push(optionsFor(seed));
  return out;
}

describe(`fault suite (${soak ? 'soak' : 'short'})`, () => {
  for (const run of runs()) {
    it(
      `seed ${run.seed}: ${run.members} members, ${run.durationMs / 1000}s of faults under concurrent clients and watchers`,
      async () => {
        const report = await runFaultTest(run);
        expectCleanRun(report);
      },
      run.durationMs + 90_000,
    );
  }
});
