// Checks Kubernetes objects against Kubernetes' own OpenAPI schemas (the kubernetes-models package,
// generated from the upstream API definitions): the model class for the object's apiVersion/kind is
// loaded and its validate() run. Used by the tests of the rendered children and of the Helm chart.

interface ModelClass {
  new (data: unknown): { validate(): void };
}

/** Module path inside kubernetes-models for an apiVersion and kind ("apps/v1", "StatefulSet"). */
export function modelModule(apiVersion: string, kind: string): string {
  return `kubernetes-models/${apiVersion}/${kind}`;
}

/** Throws with the schema errors when `object` does not match its kind's schema. */
export async function validateKubeObject(object: { apiVersion?: unknown; kind?: unknown }): Promise<void> {
  if (typeof object.apiVersion !== 'string' || typeof object.kind !== 'string') throw new Error('object has no apiVersion/kind');
  const module = (await import(modelModule(object.apiVersion, object.kind))) as Record<string, ModelClass>;
  const Model = module[object.kind];
  if (Model === undefined) throw new Error(`no model for ${object.apiVersion} ${object.kind}`);
  new Model(object).validate();
}
