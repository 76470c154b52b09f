{{/*
Chart name, or nameOverride.
*/}}
{{- define "pisanix.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name of the controller's resources: fullnameOverride, else the release name when it
already contains the chart name, else <release>-<chart>.
*/}}
{{- define "pisanix.fullname" -}}
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

{{/* Name of the daemon's resources. */}}
{{- define "pisanix.daemon.fullname" -}}
{{- printf "%s-daemon" (include "pisanix.fullname" . | trunc 56 | trimSuffix "-") -}}
{{- end -}}

{{- define "pisanix.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "pisanix.labels" -}}
helm.sh/chart: {{ include "pisanix.chart" . }}
app.kubernetes.io/name: {{ include "pisanix.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pisanix
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of the controller (never change them: Deployment selectors are immutable). */}}
{{- define "pisanix.controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pisanix.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "pisanix.controller.labels" -}}
{{ include "pisanix.labels" . }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "pisanix.daemon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pisanix.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: daemon
{{- end -}}

{{- define "pisanix.daemon.labels" -}}
{{ include "pisanix.labels" . }}
app.kubernetes.io/component: daemon
{{- end -}}

{{/* Controller ServiceAccount. */}}
{{- define "pisanix.controller.serviceAccountName" -}}
{{- if .Values.controller.serviceAccount.create -}}
{{- default (include "pisanix.fullname" .) .Values.controller.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.controller.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
An image reference: repository@digest, else repository:tag (tag defaults to appVersion).
Call with (dict "image" .Values.x.image "root" .).
*/}}
{{- define "pisanix.image" -}}
{{- $img := .image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion ($img.tag | toString)) -}}
{{- end -}}
{{- end -}}

{{/* Secret of the webhook serving certificate. */}}
{{- define "pisanix.webhook.certSecretName" -}}
{{- default (printf "%s-webhook-cert" (include "pisanix.fullname" .)) .Values.webhook.certSecretName -}}
{{- end -}}

{{/* cert-manager Certificate and Issuer. */}}
{{- define "pisanix.webhook.certificateName" -}}
{{- printf "%s-webhook" (include "pisanix.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{- define "pisanix.webhook.issuerName" -}}
{{- printf "%s-selfsigned" (include "pisanix.fullname" . | trunc 52 | trimSuffix "-") -}}
{{- end -}}

{{/* -webhook-cert-mode. */}}
{{- define "pisanix.webhook.certMode" -}}
{{- if .Values.webhook.certManager.enabled -}}file{{- else -}}self{{- end -}}
{{- end -}}

{{/* -leader-elect: on with more than one replica or when asked. */}}
{{- define "pisanix.controller.leaderElect" -}}
{{- if or .Values.controller.leaderElect (gt (int .Values.controller.replicaCount) 1) -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{/* daemon.cleanupOnExit as the daemon reads it: true, false or auto (the schema allows those, as
     booleans or strings). */}}
{{- define "pisanix.daemon.cleanupOnExit" -}}
{{- .Values.daemon.cleanupOnExit | toString | lower -}}
{{- end -}}

{{/* Port number of the daemon's admin address (":5592", "0.0.0.0:5592" → 5592). */}}
{{- define "pisanix.daemon.adminPort" -}}
{{- $port := regexFind "[0-9]+$" (.Values.daemon.adminAddr | toString) -}}
{{- if not $port -}}
{{- fail (printf "daemon.adminAddr %q has no port" .Values.daemon.adminAddr) -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{/*
Values of Pisanix's charts/pisa-controller, honoured so that a Pisanix values file works unchanged
(docs/deploy.md, "Pisanix's values"). Each one, when given, sets the value that replaced it.
Every template that reads those values includes this first; it only writes .Values, so including it
again changes nothing.
*/}}
{{- define "pisanix.compat" -}}
{{- $v := .Values -}}
{{- if hasKey $v "replicaCount" -}}
{{- $_ := set $v.controller "replicaCount" $v.replicaCount -}}
{{- end -}}
{{- with $v.image -}}
{{- range $k := list "repository" "tag" "pullPolicy" -}}
{{- if hasKey $.Values.image $k -}}
{{- $_ := set $.Values.controller.image $k (index $.Values.image $k) -}}
{{- end -}}
{{- end -}}
{{- if .imagePullSecrets -}}
{{- $_ := set $v "imagePullSecrets" .imagePullSecrets -}}
{{- end -}}
{{- end -}}
{{- with $v.proxyImage -}}
{{- range $k := list "repository" "tag" -}}
{{- if hasKey $.Values.proxyImage $k -}}
{{- $_ := set $.Values.proxy.image $k (index $.Values.proxyImage $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if hasKey $v "resources" -}}
{{- $_ := set $v.controller "resources" $v.resources -}}
{{- end -}}
{{- if hasKey $v.service "corePort" -}}
{{- $_ := set $v.service.ports "core" $v.service.corePort -}}
{{- end -}}
{{- if hasKey $v.service "webhookPort" -}}
{{- $_ := set $v.controller.ports "webhook" $v.service.webhookPort -}}
{{- end -}}
{{- if hasKey $v.service "proxyConfigsPort" -}}
{{- $_ := set $v.service.ports "proxyConfigs" $v.service.proxyConfigsPort -}}
{{- $_ := set $v.controller.ports "proxyConfigs" $v.service.proxyConfigsPort -}}
{{- end -}}
{{- end -}}
