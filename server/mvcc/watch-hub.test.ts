import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RefModel, norm } from './reference-model.ts';
import { MvccStore } from './store.ts';
import type { WriteOutcome } from './store.ts';
import { cmdA, isWrite, run, runGapped } from './model-arbitraries.ts';
import { REPLAY_CHUNK, REPLAY_CHUNK_BYTES, WatchHub } from './watch-hub.ts';
import type { WatchSink, WatchSpec } from './watch-hub.ts';
import type { MvccEvent } from './types.ts';
import { b, delOp, putOp, rq, txnOp } from './test-helpers.ts';

interface Recorder extends WatchSink {
  calls: Array<{ events: MvccEvent[]; revision: number }>;
  compacted: number[];
  events(): MvccEvent[];
}

function recorder(onEvents?: (events: MvccEvent[], revision: number) => void): Recorder {
  const r: Recorder = {
    calls: [],
    compacted: [],
    onEvents(events, revision) {
      r.calls.push({ events, revision });
      onEvents?.(events, revision);
    },
    onCompacted(rev) {
      r.compacted.push(rev);
    },
    events: () => r.calls.flatMap((c) => c.events),
  };
  return r;
}

function spec(key: string, rangeEnd = '', o: Partial<WatchSpec> = {}): WatchSpec {
  return { key: b(key), rangeEnd: b(rangeEnd), startRevision: 0, prevKv: false, noPut: false, noDelete: false, ...o };
}

/** A store whose writes are published to the hub, as the server does. */
function setup() {
  const store = new MvccStore();
  const hub = new WatchHub(store);
  const pub = <R>(out: WriteOutcome<R>): WriteOutcome<R> => {
    if (out.events.length > 0) hub.notify(out.events, out.revision);
    return out;
  };
  return { store, hub, pub };
}

const summary = (evs: MvccEvent[]): string[] => evs.map((e) => `${e.type}:${e.kv.key.toString('latin1')}@${e.kv.modRevision}${e.prevKv ? `<${e.prevKv.modRevision}` : ''}`);

/** Calls never split a revision and arrive in increasing revision order. */
function expectWholeOrderedRevisions(r: Recorder): void {
  let last = 0;
  for (const call of r.calls) {
    expect(call.events.length).toBeGreaterThan(0);
    const revs = call.events.map((e) => e.kv.modRevision);
    expect(revs[0]).toBeGreaterThan(last);
    for (let i = 1; i < revs.length; i++) expect(revs[i]).toBeGreaterThanOrEqual(revs[i - 1]);
    last = revs[revs.length - 1];
    expect(call.revision).toBeGreaterThanOrEqual(last);
  }
}

describe('WatchHub', () => {
  it('after the store is replaced (a snapshot installed), single-key and range watchers resume from their next revision', () => {
    const { store, hub, pub } = setup();
    const single = recorder();
    const range = recorder();
    hub.watch(spec('b'), single);
    hub.watch(spec('a', 'c'), range);
    pub(store.put(putOp('b', '1'))); // rev 2
    // The leader's store went on without this member: rev 3 (b), rev 4 (a), rev 5 (x, matches neither).
    const leader = new MvccStore();
    leader.put(putOp('b', '1'));
    leader.put(putOp('b', '2'));
    leader.put(putOp('a', '3'));
    leader.put(putOp('x', '4'));
    const records = new Map<string, Buffer>();
    for (const op of leader.drainPersistOps()) {
      if (op.value === null) records.delete(op.key.toString('latin1'));
      else records.set(op.key.toString('latin1'), op.value);
    }
    store.adopt(MvccStore.restore([...records].map(([k, v]) => [b(k), v] as [Buffer, Buffer])));
    hub.storeReplaced();
    pub(store.put(putOp('b', '5'))); // rev 6, live again
    expect(summary(single.events())).toEqual(['PUT:b@2', 'PUT:b@3', 'PUT:b@6']);
    expect(summary(range.events())).toEqual(['PUT:b@2', 'PUT:b@3', 'PUT:a@4', 'PUT:b@6']);
    expect(hub.watcherCount()).toBe(2);
  });

  it('delivers live events to single-key, range and from-key watchers', () => {
    const { store, hub, pub } = setup();
    const single = recorder();
    const range = recorder();
    const from = recorder();
    const all = recorder();
    hub.watch(spec('b'), single);
    hub.watch(spec('a', 'c'), range);
    hub.watch(spec('b', '\0'), from);
    hub.watch(spec('\0', '\0'), all);
    expect(hub.watcherCount()).toBe(4);
    pub(store.put(putOp('a', '1')));
    pub(store.put(putOp('b', '1')));
    pub(store.put(putOp('c', '1')));
    expect(summary(single.events())).toEqual(['PUT:b@3']);
    expect(summary(range.events())).toEqual(['PUT:a@2', 'PUT:b@3']);
    expect(summary(from.events())).toEqual(['PUT:b@3', 'PUT:c@4']);
    expect(summary(all.events())).toEqual(['PUT:a@2', 'PUT:b@3', 'PUT:c@4']);
    expect(single.calls[0].revision).toBe(3);
  });

  it('applies noPut / noDelete and strips prevKv unless asked', () => {
    const { store, hub, pub } = setup();
    pub(store.put(putOp('k', '1')));
    const plain = recorder();
    const withPrev = recorder();
    const noPut = recorder();
    const noDelete = recorder();
    hub.watch(spec('k'), plain);
    hub.watch(spec('k', '', { prevKv: true }), withPrev);
    hub.watch(spec('k', '', { noPut: true, prevKv: true }), noPut);
    hub.watch(spec('k', '', { noDelete: true }), noDelete);
    pub(store.put(putOp('k', '2')));
    pub(store.deleteRange(delOp('k')));
    expect(summary(plain.events())).toEqual(['PUT:k@3', 'DELETE:k@4']);
    expect(summary(withPrev.events())).toEqual(['PUT:k@3<2', 'DELETE:k@4<3']);
    expect(summary(noPut.events())).toEqual(['DELETE:k@4<3']);
    expect(summary(noDelete.events())).toEqual(['PUT:k@3']);
    expect(noPut.calls).toHaveLength(1);
  });

  it('replays history first, then continues live without gaps or duplicates', () => {
    const { store, hub, pub } = setup();
    pub(store.put(putOp('k', '1'))); // 2
    pub(store.put(putOp('x', '1'))); // 3
    pub(store.put(putOp('k', '2'))); // 4
    const r = recorder();
    hub.watch(spec('k', '', { startRevision: 2, prevKv: true }), r);
    expect(summary(r.events())).toEqual(['PUT:k@2', 'PUT:k@4<2']);
    // a write applied to the store but not yet notified when the watcher is created
    const late = store.put(putOp('k', '3')); // 5
    const r2 = recorder();
    hub.watch(spec('k', '', { startRevision: 3 }), r2);
    const r3 = recorder();
    hub.watch(spec('k'), r3); // from the next revision: 6
    hub.notify(late.events, late.revision);
    pub(store.put(putOp('k', '4'))); // 6
    expect(summary(r.events())).toEqual(['PUT:k@2', 'PUT:k@4<2', 'PUT:k@5<4', 'PUT:k@6<5']);
    expect(summary(r2.events())).toEqual(['PUT:k@4', 'PUT:k@5', 'PUT:k@6']);
    expect(summary(r3.events())).toEqual(['PUT:k@6']);
    expectWholeOrderedRevisions(r);
    expectWholeOrderedRevisions(r2);
  });

  it('cancels a watcher whose start revision is compacted', () => {
    const { store, hub, pub } = setup();
    for (let i = 0; i < 5; i++) pub(store.put(putOp('k', `${i}`)));
    store.compact(4);
    const r = recorder();
    hub.watch(spec('k', '', { startRevision: 3 }), r);
    expect(r.compacted).toEqual([4]);
    expect(r.calls).toEqual([]);
    expect(hub.watcherCount()).toBe(0);
    const ok = recorder();
    hub.watch(spec('k', '', { startRevision: 5 }), ok);
    expect(summary(ok.events())).toEqual(['PUT:k@5', 'PUT:k@6']);
    expect(hub.watcherCount()).toBe(1);
    // At the compaction revision itself (etcd allows it: clients watch from a Get's header revision).
    const at = recorder();
    hub.watch(spec('k', '', { startRevision: 4 }), at);
    expect(summary(at.events())).toEqual(['PUT:k@4', 'PUT:k@5', 'PUT:k@6']);
  });

  it('replays long histories in chunks that never split a revision', () => {
    const { store, hub, pub } = setup();
    for (let i = 0; i < REPLAY_CHUNK - 2; i++) pub(store.put(putOp('k', `${i}`)));
    const big = Array.from({ length: 10 }, (_, i) => rq.put(putOp(`k${i}`, 'v')));
    pub(store.txn(txnOp([], big)));
    for (let i = 0; i < 50; i++) pub(store.put(putOp('k', `${i}`)));
    const r = recorder();
    hub.watch(spec('k', 'l', { startRevision: 1 }), r);
    expect(r.calls.length).toBeGreaterThan(1);
    expect(r.events()).toHaveLength(REPLAY_CHUNK - 2 + 10 + 50);
    expectWholeOrderedRevisions(r);
    const txnRev = r.events()[REPLAY_CHUNK - 2].kv.modRevision;
    expect(r.calls.filter((c) => c.events.some((e) => e.kv.modRevision === txnRev))).toHaveLength(1);
  });

  it('keeps order when sinks write, watch or cancel from inside callbacks', () => {
    const { store, hub, pub } = setup();
    const observer = recorder();
    let created: Recorder | null = null;
    let victim = 0;
    const writer = recorder((events) => {
      const rev = events[0].kv.modRevision;
      if (rev === 2) pub(store.put(putOp('b', 'from-callback'))); // nested write + notify
      if (rev === 3 && created === null) {
        created = recorder();
        hub.watch(spec('\0', '\0', { startRevision: 2 }), created);
        hub.cancel(victim);
      }
    });
    hub.watch(spec('\0', '\0'), writer);
    const victimRec = recorder();
    victim = hub.watch(spec('\0', '\0'), victimRec);
    hub.watch(spec('\0', '\0'), observer);
    pub(store.put(putOp('a', '1'))); // 2, triggers 3 from inside the callback
    pub(store.put(putOp('c', '1'))); // 4
    expect(summary(observer.events())).toEqual(['PUT:a@2', 'PUT:b@3', 'PUT:c@4']);
    expect(summary(writer.events())).toEqual(['PUT:a@2', 'PUT:b@3', 'PUT:c@4']);
    expect(summary(created!.events())).toEqual(['PUT:a@2', 'PUT:b@3', 'PUT:c@4']);
    expect(summary(victimRec.events())).toEqual(['PUT:a@2']);
    expectWholeOrderedRevisions(observer);
    expectWholeOrderedRevisions(created!);
  });

  it('stops replay when the watcher is cancelled from its own callback', () => {
    const { store, hub, pub } = setup();
    for (let i = 0; i < 3 * REPLAY_CHUNK; i++) pub(store.put(putOp('k', `${i}`)));
    let handle = 0;
    const r = recorder(() => hub.cancel(handle));
    handle = hub.watch(spec('k', '', { startRevision: 1 }), r);
    // the handle is assigned after watch() returns; cancel(0) in the first callback is a no-op, so the
    // watcher is cancelled from the second chunk on
    pub(store.put(putOp('k', 'after')));
    // a short first chunk (4 events), three of REPLAY_CHUNK at most, one live delivery
    expect(r.calls.length).toBeLessThanOrEqual(5);
    hub.cancel(handle);
    pub(store.put(putOp('k', 'after2')));
    expect(r.events().some((e) => e.kv.value.toString() === 'after2')).toBe(false);
    expect(hub.watcherCount()).toBe(0);
  });

  it('isolates a throwing sink: others still get the revision, the error surfaces, the sink is dropped', () => {
    const { store, hub } = setup();
    const good = recorder();
    hub.watch(spec('k'), recorder(() => {
      throw new Error('boom');
    }));
    hub.watch(spec('k'), good);
    const out = store.put(putOp('k', '1'));
    expect(() => hub.notify(out.events, out.revision)).toThrow('boom');
    expect(summary(good.events())).toEqual(['PUT:k@2']);
    expect(hub.watcherCount()).toBe(1);
  });

  it('cancel removes watchers and empty groups; unknown handles are ignored', () => {
    const { store, hub, pub } = setup();
    const r = recorder();
    const h1 = hub.watch(spec('k'), r);
    const h2 = hub.watch(spec('a', 'z'), r);
    expect(h1).not.toBe(h2);
    hub.cancel(h1);
    hub.cancel(h1);
    hub.cancel(12345);
    expect(hub.watcherCount()).toBe(1);
    pub(store.put(putOp('k', '1')));
    expect(r.calls).toHaveLength(1); // only the range watcher
    hub.cancel(h2);
    pub(store.put(putOp('k', '2')));
    expect(r.calls).toHaveLength(1);
    expect(hub.watcherCount()).toBe(0);
  });
});

/** A recorder whose accepting() is switched by the test (a stream over its send budget says false). */
function slowRecorder(): Recorder & { open: boolean; parkedCalls: number } {
  const r = recorder() as Recorder & { open: boolean; parkedCalls: number };
  r.open = true;
  r.parkedCalls = 0;
  r.accepting = () => r.open;
  r.onParked = () => {
    r.parkedCalls++;
  };
  return r;
}

const revs = (r: Recorder): number[] => r.events().map((e) => e.kv.modRevision);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('WatchHub slow watchers (victims)', () => {
  it('parks a watcher whose sink refuses, then catches it up from the store exactly once, in order', () => {
    const { store, hub, pub } = setup();
    const slow = slowRecorder();
    const fast = recorder();
    const h = hub.watch(spec('k'), slow);
    hub.watch(spec('k'), fast);
    pub(store.put(putOp('k', 'a'))); // rev 2 (rev 1 is the empty store)
    slow.open = false;
    for (let i = 0; i < 20; i++) pub(store.put(putOp('k', `v${i}`)));
    expect(slow.parkedCalls).toBe(1);
    expect(hub.parkedCount()).toBe(1);
    expect(revs(slow)).toHaveLength(1);
    expect(revs(fast)).toHaveLength(21);
    expect(hub.resume(h)).toBe(false); // still refusing: stays parked
    slow.open = true;
    expect(hub.resume(h)).toBe(true);
    expect(hub.parkedCount()).toBe(0);
    pub(store.put(putOp('k', 'live')));
    expect(revs(slow)).toEqual(revs(fast));
    expectWholeOrderedRevisions(slow);
    expect(hub.resume(h)).toBe(true); // not parked: a no-op
  });

  it('a catch-up that fills the sink again stops, and the next resume continues where it stopped', () => {
    const { store, hub, pub } = setup();
    const value = 'x'.repeat(64 * 1024);
    const slow = slowRecorder();
    const first = store.currentRevision() + 1;
    const h = hub.watch(spec('k'), slow);
    slow.open = false;
    for (let i = 0; i < 100; i++) pub(store.put(putOp('k', value)));
    expect(revs(slow)).toEqual([]);
    let resumes = 0;
    const seen = () => slow.calls.length;
    for (;;) {
      // the sink takes one chunk per resume, then refuses (its stream filled up again)
      const before = seen();
      slow.open = true;
      const origOnEvents = slow.onEvents;
      slow.onEvents = (events, revision) => {
        origOnEvents(events, revision);
        slow.open = false;
      };
      const done = hub.resume(h);
      slow.onEvents = origOnEvents;
      resumes++;
      if (done) break;
      expect(seen()).toBe(before + 1);
    }
    expect(resumes).toBeGreaterThan(10);
    expect(revs(slow)).toEqual(range(first, first + 99));
    // every chunk is bounded: about REPLAY_CHUNK_BYTES, never the whole history at once
    for (const c of slow.calls) expect(c.events.length * value.length).toBeLessThanOrEqual(REPLAY_CHUNK_BYTES);
    expectWholeOrderedRevisions(slow);
  });

  it('a victim whose next revision was compacted meanwhile is told so on resume, and dropped', () => {
    const { store, hub, pub } = setup();
    const slow = slowRecorder();
    const h = hub.watch(spec('k'), slow);
    slow.open = false;
    for (let i = 0; i < 5; i++) pub(store.put(putOp('k', `v${i}`)));
    store.compact(store.currentRevision());
    slow.open = true;
    expect(hub.resume(h)).toBe(true);
    expect(slow.compacted).toEqual([store.currentRevision()]);
    expect(slow.events()).toEqual([]);
    expect(hub.watcherCount()).toBe(0);
  });

  it('a watch from a past revision on a refusing sink is parked before replaying anything', () => {
    const { store, hub, pub } = setup();
    for (let i = 0; i < 10; i++) pub(store.put(putOp('r/a', `${i}`)));
    const slow = slowRecorder();
    slow.open = false;
    const h = hub.watch(spec('r/', 'r0', { startRevision: 2 }), slow);
    expect(slow.calls).toEqual([]);
    expect(slow.parkedCalls).toBe(1);
    pub(store.put(putOp('r/b', 'x')));
    slow.open = true;
    expect(hub.resume(h)).toBe(true);
    pub(store.put(putOp('r/c', 'y')));
    expect(revs(slow)).toEqual(range(2, store.currentRevision()));
  });

  it('a parked watcher can be cancelled, and survives a store replacement', () => {
    const { store, hub, pub } = setup();
    const a = slowRecorder();
    const b2 = slowRecorder();
    const ha = hub.watch(spec('k'), a);
    const hb = hub.watch(spec('k', 'l'), b2);
    a.open = false;
    b2.open = false;
    pub(store.put(putOp('k', '1')));
    expect(hub.parkedCount()).toBe(2);
    hub.cancel(ha);
    expect(hub.resume(ha)).toBe(true);
    hub.storeReplaced();
    pub(store.put(putOp('k', '2')));
    b2.open = true;
    expect(hub.resume(hb)).toBe(true);
    expect(a.events()).toEqual([]);
    expect(revs(b2)).toEqual([2, 3]);
    expect(hub.watcherCount()).toBe(1);
  });

  it('property: sinks that refuse and accept at random still get every event exactly once, in order', () => {
    const KEYS = ['a', 'b', 'ab', 'c'];
    type Op =
      | { t: 'put'; key: string; big: boolean }
      | { t: 'del'; key: string }
      | { t: 'txn'; keys: string[] }
      | { t: 'refuse' | 'accept' | 'resume'; w: number };
    const opA: fc.Arbitrary<Op> = fc.oneof(
      { weight: 4, arbitrary: fc.record({ t: fc.constant('put' as const), key: fc.constantFrom(...KEYS), big: fc.boolean() }) },
      { weight: 1, arbitrary: fc.record({ t: fc.constant('del' as const), key: fc.constantFrom(...KEYS) }) },
      { weight: 1, arbitrary: fc.record({ t: fc.constant('txn' as const), keys: fc.uniqueArray(fc.constantFrom(...KEYS), { minLength: 1 }) }) },
      { weight: 3, arbitrary: fc.record({ t: fc.constantFrom('refuse' as const, 'accept' as const, 'resume' as const), w: fc.nat(3) }) },
    );
    const watchA = fc.array(fc.record({ key: fc.constantFrom(...KEYS), rangeEnd: fc.constantFrom('', '', 'b', '\0'), start: fc.nat(6) }), { minLength: 1, maxLength: 4 });
    fc.assert(
      fc.property(fc.array(opA, { maxLength: 80 }), watchA, (ops, watches) => {
        const { store, hub, pub } = setup();
        pub(store.put(putOp('a', 'seed')));
        const sinks = watches.map(() => slowRecorder());
        const handles = watches.map((w, i) => hub.watch(spec(w.key, w.rangeEnd, { startRevision: w.start, prevKv: true }), sinks[i]));
        const first = watches.map((w) => (w.start === 0 ? store.currentRevision() + 1 : w.start));
        for (const op of ops) {
          if (op.t === 'put') pub(store.put(putOp(op.key, op.big ? 'v'.repeat(100_000) : 'v')));
          else if (op.t === 'del') pub(store.deleteRange(delOp(op.key)));
          else if (op.t === 'txn') pub(store.txn(txnOp([], op.keys.map((k) => rq.put(putOp(k, 't'))))));
          else if (op.w < sinks.length) {
            if (op.t === 'refuse') sinks[op.w].open = false;
            else if (op.t === 'accept') sinks[op.w].open = true;
            else hub.resume(handles[op.w]);
          }
        }
        for (let i = 0; i < sinks.length; i++) {
          sinks[i].open = true;
          expect(hub.resume(handles[i])).toBe(true);
        }
        pub(store.put(putOp('a', 'last')));
        for (let i = 0; i < sinks.length; i++) {
          const expected = store.eventsSince(b(watches[i].key), b(watches[i].rangeEnd), first[i]);
          expect(summary(sinks[i].events())).toEqual(summary(expected));
          expectWholeOrderedRevisions(sinks[i]);
        }
        expect(hub.parkedCount()).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});

describe('WatchHub vs reference model', () => {
  const KEYS = ['a', 'b', 'c', 'ab', 'a\0', '\0', '\xff'];
  const specA = fc.record({
    key: fc.constantFrom(...KEYS),
    rangeEnd: fc.constantFrom('', '', '\0', 'c', 'b'),
    start: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 30 })),
    prevKv: fc.boolean(),
    noPut: fc.boolean(),
    noDelete: fc.boolean(),
  });
  // gap -1: today's path (the store's next revision) when no other shard used one since; otherwise
  // the write lands at an oracle revision `gap` past the last one handed out (gaps, as on a shard).
  type Step = { t: 'cmd'; cmd: Parameters<typeof run>[1]; gap: number } | { t: 'watch'; s: typeof specA extends fc.Arbitrary<infer S> ? S : never } | { t: 'cancel'; pick: number };
  const stepA: fc.Arbitrary<Step> = fc.oneof(
    { weight: 5, arbitrary: fc.tuple(cmdA, fc.integer({ min: -1, max: 3 })).map(([cmd, gap]) => ({ t: 'cmd', cmd, gap }) as Step) },
    { weight: 2, arbitrary: specA.map((s) => ({ t: 'watch', s }) as Step) },
    { weight: 1, arbitrary: fc.nat(20).map((pick) => ({ t: 'cancel', pick }) as Step) },
  );

  it('every watcher sees exactly the model history for its range and lifetime (gapped oracle revisions included)', () => {
    fc.assert(
      fc.property(fc.array(stepA, { maxLength: 50 }), (steps) => {
        const store = new MvccStore();
        const model = new RefModel();
        const hub = new WatchHub(store);
        interface W {
          handle: number;
          s: Step extends infer X ? (X extends { t: 'watch'; s: infer S } ? S : never) : never;
          from: number;
          until: number;
          compactedAt: number | null;
          compactedWhenCreated: number;
          rec: Recorder;
        }
        const ws: W[] = [];
        let oracle = model.rev;
        for (const step of steps) {
          if (step.t === 'cmd') {
            const proxy = {
              put: (op: Parameters<MvccStore['put']>[0], at?: number) => publish(store.put(op, at)),
              deleteRange: (op: Parameters<MvccStore['deleteRange']>[0], at?: number) => publish(store.deleteRange(op, at)),
              txn: (op: Parameters<MvccStore['txn']>[0], at?: number) => publish(store.txn(op, at)),
              range: (op: Parameters<MvccStore['range']>[0], through?: number) => store.range(op, through),
              compact: (rev: number, through?: number) => store.compact(rev, through),
            };
            function publish<R>(out: WriteOutcome<R>): WriteOutcome<R> {
              if (out.events.length > 0) hub.notify(out.events, out.revision);
              return out;
            }
            const at = !isWrite(step.cmd) || (step.gap < 0 && oracle === model.rev) ? undefined : oracle + 1 + Math.max(0, step.gap);
            expect(runGapped(proxy, step.cmd, at, oracle)).toEqual(runGapped(model, step.cmd, at, oracle));
            oracle = at ?? Math.max(oracle, model.rev);
          } else if (step.t === 'watch') {
            const rec = recorder();
            const s = step.s;
            const handle = hub.watch(spec(s.key, s.rangeEnd, { startRevision: s.start, prevKv: s.prevKv, noPut: s.noPut, noDelete: s.noDelete }), rec);
            const compacted = s.start > 0 && s.start < model.compacted;
            ws.push({ handle, s, from: s.start === 0 ? model.rev + 1 : s.start, until: Infinity, compactedAt: compacted ? model.compacted : null, compactedWhenCreated: model.compacted, rec });
          } else {
            const live = ws.filter((w) => w.until === Infinity && w.compactedAt === null);
            if (live.length > 0) {
              const w = live[step.pick % live.length];
              hub.cancel(w.handle);
              w.until = model.rev;
            }
          }
        }
        const inRange = (k: string, key: string, end: string): boolean => (end === '' ? k === key : end === '\0' ? k >= key : k >= key && k < end);
        for (const w of ws) {
          if (w.compactedAt !== null) {
            expect(w.rec.compacted).toEqual([w.compactedAt]);
            expect(w.rec.calls).toEqual([]);
            continue;
          }
          const expected: MvccEvent[] = [];
          for (let r = Math.max(1, w.from); r <= Math.min(model.rev, w.until); r++) {
            const evs = model.evs[r].filter((ev) => inRange(ev.kv.key.toString('latin1'), w.s.key, w.s.rangeEnd));
            evs.forEach((ev, i) => {
              if (ev.type === 'PUT' ? w.s.noPut : w.s.noDelete) return;
              if (r === w.compactedWhenCreated) {
                // Started at the compaction revision: only what compaction kept (each key's last put).
                if (ev.type !== 'PUT' || evs.slice(i + 1).some((later) => later.kv.key.equals(ev.kv.key))) return;
                expected.push({ ...ev, prevKv: null });
                return;
              }
              expected.push(w.s.prevKv ? ev : { ...ev, prevKv: null });
            });
          }
          expect(norm(w.rec.events())).toEqual(norm(expected));
          expect(w.rec.compacted).toEqual([]);
          expectWholeOrderedRevisions(w.rec);
        }
        expect(hub.watcherCount()).toBe(ws.filter((w) => w.until === Infinity && w.compactedAt === null).length);
      }),
      { numRuns: 300 },
    );
  });
});

