// What every fault-suite run must show, one- or many-shard: no violation, a finished linearizability
// check over enough operations, enough faults, and watch events delivered.
import { expect } from 'vitest';
import type { FaultRunReport } from './run-fault-test.ts';

export function expectCleanRun(report: FaultRunReport): void {
  console.log(report.summary);
  for (const v of report.violations.slice(0, 20)) console.log(`  ${v}`);
  expect(report.violations).toEqual([]);
  expect(report.linearizability.timedOut).toBe(false);
  expect(report.faults.length).toBeGreaterThanOrEqual(3);
  expect(report.linearizability.operations).toBeGreaterThan(100);
  expect(report.watchEvents).toBeGreaterThan(0);
}
