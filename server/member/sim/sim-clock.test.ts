// SimClock's pause (SIGSTOP for a simulated process): what falls due for a paused owner runs when the
// pause ends, in its order; other owners run on time; an interval loses the ticks it missed.
import { describe, expect, it } from 'vitest';
import { SimClock } from './sim-clock.ts';

describe('SimClock pauseOwner', () => {
  it('defers a paused owner\'s timers to the end of the pause, in order, and leaves others on time', async () => {
    const clock = new SimClock(1_000);
    const ran: string[] = [];
    clock.schedule(10, () => ran.push(`a1@${clock.now}`), 'a');
    clock.schedule(20, () => ran.push(`a2@${clock.now}`), 'a');
    clock.schedule(15, () => ran.push(`b@${clock.now}`), 'b');
    clock.schedule(5, () => ran.push(`a0@${clock.now}`), 'a');
    clock.pauseOwner('a', 1_050);
    expect(clock.pausedUntil('a')).toBe(1_050);
    expect(clock.pausedUntil('b')).toBe(0);
    while (await clock.step());
    expect(ran).toEqual(['b@1015', 'a0@1050', 'a1@1050', 'a2@1050']);
    expect(clock.pausedUntil('a')).toBe(0);
  });

  it('an interval of a paused owner fires once at the end of the pause, then on its period from there', async () => {
    const clock = new SimClock(0);
    const ticks: number[] = [];
    clock.schedule(10, () => ticks.push(clock.now), 'a', 10);
    clock.pauseOwner('a', 45);
    while (clock.now < 70 && (await clock.step()));
    expect(ticks.slice(0, 3)).toEqual([45, 55, 65]);
  });
});
