{{/*
The operator's permissions, one rule per need, each with the reason it exists. Every rule here is used:
the acceptance test removes any one of them and expects a failure. Keep it that way - add a rule only
together with the code (and test) that needs it.

Server-side apply: a PATCH of type apply that creates the object is authorized as `patch` AND `create`
(kubernetes.io/docs/reference/using-api/api-concepts/#patch-and-apply), so every kind the operator applies
needs both. No request is an `update` (wharf and kopf only patch); `update` on apps/finalizers is an admission
check's, not a request's (below).

Objects the operator creates carry an ownerReference to their App, so the garbage collector deletes them with
the App (S15); `delete` is there only for pruning what an App no longer asks for (a process type or a route
removed from the manifest). kopf lists and watches (`list`, `watch`) the Apps and, by wharf's label, every
kind an App owns but Secrets: the reconcile reads them from those watch-fed caches (handlers/operator.py).
`get` on a kind an App owns: a name wharf has not seen yet is looked at once before it is taken, so an object
someone else made is never adopted (S17), and a Deployment's managedFields are read when another writer changed
its pod template.
*/}}

{{/* Rules on namespaced resources: a ClusterRole when watching all namespaces, else a Role per namespace. */}}
{{- define "wharf.rbac.namespacedRules" -}}
# The App resource itself: kopf lists and watches it (the cache). Nothing patches the App itself (wharf's kopf
# handlers only watch: no finalizer, no change-detection annotation).
- apiGroups: [wharf.dev]
  resources: [apps]
  verbs: [list, watch]
# The App's conditions, observedGeneration and resolved image live in the status subresource.
- apiGroups: [wharf.dev]
  resources: [apps/status]
  verbs: [patch]
# The owner references wharf sets say blockOwnerDeletion: true (the App's foreground deletion waits for them).
# Where the OwnerReferencesPermissionEnforcement admission plugin runs (OpenShift enables it by default), setting
# that needs `update` on the owner's finalizers subresource: without this rule every apply is refused. No
# request uses it; the plugin asks the authorizer.
- apiGroups: [wharf.dev]
  resources: [apps/finalizers]
  verbs: [update]
# One Deployment per process type (S4), server-side applied (`patch` also of managedFields, to remove what
# another writer added to its pod template, S17). kopf lists and watches them: the cache the reconcile reads for
# InstancesAvailable and to prune; a status change or a hand edit refreshes the App.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
# The web process's Service (S4), server-side applied; kopf lists and watches them (the cache: a deleted or
# edited Service is put back; pruned when `web` goes away).
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
# `get`: the user-named Secrets (S1: the registry password; S8: bound services; image pull secrets).
# `create`/`patch`: the Secrets the operator derives for the pods (`<app>-registry`, `<app>-vcap-services`),
# applied; `delete`: one of them once the App no longer asks for it (read by name first, deleted only if owned).
# Neither list nor watch: the operator reads only Secrets an App names, never browses them.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, patch, delete]
# Events on Apps: wharf's own, one POST per meaningful transition (ignored manifest keys S2, pull failures S14).
# kopf's event posting is turned off (handlers/operator.py), and neither ever patches an Event to count repeats.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Pods, read-only: image pull failures and crash loops are reported within seconds (S14) from the
# containers' waiting reasons, not after a Deployment's 10-minute progress deadline.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
{{- if eq .Values.routing.mode "ingress" }}
# routing.mode=ingress: manifest routes become Ingresses (S11), applied; kopf lists and watches them (the
# cache; pruned when the routes go).
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch, create, patch, delete]
{{- end }}
{{- if eq .Values.routing.mode "gateway" }}
# routing.mode=gateway: manifest routes become Gateway API HTTPRoutes (S11), applied; kopf lists and watches
# them (the cache; pruned when the routes go).
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, create, patch, delete]
{{- end }}
{{- if and .Values.peering.enabled .Values.watchNamespaces }}
# peering.enabled with a namespace list: kopf keeps its keep-alive in a KopfPeering per watched namespace.
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end -}}

{{/* Rules on cluster-scoped resources: always a ClusterRole. */}}
{{- define "wharf.rbac.clusterRules" -}}
# kopf discovers the App CRD at start-up and watches CRDs to notice it being (re)installed or removed.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- if .Values.watchNamespaces }}
# A namespace list: kopf lists and watches namespaces to start watching one that is created after the
# operator (without this it only logs a warning and misses it until restart). When watching all namespaces
# kopf never reads namespaces, so the rule is absent there.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- else if .Values.peering.enabled }}
# peering.enabled when watching all namespaces: kopf keeps its keep-alive in one ClusterKopfPeering.
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end -}}
