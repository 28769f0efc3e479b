// Events carry metav1.Time stamps: whole seconds on the wire, as the API server stores them.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { KubeApi } from '../kube/kube-api.ts';
import { EventRecorder } from './event-recorder.ts';

describe('EventRecorder', () => {
  it('stamps events in whole seconds and never throws when the API refuses', async () => {
    const sent: CoreV1Event[] = [];
    let refuse = false;
    const api = {
      createEvent: async (event: CoreV1Event): Promise<void> => {
        if (refuse) throw new Error('403 forbidden');
        sent.push(event);
      },
    } as unknown as KubeApi;
    const recorder = new EventRecorder(api, pino({ level: 'silent' }), 'op-1', () => new Date(Date.UTC(2026, 11, 2, 21, 25, 54, 4)));
    await recorder.record({ name: 'c', namespace: 'ns', uid: 'u-1' }, 'Warning', 'DataFromAnotherCluster', 'm');
    const wire = JSON.parse(JSON.stringify(sent[0])) as Record<string, unknown>;
    expect(wire.firstTimestamp).toBe('2026-12-02T21:25:54Z');
    expect(wire.lastTimestamp).toBe('2026-12-02T21:25:54Z');
    refuse = true;
    await expect(recorder.record({ name: 'c', namespace: 'ns', uid: 'u-1' }, 'Normal', 'R', 'm')).resolves.toBeUndefined();
  });
});
