// How `make e2e` runs: on a kind cluster it creates (Docker + kind present), on an existing cluster
// (SYNOD_E2E_EXISTING_CLUSTER=1 with KUBECONFIG, images loaded by other means and named by
// SYNOD_E2E_SERVER_IMAGE / SYNOD_E2E_OPERATOR_IMAGE), or not at all, with a one-line reason.

import { execFileSync } from 'node:child_process';

export interface Probes {
  /** The command runs and exits 0. */
  works(command: string, args: string[]): boolean;
}

export type E2eMode =
  | { mode: 'kind'; clusterName: string }
  | { mode: 'existing'; serverImage: string; operatorImage: string }
  | { mode: 'skip'; reason: string };

export const systemProbes: Probes = {
  works(command, args) {
    try {
      execFileSync(command, args, { stdio: 'ignore', timeout: 20_000 });
      return true;
    } catch {
      return false;
    }
  },
};

export function chooseMode(env: NodeJS.ProcessEnv, probes: Probes): E2eMode {
  if (env['SYNOD_E2E_EXISTING_CLUSTER'] === '1') {
    const serverImage = env['SYNOD_E2E_SERVER_IMAGE'];
    const operatorImage = env['SYNOD_E2E_OPERATOR_IMAGE'];
    if (serverImage === undefined || operatorImage === undefined) {
      return { mode: 'skip', reason: 'SYNOD_E2E_EXISTING_CLUSTER=1 needs SYNOD_E2E_SERVER_IMAGE and SYNOD_E2E_OPERATOR_IMAGE (images loaded by other means)' };
    }
    if (!probes.works('kubectl', ['version', '--request-timeout=10s'])) {
      return { mode: 'skip', reason: 'SYNOD_E2E_EXISTING_CLUSTER=1 but kubectl cannot reach a cluster (check KUBECONFIG)' };
    }
    return { mode: 'existing', serverImage, operatorImage };
  }
  if (!probes.works('docker', ['info'])) {
    return { mode: 'skip', reason: 'no Docker engine (and SYNOD_E2E_EXISTING_CLUSTER is not set): kind cannot run here' };
  }
  if (!probes.works('kind', ['version'])) {
    return { mode: 'skip', reason: 'kind is not installed (and SYNOD_E2E_EXISTING_CLUSTER is not set)' };
  }
  return { mode: 'kind', clusterName: env['SYNOD_E2E_KIND_CLUSTER'] ?? 'synod-e2e' };
}
