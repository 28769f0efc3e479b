// The operator's /readyz decision, as a pure function of what the process knows: whether it leads
// (or runs without leader election), whether its informers have synced, and what its leader elector
// last learnt from the API server. Ready means "this replica is doing its job": a leader whose caches
// are synced, or a standby that has reached the API server and seen the Lease held by another
// replica that is renewing it. An elector whose Lease requests keep failing, or that has not yet
// heard from the API server, is not ready, so `helm --wait` and the pod's Ready condition do not
// report an operator that cannot lead.

import type { ElectionStatus } from './leader-election.ts';

export interface ReadinessInput {
  nowMs: number;
  /** The controller runs (this replica leads, or leader election is off). */
  controllerStarted: boolean;
  informersSynced: boolean;
  /** undefined when leader election is off. */
  election: ElectionStatus | undefined;
}

export interface Readiness {
  ready: boolean;
  /** One line for the probe's body, e.g. "standby: lease held by synod-operator-7d9f". */
  message: string;
}

export function operatorReadiness(input: ReadinessInput): Readiness {
  const { election } = input;
  if (election !== undefined && election.consecutiveFailures > 0) {
    // A leader keeps leading through failed renewals until its renew deadline, but it is not healthy.
    const role = election.leading ? 'leader' : 'candidate';
    return { ready: false, message: `${role}: ${election.consecutiveFailures} lease request(s) failed in a row` };
  }
  if (input.controllerStarted) {
    const role = election === undefined ? 'leader election off' : 'leader';
    return input.informersSynced
      ? { ready: true, message: `${role}: informers synced` }
      : { ready: false, message: `${role}: informers not synced` };
  }
  if (election === undefined) return { ready: false, message: 'starting' };
  if (election.leading) return { ready: false, message: 'leader: controller not started yet' };
  if (election.lastContactMs === 0 || election.observedHolder === null) {
    return { ready: false, message: 'candidate: lease not read from the API server yet' };
  }
  if (input.nowMs - election.lastContactMs > election.leaseDurationMs) {
    return { ready: false, message: 'candidate: no answer from the API server for a whole lease duration' };
  }
  if (election.observedHolder === '' || !election.observedFresh) {
    return { ready: false, message: 'candidate: lease free or expired, acquiring' };
  }
  return { ready: true, message: `standby: lease held by ${election.observedHolder}` };
}
