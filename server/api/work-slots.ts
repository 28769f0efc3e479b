// How many of one kind of heavy work a member runs at once: backups (Maintenance.Snapshot streams: each
// reads the whole store and spools its MVCC records beside the member's data, about the store's size on
// disk, before it sends) and hashes (Hash, HashKV: each reads and checksums the whole store on the main
// thread). Without a bound, a client opening many at once could fill the member's disk or its cores. Calls
// past `maxRunning` wait their turn in arrival order; past `maxWaiting` more they are refused at once
// (etcd's "too many requests"). A waiting call whose client cancels, or whose deadline passes, leaves the
// queue.
export type SlotRelease = () => void;

/** Backups a member makes at once (each spools about the store's size on disk), and how many more may wait. */
export const BACKUPS_AT_ONCE = 2;
export const BACKUPS_WAITING = 8;
/** Hash and HashKV a member computes at once (each about 1 s of its main thread per 100,000 keys), and waiting. */
export const HASHES_AT_ONCE = 1;
export const HASHES_WAITING = 8;

export class WorkSlots {
  private running = 0;
  private readonly waiting: Array<(release: SlotRelease) => void> = [];
  readonly maxRunning: number;
  readonly maxWaiting: number;

  constructor(maxRunning: number, maxWaiting: number) {
    this.maxRunning = maxRunning;
    this.maxWaiting = maxWaiting;
    if (!(maxRunning >= 1 && maxWaiting >= 0)) throw new Error(`WorkSlots: bad bounds ${maxRunning}/${maxWaiting}`);
  }

  get runningCount(): number {
    return this.running;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  /**
   * A slot: its release (call it once, when the backup ends however it ends), once one is free; 'full'
   * when too many wait already; 'cancelled' if `cancelled` settles first.
   */
  acquire(cancelled: Promise<void>): Promise<SlotRelease | 'full' | 'cancelled'> {
    if (this.running < this.maxRunning) return Promise.resolve(this.grant());
    if (this.waiting.length >= this.maxWaiting) return Promise.resolve('full');
    return new Promise((resolve) => {
      const turn = (release: SlotRelease): void => resolve(release);
      this.waiting.push(turn);
      void cancelled.then(() => {
        const i = this.waiting.indexOf(turn);
        if (i < 0) return; // granted already: its holder releases it
        this.waiting.splice(i, 1);
        resolve('cancelled');
      });
    });
  }

  /**
   * Runs `fn` in a slot once one is free and releases it however `fn` ends; 'full' and 'cancelled' as
   * `acquire` answers them, without running `fn`.
   */
  async run<T>(cancelled: Promise<void>, fn: () => Promise<T>): Promise<{ value: T } | 'full' | 'cancelled'> {
    const slot = await this.acquire(cancelled);
    if (slot === 'full' || slot === 'cancelled') return slot;
    try {
      return { value: await fn() };
    } finally {
      slot();
    }
  }

  private grant(): SlotRelease {
    this.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      const next = this.waiting.shift();
      if (next !== undefined) next(this.grant());
    };
  }
}
