// A deadline as another member receives it: its own clock plus the time the sender had left
// (server/shard/shard-peer-wire.ts, deadlineToWire), so that members whose wall clocks disagree agree on
// how long a caller waits. On one machine it lands at or after the sent deadline, later by the transit.
import { expect } from 'vitest';

/** How much later than sent a deadline may arrive on a loaded machine (the transit of one call). */
export const DEADLINE_TRANSIT_SLACK_MS = 1_000;

export function expectArrivedDeadline(receivedMs: number, sentMs: number): void {
  expect(receivedMs).toBeGreaterThanOrEqual(sentMs);
  expect(receivedMs - sentMs).toBeLessThan(DEADLINE_TRANSIT_SLACK_MS);
}

/** `received` with its deadline checked as arrived and put back as sent, for comparing whole requests. */
export function asSent<T extends { deadlineMs: number }>(received: T | undefined, sent: { deadlineMs: number }): T | undefined {
  if (received === undefined) return undefined;
  expectArrivedDeadline(received.deadlineMs, sent.deadlineMs);
  return { ...received, deadlineMs: sent.deadlineMs };
}
