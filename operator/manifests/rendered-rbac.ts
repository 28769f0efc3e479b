// The chart's RBAC as the API server's RBAC authorizer would apply it: renders charts/synod-operator
// with the real helm binary, and answers whether the operator's ServiceAccount may perform a request
// (verb, API group, resource, subresource, namespace, name) under the rendered Roles, ClusterRoles
// and their bindings. Also maps an HTTP request to the verb the API server authorizes.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const HELM = path.join(ROOT, '.tools', 'bin', 'helm');
export const CHART = path.join(ROOT, 'charts', 'synod-operator');

export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [field: string]: unknown;
}

interface PolicyRule { apiGroups?: string[]; resources?: string[]; verbs: string[]; resourceNames?: string[] }
interface Subject { kind: string; name: string; namespace?: string }
interface Binding extends RenderedObject { roleRef: { kind: string; name: string }; subjects?: Subject[] }

/** What the authorizer sees of a resource request. */
export interface RequestAttributes {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

/** `helm template rel charts/synod-operator --namespace <namespace> --set ...`, parsed. */
export async function renderChart(namespace: string, ...set: string[]): Promise<RenderedObject[]> {
  if (!existsSync(HELM)) throw new Error(`${HELM} is missing: run \`make helm\` (scripts/install-helm.sh)`);
  const scratch = mkdtempSync(path.join(tmpdir(), 'synod-helm-rbac-'));
  try {
    const { stdout } = await promisify(execFile)(HELM, ['template', 'rel', CHART, '--namespace', namespace, ...set.flatMap((s) => ['--set', s])], {
      env: { ...process.env, HELM_CACHE_HOME: scratch, HELM_CONFIG_HOME: scratch, HELM_DATA_HOME: scratch },
    });
    return parseAllDocuments(stdout).map((d) => d.toJS() as RenderedObject | null).filter((o): o is RenderedObject => o !== null);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The verb the API server authorizes for an HTTP method on a resource path. */
export function verbOf(method: string, hasName: boolean, query: Record<string, string>): string {
  switch (method) {
    case 'GET': return !hasName ? (query['watch'] === 'true' || query['watch'] === '1' ? 'watch' : 'list') : 'get';
    case 'POST': return 'create';
    case 'PUT': return 'update';
    case 'PATCH': return 'patch';
    case 'DELETE': return hasName ? 'delete' : 'deletecollection';
    default: return method.toLowerCase();
  }
}

function ruleAllows(rule: PolicyRule, a: RequestAttributes): boolean {
  const resource = a.subresource === undefined ? a.resource : `${a.resource}/${a.subresource}`;
  const has = (list: string[] | undefined, value: string): boolean => list !== undefined && (list.includes(value) || list.includes('*'));
  if (!has(rule.verbs, a.verb) || !has(rule.apiGroups, a.group) || !has(rule.resources, resource)) return false;
  // resourceNames restrict to named requests; a create or a list has no name to match.
  if (rule.resourceNames !== undefined && rule.resourceNames.length > 0) return a.name !== undefined && rule.resourceNames.includes(a.name);
  return true;
}

/** Whether the rendered RBAC lets the ServiceAccount `sa` (namespace/name) make the request. */
export function rbacAllows(objects: readonly RenderedObject[], sa: { namespace: string; name: string }, a: RequestAttributes): boolean {
  const boundTo = (b: Binding): boolean => (b.subjects ?? []).some((s) => s.kind === 'ServiceAccount' && s.name === sa.name && s.namespace === sa.namespace);
  const rulesOf = (kind: string, name: string, namespace: string | undefined): PolicyRule[] => {
    const role = objects.find((o) => o.kind === kind && o.metadata.name === name && (kind === 'ClusterRole' || o.metadata.namespace === namespace));
    return (role?.['rules'] as PolicyRule[] | undefined) ?? [];
  };
  for (const o of objects) {
    if (o.kind === 'ClusterRoleBinding') {
      const b = o as Binding;
      if (boundTo(b) && rulesOf('ClusterRole', b.roleRef.name, undefined).some((r) => ruleAllows(r, a))) return true;
    }
    if (o.kind === 'RoleBinding' && a.namespace !== undefined && o.metadata.namespace === a.namespace) {
      const b = o as Binding;
      if (boundTo(b) && rulesOf(b.roleRef.kind, b.roleRef.name, b.metadata.namespace).some((r) => ruleAllows(r, a))) return true;
    }
  }
  return false;
}
