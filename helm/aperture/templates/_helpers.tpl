{{/* Named templates of the aperture chart: names, labels, images, scope and the RBAC rules. */}}

{{- define "aperture.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: <release>-aperture, or the release name when it already contains the chart name. */}}
{{- define "aperture.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "aperture.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Recommended labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/). */}}
{{- define "aperture.labels" -}}
{{ include "aperture.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of the worker-side objects (the workers' ServiceAccount and NetworkPolicy). */}}
{{- define "aperture.workerLabels" -}}
{{ include "aperture.commonLabels" . }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "aperture.commonLabels" -}}
helm.sh/chart: {{ include "aperture.chart" . }}
app.kubernetes.io/name: {{ include "aperture.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aperture
{{- end -}}

{{- define "aperture.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aperture.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The namespace whose ImagingJobs the operator reconciles in namespace scope. */}}
{{- define "aperture.watchNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace -}}
{{- end -}}

{{- define "aperture.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "aperture.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The worker ServiceAccount's name. */}}
{{- define "aperture.workerServiceAccountName" -}}
{{- default (printf "%s-worker" (include "aperture.fullname" .)) .Values.workers.serviceAccount.name -}}
{{- end -}}

{{/* Namespaces the chart creates the worker ServiceAccount in, as a JSON list. */}}
{{- define "aperture.workerServiceAccountNamespaces" -}}
{{- if not .Values.workers.serviceAccount.create -}}
[]
{{- else if eq .Values.scope "namespace" -}}
{{- list (include "aperture.watchNamespace" .) | toJson -}}
{{- else -}}
{{- .Values.workers.serviceAccount.namespaces | uniq | toJson -}}
{{- end -}}
{{- end -}}

{{/* The --worker-service-account the operator gets ("" for none). */}}
{{- define "aperture.workerServiceAccountFlag" -}}
{{- if .Values.workers.serviceAccount.create -}}
{{- if include "aperture.workerServiceAccountNamespaces" . | fromJsonArray -}}
{{- include "aperture.workerServiceAccountName" . -}}
{{- end -}}
{{- else -}}
{{- .Values.workers.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag or repository@digest; the tag defaults to the chart's appVersion. */}}
{{- define "aperture.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "aperture.operatorImage" -}}
{{- include "aperture.image" (dict "image" .Values.operator.image "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{- define "aperture.workerImage" -}}
{{- include "aperture.image" (dict "image" .Values.workers.image "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{/* The name of the object-store credentials Secret the operator reads ("" for none). */}}
{{- define "aperture.credentialsSecretName" -}}
{{- $c := .Values.objectStore.credentials -}}
{{- if $c.create -}}
{{- default (printf "%s-object-store" (include "aperture.fullname" .)) $c.secretName -}}
{{- else -}}
{{- $c.existingSecret -}}
{{- end -}}
{{- end -}}

{{/*
Default worker resources as the JSON of a core/v1 ResourceRequirements
(APERTURE_WORKER_RESOURCES). Quantities become strings, as the API's Quantity type is.
*/}}
{{- define "aperture.workerResourcesJson" -}}
{{- $out := dict -}}
{{- range $part, $q := .Values.workers.resources -}}
{{- if eq $part "claims" -}}
{{- $_ := set $out $part $q -}}
{{- else -}}
{{- $m := dict -}}
{{- range $k, $v := $q -}}
{{- $_ := set $m $k (toString $v) -}}
{{- end -}}
{{- $_ := set $out $part $m -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
The rules the operator needs wherever it watches ImagingJobs (a Role in namespace scope, a
ClusterRole in cluster scope). Every rule is a call in operator/src; the test
operator/tests/helm_chart.rs lists the call sites and checks these rules against them.
*/}}
{{- define "aperture.rules" -}}
- apiGroups: [aperture.dev]
  resources: [imagingjobs]
  # watch + list: the controller; patch: adding and removing the finalizer.
  verbs: [list, watch, patch]
- apiGroups: [aperture.dev]
  resources: [imagingjobs/status]
  # server-side apply of the status subresource.
  verbs: [patch]
- apiGroups: [aperture.dev]
  resources: [imagingjobs/finalizers]
  # stage Jobs carry an owner reference with blockOwnerDeletion: true, which the API
  # server allows only with update on the owner's finalizers.
  verbs: [update]
- apiGroups: [batch]
  resources: [jobs]
  # server-side apply creates (create) and updates (patch) stage Jobs.
  verbs: [list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [pods]
  # the termination message of a failed worker pod.
  verbs: [list]
{{- if .Values.rbac.readSecrets }}
- apiGroups: [""]
  resources: [secrets]
  # the credentials Secret a job names in spec.storage.credentialsSecret.
  {{- with .Values.rbac.secretNames }}
  resourceNames: {{ toJson . }}
  {{- end }}
  verbs: [get]
{{- end }}
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}

{{/* Egress rules shared by the operator and worker NetworkPolicies: DNS, the object store, OTLP, extras. */}}
{{- define "aperture.egressCommon" -}}
{{- $np := .Values.networkPolicy -}}
{{- if $np.dns.enabled }}
- to:
    - namespaceSelector:
        {{- toYaml $np.dns.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml $np.dns.podSelector | nindent 8 }}
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end }}
{{- $os := $np.objectStore }}
- to:
    {{- range $os.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
    {{- if or $os.podSelector $os.namespaceSelector }}
    {{- $peer := dict }}
    {{- with $os.namespaceSelector }}{{ $_ := set $peer "namespaceSelector" . }}{{ end }}
    {{- with $os.podSelector }}{{ $_ := set $peer "podSelector" . }}{{ end }}
    {{- toYaml (list $peer) | nindent 4 }}
    {{- end }}
  ports:
    {{- range (include "aperture.objectStorePorts" . | fromJsonArray) }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- if .Values.telemetry.otlpEndpoint }}
- ports:
    - {protocol: TCP, port: {{ $np.otlpPort }}}
{{- end }}
{{- with $np.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Object-store ports of the NetworkPolicies, as a JSON list: networkPolicy.objectStore.ports,
else the endpoint's port (443 for https://, 80 for http://). */}}
{{- define "aperture.objectStorePorts" -}}
{{- $ports := .Values.networkPolicy.objectStore.ports -}}
{{- if $ports -}}
{{- toJson $ports -}}
{{- else -}}
{{- $u := urlParse (default "https://unset" .Values.objectStore.endpoint) -}}
{{- $port := regexFind "[0-9]+$" (regexFind ":[0-9]+$" $u.host) -}}
{{- if $port -}}
{{- list (atoi $port) | toJson -}}
{{- else if eq $u.scheme "http" -}}
[80]
{{- else -}}
[443]
{{- end -}}
{{- end -}}
{{- end -}}
