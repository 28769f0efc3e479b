// How `make e2e` decides to run: kind, an existing cluster (the documented switch), or a one-line skip.

import { describe, expect, it } from 'vitest';
import type { Probes } from './e2e-mode.ts';
import { chooseMode } from './e2e-mode.ts';

function probes(working: string[]): Probes & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    works(command, args) {
      asked.push(`${command} ${args.join(' ')}`);
      return working.includes(command);
    },
  };
}

describe('e2e mode', () => {
  it('skips with a reason when there is no Docker engine and no cluster switch', () => {
    expect(chooseMode({}, probes([]))).toEqual({ mode: 'skip', reason: 'no Docker engine (and SYNOD_E2E_EXISTING_CLUSTER is not set): kind cannot run here' });
  });

  it('skips when Docker runs but kind is missing', () => {
    expect(chooseMode({}, probes(['docker']))).toMatchObject({ mode: 'skip', reason: expect.stringContaining('kind is not installed') });
  });

  it('uses kind when Docker and kind are there', () => {
    expect(chooseMode({}, probes(['docker', 'kind']))).toEqual({ mode: 'kind', clusterName: 'synod-e2e' });
    expect(chooseMode({ SYNOD_E2E_KIND_CLUSTER: 'x' }, probes(['docker', 'kind']))).toEqual({ mode: 'kind', clusterName: 'x' });
  });

  it('uses an existing cluster with images loaded by other means, without asking Docker', () => {
    const p = probes(['kubectl']);
    const env = { SYNOD_E2E_EXISTING_CLUSTER: '1', SYNOD_E2E_SERVER_IMAGE: 'reg/synod:1', SYNOD_E2E_OPERATOR_IMAGE: 'reg/op:1' };
    expect(chooseMode(env, p)).toEqual({ mode: 'existing', serverImage: 'reg/synod:1', operatorImage: 'reg/op:1' });
    expect(p.asked).toEqual(['kubectl version --request-timeout=10s']);
  });

  it('skips the existing-cluster mode without images or without a reachable cluster', () => {
    expect(chooseMode({ SYNOD_E2E_EXISTING_CLUSTER: '1' }, probes(['kubectl']))).toMatchObject({ mode: 'skip', reason: expect.stringContaining('SYNOD_E2E_SERVER_IMAGE') });
    const env = { SYNOD_E2E_EXISTING_CLUSTER: '1', SYNOD_E2E_SERVER_IMAGE: 'a', SYNOD_E2E_OPERATOR_IMAGE: 'b' };
    expect(chooseMode(env, probes([]))).toMatchObject({ mode: 'skip', reason: expect.stringContaining('cannot reach a cluster') });
  });
});
