// The bcrypt worker pool under pressure: a job whose deadline passes while it waits is dropped unrun, a
// full queue refuses at once, and a crashed worker fails only the job it ran.
import { describe, expect, it } from 'vitest';
import { MAX_QUEUED_JOBS, THREAD_COUNT, bcryptCompare, bcryptHash, crashBcryptWorkersForTest } from './bcrypt-pool.ts';
import { PasswordBusyError, PasswordDeadlineError } from './job-lane.ts';

/** One cost-13 hash per thread: every thread busy for a few hundred milliseconds. */
const occupyEveryThread = (): Array<Promise<string>> => Array.from({ length: THREAD_COUNT }, () => bcryptHash('slow', 13));

describe('bcrypt pool', () => {
  it('drops a job whose deadline passed while every thread was busy, without running it', async () => {
    const busy = occupyEveryThread();
    const late = bcryptHash('late', 4, Date.now() + 20);
    await expect(late).rejects.toBeInstanceOf(PasswordDeadlineError);
    // The busy ones still finish, and a job with time left runs after them.
    for (const h of await Promise.all(busy)) expect(h).toMatch(/^\$2b\$13\$/);
    const inTime = await bcryptHash('slow', 4, Date.now() + 10_000);
    expect(await bcryptCompare('slow', inTime, Date.now() + 10_000)).toBe(true);
  });

  it(`refuses at once past ${MAX_QUEUED_JOBS} waiting jobs; those already queued all run`, async () => {
    const busy = occupyEveryThread();
    const queued = Array.from({ length: MAX_QUEUED_JOBS }, (_, i) => bcryptHash(`pw${i}`, 4));
    await expect(bcryptHash('one too many', 4)).rejects.toBeInstanceOf(PasswordBusyError);
    const hashes = await Promise.all(queued);
    expect(await Promise.all(hashes.map((h, i) => bcryptCompare(`pw${i}`, h)))).toEqual(hashes.map(() => true));
    await Promise.all(busy);
  });

  it('a crashed worker fails the job it ran; the next job gets a new worker', async () => {
    const running = bcryptHash('slow', 13);
    await new Promise((r) => setTimeout(r, 50)); // the job has reached its worker
    await crashBcryptWorkersForTest();
    await expect(running).rejects.toThrow(/exited/);
    expect(await bcryptCompare('again', await bcryptHash('again', 4))).toBe(true);
  });
});
