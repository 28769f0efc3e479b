// The operator's shutdown order. The controller stops first and its in-flight reconciles finish
// while this replica still holds the Lease; only then is the Lease released, so a standby that takes
// over at once never acts beside a reconcile of ours. If the controller does not stop within the
// grace period the Lease is NOT released: the standby waits for it to expire instead.

export interface ShutdownSteps {
  /** Stops the informers and the work queue and resolves when in-flight reconciles have finished. */
  stopController: () => Promise<void>;
  /** Stops campaigning and releases the Lease if held. */
  releaseLease: () => Promise<void>;
  /** Everything else (admin channels, the metrics server). */
  closeRest: () => void | Promise<void>;
  /** How long to wait for the controller; Kubernetes' default termination grace is 30 s. */
  controllerStopTimeoutMs: number;
  onControllerStopTimeout?: () => void;
}

/** Runs the steps in order; resolves with whether the Lease was released. */
export async function shutDownInOrder(steps: ShutdownSteps): Promise<{ leaseReleased: boolean }> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), steps.controllerStopTimeoutMs);
  });
  // A controller that failed to stop may still run reconciles: treated like one that did not stop.
  const stopped = steps.stopController().then(() => 'stopped' as const, () => 'failed' as const);
  const outcome = await Promise.race([stopped, timedOut]);
  clearTimeout(timer);
  let leaseReleased = false;
  if (outcome === 'stopped') {
    await steps.releaseLease();
    leaseReleased = true;
  } else {
    steps.onControllerStopTimeout?.();
  }
  await steps.closeRest();
  return { leaseReleased };
}
