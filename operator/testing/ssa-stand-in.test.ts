// The rendered children through the server-side-apply stand-in, on the chart's minimum Kubernetes
// version, on 1.26 (where the field-gate defect was seen) and on the newest: a second apply of the
// same children writes nothing, and nothing the operator renders is dropped by any supported version.
// Also checks the stand-in itself reproduces the defect seen on a real 1.26 server.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { withDefaults } from '../api/spec-defaults.ts';
import { FIELD_MANAGER } from '../api/types.ts';
import { minimumKubeMinor } from '../manifests/crd-validator.ts';
import type { ManifestObject } from '../render/children.ts';
import { renderChildren, renderPvcMetadata, renderStatefulSet } from '../render/children.ts';
import { NEWEST_MINOR, ServerSideApplyStandIn, pruneUnknownFields, renderedFieldsMissingIn } from './ssa-stand-in.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const chart = parse(readFileSync(path.join(ROOT, 'charts', 'synod-operator', 'Chart.yaml'), 'utf8')) as { kubeVersion: string };
const MINIMUM = minimumKubeMinor(chart.kubeVersion);

const ref = { name: 'demo', namespace: 'prod', uid: 'uid-1' };
const fullSpec = withDefaults({
  replicas: 3, version: '0.2.0', storage: { size: '5Gi', storageClassName: 'fast' }, persistence: { whenDeleted: 'Delete' },
  resources: { requests: { cpu: '1' } },
  podTemplate: { labels: { team: 'a' }, annotations: { a: 'b' }, nodeSelector: { zone: 'a' }, tolerations: [{ key: 'k', operator: 'Exists' }], affinity: { podAntiAffinity: {} }, priorityClassName: 'high', env: [{ name: 'X', value: '1' }] },
});

function everything(): ManifestObject[] {
  return [
    ...renderChildren(ref, fullSpec, { statefulSetReplicas: 3, clusterState: 'existing' }),
    renderPvcMetadata(ref, 'data-demo-0', true),
  ];
}

const asJson = (o: ManifestObject): Record<string, unknown> => o as unknown as Record<string, unknown>;

describe('server-side apply stand-in', () => {
  it('reproduces the 1.26 defect: a gate-disabled field is owned, dropped, and re-applied on every apply', () => {
    const sts = asJson(renderStatefulSet(ref, fullSpec, 3));
    const withPolicy = { ...sts, spec: { ...(sts['spec'] as object), persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' } } };
    const v126 = new ServerSideApplyStandIn(26);
    expect(v126.apply(withPolicy, FIELD_MANAGER)).toBe(true);
    expect(v126.apply(withPolicy, FIELD_MANAGER)).toBe(true);
    expect(v126.apply(withPolicy, FIELD_MANAGER)).toBe(true);
    const v127 = new ServerSideApplyStandIn(27);
    expect(v127.apply(withPolicy, FIELD_MANAGER)).toBe(true);
    expect(v127.apply(withPolicy, FIELD_MANAGER)).toBe(false);
  });

  it('prunes fields a version does not know before they are owned (ignored, but no writes)', () => {
    const sts = asJson(renderStatefulSet(ref, fullSpec, 3));
    const withUnknown = { ...sts, spec: { ...(sts['spec'] as object), ordinals: { start: 0 }, colour: 'blue' } };
    expect(pruneUnknownFields(25, withUnknown).dropped).toEqual(['spec.colour', 'spec.ordinals']);
    expect(pruneUnknownFields(NEWEST_MINOR, withUnknown).dropped).toEqual(['spec.colour']);
    const v125 = new ServerSideApplyStandIn(25);
    expect(v125.apply(withUnknown, FIELD_MANAGER)).toBe(true);
    expect(v125.apply(withUnknown, FIELD_MANAGER)).toBe(false);
  });

  it('removes a field the manager applied before and no longer applies', () => {
    const api = new ServerSideApplyStandIn(NEWEST_MINOR);
    api.apply(asJson(renderPvcMetadata(ref, 'data-demo-0', true)), FIELD_MANAGER);
    expect(api.apply(asJson(renderPvcMetadata(ref, 'data-demo-0', false)), FIELD_MANAGER)).toBe(true);
    const stored = [...api.objects.values()][0] as { metadata: { ownerReferences?: unknown[]; labels: Record<string, string> } };
    expect(stored.metadata.ownerReferences ?? []).toEqual([]);
    expect(stored.metadata.labels).toEqual({ 'synod.dev/cluster-uid': 'uid-1' });
  });
});

describe('rendered children on every Kubernetes version the chart supports', () => {
  const versions = [...new Set([MINIMUM, 26, NEWEST_MINOR])];
  for (const minor of versions) {
    it(`1.${minor}: a second apply of unchanged children writes nothing`, () => {
      const api = new ServerSideApplyStandIn(minor);
      for (const child of everything()) expect(api.apply(asJson(child), FIELD_MANAGER), `first apply of ${child.kind}`).toBe(true);
      const before = api.resourceVersion;
      for (const child of everything()) expect(api.apply(asJson(child), FIELD_MANAGER), `second apply of ${child.kind} ${child.metadata.name}`).toBe(false);
      expect(api.resourceVersion).toBe(before);
    });
  }

  it('renders no field that any supported version drops (unknown, or disabled by a feature gate)', () => {
    for (let minor = MINIMUM; minor <= NEWEST_MINOR; minor++) {
      expect(renderedFieldsMissingIn(minor, everything().map(asJson)), `1.${minor}`).toEqual([]);
    }
  });
});
