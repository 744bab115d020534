{{/* The chart's name, overridable. */}}
{{- define "tunkeeper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: object names start with it (63 characters at most, as DNS labels allow). */}}
{{- define "tunkeeper.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tunkeeper.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels that select the agents' pods: never change them (a DaemonSet's selector is immutable). */}}
{{- define "tunkeeper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tunkeeper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{/* The standard labels on every object of the release. */}}
{{- define "tunkeeper.labels" -}}
helm.sh/chart: {{ include "tunkeeper.chart" . }}
{{ include "tunkeeper.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tunkeeper
{{- end }}

{{- define "tunkeeper.serviceAccountName" -}}
{{- default (include "tunkeeper.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{- define "tunkeeper.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The ConfigMap holding the standalone declarations: the user's own, or the chart's. */}}
{{- define "tunkeeper.declarationsConfigMap" -}}
{{- default (printf "%s-declarations" (include "tunkeeper.fullname" .)) .Values.standalone.existingConfigMap }}
{{- end }}

{{/* The agent's settings file, as the ConfigMap carries it (and the pod's checksum hashes it). */}}
{{- define "tunkeeper.agentSettings" -}}
routeProtocol: {{ .Values.agent.routeProtocol }}
allowedPrefixes: {{ toJson .Values.agent.allowedPrefixes }}
allowDefaultRoute: {{ .Values.agent.allowDefaultRoute }}
resyncInterval: {{ .Values.agent.resyncInterval | toString | quote }}
logLevel: {{ .Values.agent.logLevel }}
{{- end }}
