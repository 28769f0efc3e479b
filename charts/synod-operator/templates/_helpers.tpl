{{/* Names and labels shared by the templates. */}}
{{- define "synod-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "synod-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "synod-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "synod-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "synod-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "synod-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Cluster-scoped objects (ClusterRole, ClusterRoleBinding), and the Role and RoleBinding in a
watched namespace, are shared by the releases of every namespace: their name carries the release
namespace too, so two installs never collide. */}}
{{- define "synod-operator.clusterScopedName" -}}
{{- printf "%s-%s" .Release.Namespace (include "synod-operator.fullname" .) | trunc 253 | trimSuffix "-" -}}
{{- end -}}

{{- define "synod-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "synod-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "synod-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The rules the operator needs on SynodClusters and their children; nothing else. */}}
{{- define "synod-operator.rules" -}}
- apiGroups: [synod.dev]
  resources: [synodclusters]
  verbs: [get, list, watch]
- apiGroups: [synod.dev]
  resources: [synodclusters/status]
  verbs: [get, patch, update]
# Children carry ownerReferences with blockOwnerDeletion: true; with OwnerReferencesPermissionEnforcement
# (OpenShift, hardened clusters) that needs update on the owner's finalizers subresource.
- apiGroups: [synod.dev]
  resources: [synodclusters/finalizers]
  verbs: [update]
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get, list, watch, create, patch]
# patch: server-side apply of a server pod's synod.dev/zone annotation (spec.zones), read by its entrypoint.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, delete, patch]
# patch: server-side apply of the PVCs' ownership metadata (cluster uid label, owner reference).
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch, patch, delete]
- apiGroups: [""]
  resources: [services, configmaps, serviceaccounts]
  verbs: [get, create, patch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- if .Values.rbac.secrets }}
# spec.tls and spec.auth: read the Secrets a SynodCluster names (by name: no list, no watch), and
# create and renew the ones it generates (server-side apply: patch, and create for the first one).
# No delete: generated Secrets go with their SynodCluster through owner references.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, patch]
{{- end }}
{{- end -}}
