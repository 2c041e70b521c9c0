{{/*
Object names are fixed rather than derived from the release: the controller finds its Secrets, Lease, Services and
webhook configurations by these names, so one release per cluster.
*/}}

{{/* Helm's standard labels, on every object's metadata (never in selectors, which cannot change after install). */}}
{{- define "cnpg-dynamic-storage.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* Metadata labels of an object: its name label when given ("name" in the dict), part-of, and Helm's. */}}
{{- define "cnpg-dynamic-storage.labels" -}}
{{- with .name -}}
app.kubernetes.io/name: {{ . }}
{{ end -}}
app.kubernetes.io/part-of: cnpg-dynamic-storage
{{ include "cnpg-dynamic-storage.helmLabels" .root }}
{{- end }}

{{- define "cnpg-dynamic-storage.image" -}}
{{ .image.repository }}:{{ .image.tag | default .root.Chart.AppVersion }}
{{- end }}

{{/* The webhooks' certificate source as the controller reads it (WEBHOOK_CERT_SOURCE). */}}
{{- define "cnpg-dynamic-storage.webhookCertSource" -}}
{{- if not .Values.webhook.enabled -}}
off
{{- else if eq .Values.webhook.certSource "secret" -}}
secret
{{- else if eq .Values.webhook.certSource "cert-manager" -}}
files
{{- else -}}
{{- fail (printf "webhook.certSource: %q must be secret or cert-manager" .Values.webhook.certSource) -}}
{{- end -}}
{{- end }}

{{- define "cnpg-dynamic-storage.certManager" -}}
{{- if and .Values.webhook.enabled (eq .Values.webhook.certSource "cert-manager") }}true{{ end -}}
{{- end }}
