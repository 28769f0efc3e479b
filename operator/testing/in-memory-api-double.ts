// An in-memory API double (no real API server can run here) implementing KubeApi and the informers'
// list/watch, plus just enough of the cluster's own machinery to run the operator end to end:
// the StatefulSet controller (pods and PVCs per replicas, OnDelete), a kubelet (pods become ready
// when their member is healthy), and an etcd membership double that answers the operator's
// EtcdAdmin calls with etcd's rules (MoveLeader only on the leader, promote only when caught up).
// Faults can be injected: 409 on the next call of a method, 410 Gone on every open watch. Applies
// follow server-side apply of a chosen Kubernetes version (kubeMinor, see ssa-stand-in.ts).

import type {
  CoreV1Event, KubernetesListObject, KubernetesObject, V1ConfigMap, V1Lease, V1PersistentVolumeClaim, V1Pod, V1Secret, V1StatefulSet,
} from '@kubernetes/client-node';
import { toSynodCluster } from '../kube/client-node-api.ts';
import type { SynodCluster, SynodClusterStatus } from '../api/types.ts';
import { ANNOTATION_TEMPLATE_HASH, FIELD_MANAGER, LABEL_VERSION, PLURAL } from '../api/types.ts';
import type { EtcdAdmin, EtcdEndpointStatus, EtcdMember } from '../etcd/etcd-admin.ts';
import { endpointOf } from '../etcd/etcd-admin.ts';
import type { KubeApi } from '../kube/kube-api.ts';
import { KubeApiError } from '../kube/kube-api.ts';
import { clientUrl, ordinalOf, ordinalOfPeerUrl, peerUrl } from '../planner/naming.ts';
import type { ManifestObject } from '../render/children.ts';
import type { InformerSources } from '../controller/controller.ts';
import { NEWEST_MINOR, serverSideApply } from './ssa-stand-in.ts';
import { StandInWatch } from './stand-in-watch.ts';

type Obj = KubernetesObject & { spec?: Record<string, unknown>; status?: unknown; data?: Record<string, string> };

const PLURALS: Record<string, string> = {
  SynodCluster: PLURAL, StatefulSet: 'statefulsets', Pod: 'pods', PersistentVolumeClaim: 'persistentvolumeclaims',
  ConfigMap: 'configmaps', Service: 'services', ServiceAccount: 'serviceaccounts', PodDisruptionBudget: 'poddisruptionbudgets',
  Event: 'events', Lease: 'leases', Secret: 'secrets',
};

interface DoubleMember { id: string; ordinal: number; learner: boolean; started: boolean; appliedIndex: number }

export class InMemoryApiDouble implements KubeApi, InformerSources {
  readonly watch = new StandInWatch();
  readonly objects = new Map<string, Obj>();
  readonly events: CoreV1Event[] = [];
  readonly calls: string[] = [];
  /** The next call of each named method fails with 409 Conflict. */
  readonly conflictNext = new Set<string>();
  /** Applies this returns true for fail with 500 (an API server hiccup at the worst moment). */
  refuseApply: ((object: ManifestObject) => boolean) | null = null;
  resourceVersion = 100;
  /** The Kubernetes minor version whose server-side apply semantics apply() follows (ssa-stand-in.ts). */
  kubeMinor = NEWEST_MINOR;
  #applyClock = 0;
  #uid = 1;

  // ---- etcd membership double, keyed by cluster "ns/name" ----
  readonly members = new Map<string, DoubleMember[]>();
  readonly leaders = new Map<string, number | null>();
  /** Ordinals whose member process is down (pod not ready, Status fails). */
  readonly down = new Set<string>();
  #memberId = 0x100;

  key(kind: string, namespace: string, name: string): string {
    return `${kind}/${namespace}/${name}`;
  }

  get<T extends Obj>(kind: string, namespace: string, name: string): T | undefined {
    return this.objects.get(this.key(kind, namespace, name)) as T | undefined;
  }

  objectsOf<T extends Obj>(kind: string, namespace?: string): T[] {
    return [...this.objects.values()].filter((o) => o.kind === kind && (namespace === undefined || o.metadata?.namespace === namespace)) as T[];
  }

  /** Stores an object as the API server would (uid, resourceVersion, generation) and notifies watches. */
  put(object: Obj): Obj {
    const kind = object.kind ?? '';
    const ns = object.metadata?.namespace ?? 'default';
    const name = object.metadata?.name ?? '';
    const existing = this.get(kind, ns, name);
    // Like the API server, an apply or update that changes nothing is a no-op (no new resourceVersion, no event).
    if (existing !== undefined && sameContent(existing, object)) return existing;
    this.resourceVersion += 1;
    const specChanged = existing === undefined || JSON.stringify(existing.spec) !== JSON.stringify(object.spec);
    const stored: Obj = {
      ...object,
      metadata: {
        ...object.metadata,
        namespace: ns,
        uid: existing?.metadata?.uid ?? `uid-${this.#uid++}`,
        resourceVersion: String(this.resourceVersion),
        generation: (existing?.metadata?.generation ?? 0) + (specChanged ? 1 : 0),
        creationTimestamp: existing?.metadata?.creationTimestamp ?? new Date(0),
      },
    };
    this.objects.set(this.key(kind, ns, name), stored);
    this.#notify(existing === undefined ? 'ADDED' : 'MODIFIED', stored);
    return stored;
  }

  remove(kind: string, namespace: string, name: string): void {
    const existing = this.get(kind, namespace, name);
    if (existing === undefined) return;
    this.objects.delete(this.key(kind, namespace, name));
    this.resourceVersion += 1;
    this.#notify('DELETED', { ...existing, metadata: { ...existing.metadata, resourceVersion: String(this.resourceVersion) } });
  }

  /** Ends every open watch with 410 Gone, as an API server does when a resourceVersion is compacted. */
  expireWatches(): void {
    for (const stream of this.watch.streams) if (!stream.aborted) stream.end(Object.assign(new Error('Gone'), { statusCode: 410 }));
  }

  #notify(type: 'ADDED' | 'MODIFIED' | 'DELETED', object: Obj): void {
    const plural = PLURALS[object.kind ?? ''];
    for (const stream of this.watch.streams) {
      if (stream.aborted || !stream.path.endsWith(`/${plural}`)) continue;
      const ns = /\/namespaces\/([^/]+)\//.exec(stream.path)?.[1];
      if (ns !== undefined && ns !== object.metadata?.namespace) continue;
      const selector = stream.params['labelSelector'];
      if (typeof selector === 'string' && !matchesSelector(object, selector)) continue;
      stream.send(type, structuredClone(object));
    }
  }

  async #maybeConflict(method: string): Promise<void> {
    await ioTurn();
    this.calls.push(method);
    if (this.conflictNext.delete(method)) throw new KubeApiError(409, `${method}: the object has been modified`);
  }

  // ---- InformerSources ----
  async list(path: string, labelSelector?: string): Promise<KubernetesListObject<KubernetesObject>> {
    await ioTurn();
    const plural = path.slice(path.lastIndexOf('/') + 1);
    const kind = Object.entries(PLURALS).find(([, p]) => p === plural)?.[0] ?? '';
    const ns = /\/namespaces\/([^/]+)\//.exec(path)?.[1];
    const items = this.objectsOf(kind, ns).filter((o) => labelSelector === undefined || matchesSelector(o, labelSelector));
    return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: String(this.resourceVersion) }, items: structuredClone(items) };
  }

  // ---- KubeApi ----
  async getSynodCluster(namespace: string, name: string): Promise<SynodCluster | null> {
    await ioTurn();
    const raw = this.get('SynodCluster', namespace, name);
    return raw === undefined ? null : toSynodCluster(structuredClone(raw));
  }

  async getStatefulSet(namespace: string, name: string): Promise<V1StatefulSet | null> {
    await ioTurn();
    return structuredClone(this.get<V1StatefulSet & Obj>('StatefulSet', namespace, name) ?? null);
  }

  async getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | null> {
    await ioTurn();
    return structuredClone(this.get<V1ConfigMap & Obj>('ConfigMap', namespace, name) ?? null);
  }

  async getSecret(namespace: string, name: string): Promise<V1Secret | null> {
    await ioTurn();
    return structuredClone(this.get<V1Secret & Obj>('Secret', namespace, name) ?? null);
  }

  async listPods(namespace: string, labelSelector: string): Promise<V1Pod[]> {
    await ioTurn();
    return structuredClone(this.objectsOf<V1Pod & Obj>('Pod', namespace).filter((o) => matchesSelector(o, labelSelector)));
  }

  async listPvcs(namespace: string, labelSelector: string): Promise<V1PersistentVolumeClaim[]> {
    await ioTurn();
    return structuredClone(this.objectsOf<V1PersistentVolumeClaim & Obj>('PersistentVolumeClaim', namespace).filter((o) => matchesSelector(o, labelSelector)));
  }

  async apply(object: ManifestObject): Promise<void> {
    await this.#maybeConflict(`apply:${object.kind}`);
    if (this.refuseApply?.(object) === true) throw new KubeApiError(500, 'Internal error');
    const existing = this.get(object.kind, object.metadata.namespace, object.metadata.name);
    // Server-side apply as a 1.<kubeMinor> server does it (merge into the live object, managedFields,
    // fields gated off in that version dropped after they are owned): put() then writes only if the
    // stored object changed, so tests see the writes a real server would make.
    this.#applyClock += 1;
    const now = new Date(Date.UTC(2026, 0, 1, 0, 0, this.#applyClock)).toISOString();
    const stored = serverSideApply(this.kubeMinor, existing as Record<string, unknown> | undefined, structuredClone(object) as unknown as Record<string, unknown>, FIELD_MANAGER, now);
    this.put({ ...(stored as Obj), status: existing?.status });
  }

  async applyStatus(namespace: string, name: string, status: SynodClusterStatus): Promise<void> {
    await this.#maybeConflict('applyStatus');
    const existing = this.get('SynodCluster', namespace, name);
    if (existing === undefined) throw new KubeApiError(404, 'not found');
    this.put({ ...existing, status: structuredClone(status) });
  }

  async deletePod(namespace: string, name: string, uid: string): Promise<void> {
    await this.#maybeConflict('deletePod');
    const pod = this.get('Pod', namespace, name);
    if (pod === undefined) throw new KubeApiError(404, `pods "${name}" not found`);
    if (pod.metadata?.uid !== uid) throw new KubeApiError(409, 'Precondition failed: UID in precondition does not match');
    this.remove('Pod', namespace, name);
  }

  async deletePvc(namespace: string, name: string): Promise<void> {
    await this.#maybeConflict('deletePvc');
    this.remove('PersistentVolumeClaim', namespace, name);
  }

  async createEvent(event: CoreV1Event): Promise<void> {
    await ioTurn();
    this.events.push(structuredClone(event));
  }

  async getLease(namespace: string, name: string): Promise<V1Lease | null> {
    await this.#maybeConflict('getLease');
    return structuredClone(this.get<V1Lease & Obj>('Lease', namespace, name) ?? null);
  }

  async createLease(lease: V1Lease): Promise<V1Lease> {
    await this.#maybeConflict('createLease');
    if (this.get('Lease', lease.metadata?.namespace ?? 'default', lease.metadata?.name ?? '') !== undefined) throw new KubeApiError(409, 'already exists');
    return structuredClone(this.put({ ...(lease as Obj), kind: 'Lease' })) as V1Lease;
  }

  async replaceLease(lease: V1Lease): Promise<V1Lease> {
    await this.#maybeConflict('replaceLease');
    const current = this.get('Lease', lease.metadata?.namespace ?? 'default', lease.metadata?.name ?? '');
    if (current === undefined) throw new KubeApiError(404, 'not found');
    if (current.metadata?.resourceVersion !== lease.metadata?.resourceVersion) throw new KubeApiError(409, 'the object has been modified');
    return structuredClone(this.put({ ...(lease as Obj), kind: 'Lease' })) as V1Lease;
  }

  /** Node name → labels: the nodes the double's pods are scheduled to (when set, tick() schedules each pod on nodes in turn). */
  readonly nodes = new Map<string, Record<string, string>>();

  async getNodeLabels(name: string): Promise<Record<string, string> | null> {
    await ioTurn();
    this.calls.push(`getNode:${name}`);
    const labels = this.nodes.get(name);
    return labels === undefined ? null : { ...labels };
  }

  // ---- the cluster's own machinery ----

  /**
   * One round of the StatefulSet controller and kubelet for every StatefulSet: create missing pods
   * (with the current template) and their PVCs, delete pods above replicas, bootstrap members for
   * state "new", start members and mark pods ready, let learners catch up.
   */
  tick(): void {
    for (const sts of this.objectsOf<V1StatefulSet & Obj>('StatefulSet')) {
      const ns = sts.metadata?.namespace ?? 'default';
      const name = sts.metadata?.name ?? '';
      const key = `${ns}/${name}`;
      const replicas = sts.spec?.replicas ?? 0;
      const template = sts.spec?.template;
      const members = this.members.get(key) ?? [];
      this.members.set(key, members);
      const state = this.get<V1ConfigMap & Obj>('ConfigMap', ns, `${name}-config`)?.data?.['SYNOD_INITIAL_CLUSTER_STATE'];
      for (const pod of this.objectsOf<V1Pod & Obj>('Pod', ns)) {
        const ordinal = ordinalOf(name, pod.metadata?.name ?? '');
        if (ordinal !== null && ordinal >= replicas) this.remove('Pod', ns, pod.metadata?.name ?? '');
      }
      for (let i = 0; i < replicas; i++) {
        const podName = `${name}-${i}`;
        const pvcName = `data-${podName}`;
        if (this.get('PersistentVolumeClaim', ns, pvcName) === undefined) {
          this.put({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: pvcName, namespace: ns, labels: { ...(sts.spec?.selector?.matchLabels ?? {}) } }, spec: {} });
        }
        let pod = this.get<V1Pod & Obj>('Pod', ns, podName);
        if (pod === undefined) {
          if (state === 'new' && !members.some((m) => m.ordinal === i)) members.push({ id: this.#nextMemberId(), ordinal: i, learner: false, started: false, appliedIndex: 0 });
          pod = this.put({
            apiVersion: 'v1', kind: 'Pod',
            metadata: { name: podName, namespace: ns, labels: { ...(template?.metadata?.labels ?? {}) }, annotations: { ...(template?.metadata?.annotations ?? {}) } },
            spec: this.nodes.size === 0 ? {} : { nodeName: [...this.nodes.keys()][i % this.nodes.size] }, status: { conditions: [{ type: 'Ready', status: 'False' }] },
          }) as V1Pod & Obj;
          continue;
        }
        const member = members.find((m) => m.ordinal === i);
        const up = member !== undefined && !this.down.has(`${key}/${i}`);
        if (member !== undefined && up) member.started = true;
        const ready = up;
        const wasReady = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
        if (ready !== wasReady) this.put({ ...pod, status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] } });
      }
      const leaderIndex = Math.max(0, ...members.map((m) => m.appliedIndex)) + 1;
      for (const m of members) if (m.started && !this.down.has(`${key}/${m.ordinal}`)) m.appliedIndex = leaderIndex;
      const voters = members.filter((m) => !m.learner);
      const healthyVoters = voters.filter((m) => this.#memberUp(key, m));
      const leader = this.leaders.get(key) ?? null;
      const leaderOk = leader !== null && healthyVoters.some((m) => m.ordinal === leader);
      if (!leaderOk) this.leaders.set(key, healthyVoters.length >= Math.floor(voters.length / 2) + 1 ? healthyVoters[0]?.ordinal ?? null : null);
    }
  }

  #memberUp(key: string, m: DoubleMember): boolean {
    const [ns, name] = key.split('/');
    const pod = this.get<V1Pod & Obj>('Pod', ns, `${name}-${m.ordinal}`);
    return m.started && pod !== undefined && !this.down.has(`${key}/${m.ordinal}`);
  }

  #nextMemberId(): string {
    return (this.#memberId++).toString(16);
  }

  /** The etcd side of the double, as the operator's EtcdAdmin sees it. */
  etcdAdmin(namespace: string, name: string): EtcdAdmin {
    const key = `${namespace}/${name}`;
    const members = (): DoubleMember[] => this.members.get(key) ?? [];
    const reachable = (endpoint: string): DoubleMember | undefined => members().find((m) => endpointOf(clientUrl(name, namespace, m.ordinal)) === endpoint && this.#memberUp(key, m));
    const anyReachable = (endpoints: readonly string[]): void => {
      if (!endpoints.some((e) => reachable(e) !== undefined || (e.startsWith(`${name}-client.`) && members().some((m) => this.#memberUp(key, m))))) {
        throw Object.assign(new Error('14 UNAVAILABLE: No connection established'), { code: 14 });
      }
    };
    const toMember = (m: DoubleMember): EtcdMember => ({
      id: m.id, name: m.started ? `${name}-${m.ordinal}` : '', peerUrls: [peerUrl(name, namespace, m.ordinal)], clientUrls: m.started ? [clientUrl(name, namespace, m.ordinal)] : [], isLearner: m.learner,
    });
    const refuse = (message: string): never => {
      throw Object.assign(new Error(`9 FAILED_PRECONDITION: ${message}`), { code: 9 });
    };
    return {
      memberList: async (endpoints) => {
        await ioTurn();
        this.calls.push('etcd:MemberList');
        anyReachable(endpoints);
        return members().map(toMember);
      },
      status: async (endpoint): Promise<EtcdEndpointStatus> => {
        await ioTurn();
        const m = reachable(endpoint);
        if (m === undefined) throw Object.assign(new Error('14 UNAVAILABLE'), { code: 14 });
        const leader = members().find((x) => x.ordinal === this.leaders.get(key));
        return { memberId: m.id, leaderId: leader?.id ?? '0', raftIndex: m.appliedIndex, raftAppliedIndex: m.appliedIndex, raftTerm: 1, version: '3.6.0', isLearner: m.learner };
      },
      memberAddLearner: async (endpoints, url) => {
        await ioTurn();
        this.calls.push('etcd:MemberAdd');
        anyReachable(endpoints);
        if (members().some((m) => toMember(m).peerUrls.includes(url))) refuse('etcdserver: Peer URLs already exists');
        const ordinal = ordinalOfPeerUrl(name, namespace, url);
        if (ordinal === null) refuse('unexpected peer URL');
        const added: DoubleMember = { id: this.#nextMemberId(), ordinal: ordinal as number, learner: true, started: false, appliedIndex: 0 };
        members().push(added);
        return toMember(added);
      },
      memberPromote: async (endpoints, id) => {
        await ioTurn();
        this.calls.push('etcd:MemberPromote');
        anyReachable(endpoints);
        const m = members().find((x) => x.id === id);
        if (m === undefined) throw Object.assign(new Error('5 NOT_FOUND: etcdserver: member not found'), { code: 5 });
        if (!m.learner) refuse('etcdserver: can only promote a learner member');
        if (!this.#memberUp(key, m)) refuse('etcdserver: can only promote a learner member which is in sync with leader');
        m.learner = false;
      },
      memberRemove: async (endpoints, id) => {
        await ioTurn();
        this.calls.push('etcd:MemberRemove');
        anyReachable(endpoints);
        const list = members();
        const index = list.findIndex((x) => x.id === id);
        if (index < 0) throw Object.assign(new Error('5 NOT_FOUND: etcdserver: member not found'), { code: 5 });
        if (this.leaders.get(key) === list[index].ordinal) this.leaders.set(key, null);
        list.splice(index, 1);
      },
      moveLeader: async (endpoint, target) => {
        await ioTurn();
        this.calls.push('etcd:MoveLeader');
        const from = reachable(endpoint);
        if (from === undefined || this.leaders.get(key) !== from.ordinal) refuse('etcdserver: not leader');
        const to = members().find((x) => x.id === target);
        if (to === undefined || to.learner || !this.#memberUp(key, to)) refuse('etcdserver: bad leader transferee');
        this.leaders.set(key, (to as DoubleMember).ordinal);
      },
      close: () => undefined,
    };
  }

  /** Pods' template hashes and versions, for assertions. */
  podVersions(namespace: string, cluster: string): Record<string, string> {
    const result: Record<string, string> = {};
    for (const pod of this.objectsOf<V1Pod & Obj>('Pod', namespace)) {
      if (ordinalOf(cluster, pod.metadata?.name ?? '') === null) continue;
      result[pod.metadata?.name ?? ''] = `${pod.metadata?.labels?.[LABEL_VERSION] ?? ''}@${pod.metadata?.annotations?.[ANNOTATION_TEMPLATE_HASH] ?? ''}`;
    }
    return result;
  }
}

/** Equality and existence terms only (a=b, a, !a), which is all the operator uses. */
export function matchesSelector(object: KubernetesObject, selector: string): boolean {
  const labels = object.metadata?.labels ?? {};
  return selector.split(',').filter((t) => t !== '').every((term) => {
    if (term.startsWith('!')) return labels[term.slice(1)] === undefined;
    const eq = term.indexOf('=');
    if (eq < 0) return labels[term] !== undefined;
    return labels[term.slice(0, eq)] === term.slice(eq + 1);
  });
}

/** Every call of the double takes a turn of the event loop, as real network I/O does. */
function ioTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function sameContent(existing: Obj, next: Obj): boolean {
  const strip = (o: Obj): unknown => ({ ...o, metadata: { ...o.metadata, resourceVersion: undefined, uid: undefined, generation: undefined, creationTimestamp: undefined } });
  return JSON.stringify(strip(existing)) === JSON.stringify(strip({ ...next, metadata: { ...next.metadata, namespace: next.metadata?.namespace ?? 'default' } }));
}
