// The supervised informer with a stand-in API server (list + watch driven by the test): initial list,
// watch events, 410 Gone handled by a re-list (deletions noticed), errors restarting it with backoff.

import type { V1ConfigMap } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { StandInCollection, StandInWatch } from '../testing/stand-in-watch.ts';
import type { ChangeKind } from './supervised-informer.ts';
import { SupervisedInformer } from './supervised-informer.ts';

function configMap(name: string, value = 'v'): V1ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'ns' }, data: { value } };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

function setup() {
  const watch = new StandInWatch();
  const store = new StandInCollection<V1ConfigMap>();
  const changes: [ChangeKind, string][] = [];
  const delays: number[] = [];
  const informer = new SupervisedInformer<V1ConfigMap>({
    name: 'configmaps',
    path: '/api/v1/configmaps',
    watch,
    list: store.list,
    labelSelector: 'app=x',
    onChange: (kind, o) => changes.push([kind, o.metadata?.name ?? '']),
    restartBaseDelayMs: 100,
    restartMaxDelayMs: 400,
    delay: async (ms) => {
      delays.push(ms);
    },
  });
  return { watch, store, changes, delays, informer };
}

describe('SupervisedInformer with a stand-in API server', () => {
  it('lists, then watches from the list resourceVersion with the label selector', async () => {
    const { watch, store, changes, informer } = setup();
    store.put(configMap('a'));
    await informer.start();
    expect(informer.synced).toBe(true);
    expect(changes).toEqual([['add', 'a']]);
    expect(watch.latest.params).toMatchObject({ resourceVersion: String(store.resourceVersion), labelSelector: 'app=x' });
    expect(informer.get('a', 'ns')?.data?.['value']).toBe('v');
  });

  it('applies watch events to the cache and reports them', async () => {
    const { watch, changes, informer } = setup();
    await informer.start();
    watch.latest.send('ADDED', { ...configMap('b'), metadata: { name: 'b', namespace: 'ns', resourceVersion: '5' } });
    watch.latest.send('MODIFIED', { ...configMap('b', 'w'), metadata: { name: 'b', namespace: 'ns', resourceVersion: '6' } });
    expect(informer.get('b', 'ns')?.data?.['value']).toBe('w');
    watch.latest.send('DELETED', { ...configMap('b'), metadata: { name: 'b', namespace: 'ns', resourceVersion: '7' } });
    expect(informer.get('b', 'ns')).toBeUndefined();
    expect(changes).toEqual([['add', 'b'], ['update', 'b'], ['delete', 'b']]);
  });

  it('re-lists after 410 Gone and reports objects deleted while the watch was away', async () => {
    const { watch, store, changes, informer } = setup();
    store.put(configMap('keep'));
    store.put(configMap('gone'));
    await informer.start();
    expect(store.listCalls).toBe(1);
    store.remove('ns', 'gone');
    store.put(configMap('new'));
    const gone = Object.assign(new Error('Gone'), { statusCode: 410 });
    watch.latest.end(gone);
    await settle();
    expect(store.listCalls).toBe(2);
    expect(changes).toContainEqual(['delete', 'gone']);
    expect(changes).toContainEqual(['add', 'new']);
    expect(informer.list('ns').map((o) => o.metadata?.name).sort()).toEqual(['keep', 'new']);
    expect(watch.streams).toHaveLength(2);
  });

  it('re-lists after an ERROR event with code 410 followed by the stream closing', async () => {
    const { watch, store, informer } = setup();
    await informer.start();
    watch.latest.send('ERROR', { kind: 'Status', code: 410, message: 'too old resource version' });
    watch.latest.end(null);
    await settle();
    expect(store.listCalls).toBe(2);
  });

  it('resumes from the last resourceVersion after a clean close, without a re-list', async () => {
    const { watch, store, informer } = setup();
    await informer.start();
    watch.latest.send('ADDED', { ...configMap('c'), metadata: { name: 'c', namespace: 'ns', resourceVersion: '42' } });
    watch.latest.end(null);
    await settle();
    expect(store.listCalls).toBe(1);
    expect(watch.latest.params['resourceVersion']).toBe('42');
  });

  it('restarts after a watch error with exponential backoff', async () => {
    const { watch, store, delays, informer } = setup();
    await informer.start();
    for (let i = 0; i < 4; i++) {
      watch.latest.end(Object.assign(new Error('Internal Server Error'), { statusCode: 500 }));
      await settle();
    }
    expect(delays).toEqual([100, 200, 400, 400]);
    expect(informer.restarts).toBe(4);
    expect(watch.streams).toHaveLength(5);
    expect(watch.streams.slice(0, 4).every((s) => s.aborted)).toBe(true);
    expect(store.listCalls).toBe(1);
  });

  it('restarts after a failed list and after a watch that cannot connect', async () => {
    const { watch, store, informer } = setup();
    store.failNextList = new Error('connection refused');
    await informer.start();
    await settle();
    expect(store.listCalls).toBe(2);
    expect(informer.synced).toBe(true);
    watch.failNextWith = new Error('ECONNREFUSED');
    watch.latest.end(Object.assign(new Error('boom'), { statusCode: 500 }));
    await settle();
    expect(informer.restarts).toBe(3);
    expect(watch.streams.length).toBeGreaterThanOrEqual(2);
  });

  it('stays stopped after stop()', async () => {
    const { watch, informer } = setup();
    await informer.start();
    await informer.stop();
    expect(watch.latest.aborted).toBe(true);
    const before = watch.streams.length;
    watch.latest.end(Object.assign(new Error('boom'), { statusCode: 500 }));
    await settle();
    expect(watch.streams).toHaveLength(before);
  });
});
