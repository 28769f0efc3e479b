// Shutdown order: the controller stops (in-flight reconciles finish) before the Lease is released;
// a controller that does not stop in time keeps the Lease unreleased (it expires instead).

import { describe, expect, it } from 'vitest';
import { shutDownInOrder } from './shutdown.ts';

describe('shutDownInOrder', () => {
  it('releases the Lease only after the controller has stopped and its in-flight reconcile finished', async () => {
    const log: string[] = [];
    let finishReconcile: () => void = () => undefined;
    const inFlight = new Promise<void>((resolve) => { finishReconcile = resolve; });
    const done = shutDownInOrder({
      stopController: async () => {
        log.push('controller stopping');
        await inFlight;
        log.push('controller stopped');
      },
      releaseLease: async () => { log.push('lease released'); },
      closeRest: () => { log.push('closed'); },
      controllerStopTimeoutMs: 5_000,
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(log).toEqual(['controller stopping']);
    finishReconcile();
    expect(await done).toEqual({ leaseReleased: true });
    expect(log).toEqual(['controller stopping', 'controller stopped', 'lease released', 'closed']);
  });

  it('does not release the Lease when the controller does not stop within the grace period', async () => {
    const log: string[] = [];
    const result = await shutDownInOrder({
      stopController: () => new Promise<void>(() => undefined),
      releaseLease: async () => { log.push('lease released'); },
      closeRest: () => { log.push('closed'); },
      controllerStopTimeoutMs: 20,
      onControllerStopTimeout: () => log.push('timeout'),
    });
    expect(result).toEqual({ leaseReleased: false });
    expect(log).toEqual(['timeout', 'closed']);
  });
});
