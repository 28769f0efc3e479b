// The rendered children of a SynodCluster: each valid against Kubernetes' schema, owned by the
// cluster, and with the properties the design needs (headless peer Service publishing not-ready
// addresses, OnDelete StatefulSet with stable peer DNS, PDB maxUnavailable 1, non-root pods).

import { describe, expect, it } from 'vitest';
import { withDefaults } from '../api/spec-defaults.ts';
import { ANNOTATION_TEMPLATE_HASH, LABEL_VERSION } from '../api/types.ts';
import { validateKubeObject } from '../manifests/kube-schema.ts';
import type { ManifestObject } from './children.ts';
import { desiredTemplateHash, renderChildren, renderStatefulSet } from './children.ts';

const ref = { name: 'demo', namespace: 'prod', uid: '1234-5678' };
const spec = withDefaults({ replicas: 3, version: '0.2.0', storage: { size: '5Gi', storageClassName: 'fast' } });

function byKind(children: ManifestObject[], kind: string, name?: string): Record<string, unknown> & ManifestObject {
  const found = children.find((c) => c.kind === kind && (name === undefined || c.metadata.name === name));
  if (found === undefined) throw new Error(`no ${kind} ${name ?? ''}`);
  return found;
}

describe('rendered children', () => {
  const children = renderChildren(ref, spec, { statefulSetReplicas: 3, clusterState: 'new' });

  it('renders the six children, each valid against Kubernetes\' schema and owned by the cluster', async () => {
    expect(children.map((c) => `${c.kind}/${c.metadata.name}`)).toEqual([
      'ServiceAccount/demo', 'Service/demo-peer', 'Service/demo-client', 'ConfigMap/demo-config', 'StatefulSet/demo', 'PodDisruptionBudget/demo',
    ]);
    for (const child of children) {
      await expect(validateKubeObject(child), `${child.kind} ${child.metadata.name}`).resolves.toBeUndefined();
      expect(child.metadata.namespace).toBe('prod');
      expect(child.metadata.ownerReferences).toEqual([{ apiVersion: 'synod.dev/v1alpha1', kind: 'SynodCluster', name: 'demo', uid: '1234-5678', controller: true, blockOwnerDeletion: true }]);
    }
  });

  it('the schema check rejects a broken object (so the check above means something)', async () => {
    const broken = { ...byKind(children, 'StatefulSet'), spec: { replicas: 'three' } };
    await expect(validateKubeObject(broken)).rejects.toThrow();
  });

  it('has a headless peer Service that publishes not-ready pods (peers find each other before quorum)', () => {
    const peer = byKind(children, 'Service', 'demo-peer') as { spec: { clusterIP: string; publishNotReadyAddresses: boolean } } & ManifestObject;
    expect(peer.spec.clusterIP).toBe('None');
    expect(peer.spec.publishNotReadyAddresses).toBe(true);
  });

  it('has an OnDelete, parallel StatefulSet on the peer Service, retaining PVCs for the operator to retire', () => {
    const sts = byKind(children, 'StatefulSet') as unknown as { spec: Record<string, unknown> & { template: { metadata: { annotations: Record<string, string>; labels: Record<string, string> }; spec: { securityContext: Record<string, unknown>; containers: { image: string; readinessProbe: unknown }[] } }; volumeClaimTemplates: { spec: Record<string, unknown> }[] } };
    expect(sts.spec['updateStrategy']).toEqual({ type: 'OnDelete' });
    expect(sts.spec['serviceName']).toBe('demo-peer');
    expect(sts.spec['podManagementPolicy']).toBe('Parallel');
    // Left to its default (Retain, Retain): a 1.26 server would drop it and every apply would write.
    expect(sts.spec['persistentVolumeClaimRetentionPolicy']).toBeUndefined();
    expect(sts.spec.volumeClaimTemplates[0].spec).toMatchObject({ storageClassName: 'fast', resources: { requests: { storage: '5Gi' } } });
    expect(sts.spec.template.metadata.annotations[ANNOTATION_TEMPLATE_HASH]).toBe(desiredTemplateHash(ref, spec));
    expect(sts.spec.template.metadata.labels[LABEL_VERSION]).toBe('0.2.0');
    expect(sts.spec.template.spec.securityContext).toMatchObject({ runAsNonRoot: true });
    expect(sts.spec.template.spec.containers[0].image).toBe('ghcr.io/synod-dev/synod:0.2.0');
    expect(sts.spec.template.spec.containers[0].readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 2381 } });
  });

  it('has a PodDisruptionBudget allowing one pod down', () => {
    expect((byKind(children, 'PodDisruptionBudget') as { spec: unknown } & ManifestObject).spec).toMatchObject({ maxUnavailable: 1 });
  });

  it('gives the entrypoint the initial cluster with stable peer DNS names while bootstrapping, and none after', () => {
    const cm = byKind(children, 'ConfigMap') as { data: Record<string, string> } & ManifestObject;
    expect(cm.data['SYNOD_INITIAL_CLUSTER_STATE']).toBe('new');
    expect(cm.data['SYNOD_INITIAL_CLUSTER']).toBe([0, 1, 2].map((i) => `demo-${i}=http://demo-${i}.demo-peer.prod.svc:2380`).join(','));
    const later = byKind(renderChildren(ref, spec, { statefulSetReplicas: 3, clusterState: 'existing' }), 'ConfigMap') as { data: Record<string, string> } & ManifestObject;
    expect(later.data['SYNOD_INITIAL_CLUSTER_STATE']).toBe('existing');
    expect(later.data['SYNOD_INITIAL_CLUSTER']).toBe('');
  });

  it('changes the template hash on a version or pod-template change, not on a replica change', () => {
    const base = desiredTemplateHash(ref, spec);
    expect(desiredTemplateHash(ref, { ...spec, version: '0.3.0' })).not.toBe(base);
    expect(desiredTemplateHash(ref, { ...spec, podTemplate: { nodeSelector: { zone: 'a' } } })).not.toBe(base);
    expect(desiredTemplateHash(ref, { ...spec, replicas: 5 })).toBe(base);
    const five = renderStatefulSet(ref, spec, 5) as { spec: { replicas: number } } & ManifestObject;
    expect(five.spec.replicas).toBe(5);
  });

  it('merges pod template overrides without letting them replace the selector labels', async () => {
    const custom = withDefaults({ ...spec, podTemplate: { labels: { team: 'a', 'synod.dev/cluster': 'evil' }, tolerations: [{ key: 'k', operator: 'Exists' }], env: [{ name: 'X', value: '1' }] } });
    const sts = renderStatefulSet(ref, custom, 3) as unknown as { spec: { template: { metadata: { labels: Record<string, string> }; spec: { tolerations: unknown[]; containers: { env: { name: string }[] }[] } } } };
    expect(sts.spec.template.metadata.labels).toMatchObject({ team: 'a', 'synod.dev/cluster': 'demo' });
    expect(sts.spec.template.spec.tolerations).toHaveLength(1);
    expect(sts.spec.template.spec.containers[0].env.map((e) => e.name)).toContain('X');
    await expect(validateKubeObject(sts as unknown as ManifestObject)).resolves.toBeUndefined();
  });
});

// ---- Sharding (issue 16) ----
describe('rendered children of a sharded cluster with zones', () => {
  const sharded = withDefaults({ replicas: 5, version: '0.2.0', shards: 16, replicationFactor: 3, zones: { names: ['zone-a', 'zone-b', 'zone-c'] }, storage: { size: '5Gi' } });
  const sts = renderStatefulSet(ref, sharded, 5) as unknown as { spec: { template: { spec: Record<string, unknown> & { containers: { env: { name: string; value?: string }[]; volumeMounts: unknown[] }[]; volumes: unknown[] } } } };
  const podSpec = sts.spec.template.spec;

  it('is valid against Kubernetes\' schema', async () => {
    await expect(validateKubeObject(sts as unknown as ManifestObject)).resolves.toBeUndefined();
  });

  it('passes --shards and --replication-factor through the environment', () => {
    const env = podSpec.containers[0].env;
    expect(env).toContainEqual({ name: 'SYNOD_SHARDS', value: '16' });
    expect(env).toContainEqual({ name: 'SYNOD_REPLICATION_FACTOR', value: '3' });
  });

  it('spreads the pods over zones, keeps them in the named zones, and gives the entrypoint the zone annotation as a file', () => {
    expect(podSpec['topologySpreadConstraints']).toEqual([
      { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'synod', 'synod.dev/cluster': 'demo' } } },
    ]);
    expect(podSpec['affinity']).toEqual({ nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'topology.kubernetes.io/zone', operator: 'In', values: ['zone-a', 'zone-b', 'zone-c'] }] }] } } });
    expect(podSpec.containers[0].env).toContainEqual({ name: 'SYNOD_ZONE_FILE', value: '/etc/synod/podinfo/zone' });
    expect(podSpec.volumes).toContainEqual({ name: 'podinfo', downwardAPI: { items: [{ path: 'zone', fieldRef: { fieldPath: "metadata.annotations['synod.dev/zone']" } }] } });
    expect(podSpec.containers[0].volumeMounts).toContainEqual({ name: 'podinfo', mountPath: '/etc/synod/podinfo', readOnly: true });
  });

  it('leaves the pod template of a one-group cluster without zones as it was (no pod restarts on operator upgrade)', () => {
    const single = renderStatefulSet(ref, spec, 3) as unknown as { spec: { template: { spec: Record<string, unknown> & { containers: { env: { name: string }[] }[] } } } };
    expect(single.spec.template.spec['topologySpreadConstraints']).toBeUndefined();
    expect(single.spec.template.spec.containers[0].env.map((e) => e.name)).toEqual(['POD_NAME', 'POD_NAMESPACE']);
    expect(desiredTemplateHash(ref, spec)).not.toBe(desiredTemplateHash(ref, { ...spec, shards: 4 }));
  });
});
