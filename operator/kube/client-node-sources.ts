// InformerSources over a real API server: client-node's Watch for the watch streams, and the typed
// list calls for each path the controller's informers use (all namespaces or one).

import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, Watch } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../api/types.ts';
import type { InformerSources } from '../controller/controller.ts';
import { resourcePaths } from '../controller/controller.ts';

export function clientNodeSources(kubeConfig: KubeConfig, namespace?: string): InformerSources {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const paths = resourcePaths(namespace);
  type List = KubernetesListObject<KubernetesObject>;
  const listers: Record<string, (labelSelector?: string) => Promise<List>> = {
    [paths.clusters]: async (labelSelector) => (namespace === undefined
      ? await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, labelSelector })
      : await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, labelSelector })) as List,
    [paths.statefulSets]: async (labelSelector) => (namespace === undefined
      ? await apps.listStatefulSetForAllNamespaces({ labelSelector })
      : await apps.listNamespacedStatefulSet({ namespace, labelSelector })) as List,
    [paths.pods]: async (labelSelector) => (namespace === undefined
      ? await core.listPodForAllNamespaces({ labelSelector })
      : await core.listNamespacedPod({ namespace, labelSelector })) as List,
    [paths.pvcs]: async (labelSelector) => (namespace === undefined
      ? await core.listPersistentVolumeClaimForAllNamespaces({ labelSelector })
      : await core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector })) as List,
  };
  return {
    watch: new Watch(kubeConfig),
    list: (path, labelSelector) => {
      const lister = listers[path];
      if (lister === undefined) return Promise.reject(new Error(`no lister for ${path}`));
      return lister(labelSelector);
    },
  };
}
