{{/* Chart name, at most 63 characters. */}}
{{- define "dao.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name when it already contains the chart name,
otherwise "<release>-<chart>", at most 63 characters.
*/}}
{{- define "dao.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "dao.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator's pods; never change them after a release exists. */}}
{{- define "dao.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dao.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "dao.labels" -}}
helm.sh/chart: {{ include "dao.chart" . }}
{{ include "dao.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: databricks-account-operator
{{- end }}

{{- define "dao.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "dao.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{- define "dao.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* "true" when the operator must elect a leader: asked for, or more than one replica. */}}
{{- define "dao.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{- define "dao.leaseName" -}}
{{- .Values.leaderElection.leaseName | default (include "dao.fullname" .) }}
{{- end }}

{{- define "dao.extraCaDir" -}}/etc/databricks-account-operator/extra-ca{{- end }}

{{- define "dao.group" -}}account.databricks-operator.dev{{- end }}

{{/*
The kinds the operator reconciles, as a YAML list of {kind, plural}: read from the CRDs in crds/
(the repository's crds/, through a symlink; `databricks-account-operator crds` generates them from
the code), so RBAC and the Argo CD keys follow the CRDs with no list to keep here. A CRD of another
group fails the render, since the rules below name one group.
*/}}
{{- define "dao.kinds" -}}
{{- range $path, $_ := .Files.Glob "crds/*.yaml" }}
{{- $crd := $.Files.Get $path | fromYaml }}
{{- $group := dig "spec" "group" "" $crd }}
{{- if ne $group (include "dao.group" $) }}
{{- fail (printf "%s: group %q, not %q" $path $group (include "dao.group" $)) }}
{{- end }}
- kind: {{ dig "spec" "names" "kind" "" $crd | required (printf "%s: no spec.names.kind" $path) }}
  plural: {{ dig "spec" "names" "plural" "" $crd | required (printf "%s: no spec.names.plural" $path) }}
{{- end }}
{{- end }}

{{/*
Rules for reconciling the kinds in a namespace (or every namespace in a ClusterRole): exactly the
calls the operator makes.
*/}}
{{- define "dao.reconcileRules" -}}
{{- $kinds := include "dao.kinds" . | fromYamlArray -}}
{{- if not $kinds }}
{{- fail "no CRDs in crds/ (a symlink to the repository's crds/: copy the chart with cp -rL, or use helm package)" }}
{{- end -}}
- apiGroups: [{{ include "dao.group" . | quote }}]
  resources:
  {{- range $kinds }}
  - {{ .plural }}
  {{- end }}
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: [{{ include "dao.group" . | quote }}]
  resources:
  {{- range $kinds }}
  - {{ .plural }}/status
  {{- end }}
  verbs: ["patch"]
- apiGroups: [{{ include "dao.group" . | quote }}]
  resources:
  {{- range $kinds }}
  - {{ .plural }}/finalizers
  {{- end }}
  verbs: ["update"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Secrets: watched with a label selector, so only those labelled
# account.databricks-operator.dev/account-secret=true are ever read (RBAC cannot select by label).
# With holdAccountSecrets, `patch` too: the operator only adds and removes its finalizer
# account.databricks-operator.dev/account-secret-in-use on those Secrets.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"{{ if .Values.holdAccountSecrets }}, "patch"{{ end }}]
# The CA ConfigMap a DatabricksAccount names.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
{{- end }}
