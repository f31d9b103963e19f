{{/* Names ------------------------------------------------------------------------------ */}}

{{- define "lapis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lapis.fullname" -}}
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

{{/* <fullname>-<component>; call with (dict "root" $ "component" "scheduler"). */}}
{{- define "lapis.componentName" -}}
{{- printf "%s-%s" (include "lapis.fullname" .root | trunc 40 | trimSuffix "-") .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lapis.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels: the one place the standard app.kubernetes.io/* labels are made.
     Call with (dict "root" $ "component" "scheduler"). */}}
{{- define "lapis.labels" -}}
helm.sh/chart: {{ include "lapis.chart" .root }}
{{ include "lapis.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: lapis
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "lapis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lapis.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Images ----------------------------------------------------------------------------- */}}

{{/* A Lapis image: call with (dict "root" $ "image" .Values.scheduler.image). */}}
{{- define "lapis.image" -}}
{{- $registry := .root.Values.image.registry | trimSuffix "/" -}}
{{- $repo := ternary (printf "%s/%s" $registry .image.repository) .image.repository (ne $registry "") -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "lapis.natsImage" -}}
{{- $i := .Values.nats.bundled.image -}}
{{- if $i.digest -}}{{ printf "%s@%s" $i.repository $i.digest }}{{- else -}}{{ printf "%s:%s" $i.repository $i.tag }}{{- end -}}
{{- end -}}

{{/* NATS and auth ---------------------------------------------------------------------- */}}

{{- define "lapis.natsUrl" -}}
{{- if .Values.nats.url -}}
{{- .Values.nats.url -}}
{{- else -}}
{{- printf "nats://%s.%s.svc:4222" (include "lapis.componentName" (dict "root" . "component" "nats")) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* Copies of the event stream and of every bucket: as many as the bundled cluster has servers, unless set. */}}
{{- define "lapis.natsStreamReplicas" -}}
{{- if .Values.nats.streamReplicas -}}
{{- .Values.nats.streamReplicas -}}
{{- else if .Values.nats.url -}}
1
{{- else -}}
{{- .Values.nats.bundled.replicas -}}
{{- end -}}
{{- end -}}

{{/* NATS users: one per service, named after it; the node agents share "container-runtime".
     files/nats-authorization.conf (generated from the platform's nats/access.ts) has the same. */}}
{{- define "lapis.natsUsers" -}}
- container-runtime
- image-sync
- scheduler
- tosca-orchestrator
- occi-gateway
{{- end -}}

{{/* The bundled server's variable holding a user's password; tools/chart-test's passwordVariable makes the same. */}}
{{- define "lapis.natsPasswordVariable" -}}
{{- printf "LAPIS_NATS_PASSWORD_%s" (. | upper | replace "-" "_") -}}
{{- end -}}

{{/* The services log in to NATS: the bundled one when nats.auth.enabled, an external one when it names a Secret. */}}
{{- define "lapis.natsAuthOn" -}}
{{- if .Values.nats.url -}}
{{- if .Values.nats.auth.existingSecret -}}true{{- end -}}
{{- else if .Values.nats.auth.enabled -}}true{{- end -}}
{{- end -}}

{{- define "lapis.natsTlsOn" -}}
{{- if .Values.nats.url -}}
{{- if .Values.nats.tls.existingSecret -}}true{{- end -}}
{{- else if .Values.nats.tls.enabled -}}true{{- end -}}
{{- end -}}

{{- define "lapis.natsUsersSecret" -}}
{{- .Values.nats.auth.existingSecret | default (include "lapis.componentName" (dict "root" . "component" "nats-users")) -}}
{{- end -}}

{{- define "lapis.natsTlsSecret" -}}
{{- .Values.nats.tls.existingSecret | default (include "lapis.componentName" (dict "root" . "component" "nats-tls")) -}}
{{- end -}}

{{/* A service's own NATS password (only its key of the Secret) and the CA: (dict "root" $ "component" "scheduler"). */}}
{{- define "lapis.natsVolumes" -}}
{{- if include "lapis.natsAuthOn" .root }}
- name: nats-password
  secret:
    secretName: {{ include "lapis.natsUsersSecret" .root }}
    defaultMode: 0440
    items: [{ key: {{ .component }}, path: password }]
{{- end }}
{{- if include "lapis.natsTlsOn" .root }}
- name: nats-ca
  secret:
    secretName: {{ include "lapis.natsTlsSecret" .root }}
    defaultMode: 0444
    items: [{ key: ca.crt, path: ca.crt }]
{{- end }}
{{- end -}}

{{- define "lapis.natsMounts" -}}
{{- if include "lapis.natsAuthOn" . }}
- { name: nats-password, mountPath: /etc/lapis/nats, readOnly: true }
{{- end }}
{{- if include "lapis.natsTlsOn" . }}
- { name: nats-ca, mountPath: /etc/lapis/nats-tls, readOnly: true }
{{- end }}
{{- end -}}

{{- define "lapis.oidcEnabled" -}}
{{- if or .Values.auth.oidc.existingSecret .Values.auth.oidc.issuer -}}true{{- end -}}
{{- end -}}

{{- define "lapis.oidcSecret" -}}
{{- .Values.auth.oidc.existingSecret | default (include "lapis.componentName" (dict "root" . "component" "oidc")) -}}
{{- end -}}

{{- define "lapis.staticTokensEnabled" -}}
{{- if or .Values.auth.staticTokens.existingSecret .Values.auth.staticTokens.tokens -}}true{{- end -}}
{{- end -}}

{{- define "lapis.staticTokensSecret" -}}
{{- .Values.auth.staticTokens.existingSecret | default (include "lapis.componentName" (dict "root" . "component" "static-tokens")) -}}
{{- end -}}

{{- define "lapis.serviceTokenEnabled" -}}
{{- if or .Values.auth.serviceToken.existingSecret .Values.auth.serviceToken.value -}}true{{- end -}}
{{- end -}}

{{- define "lapis.serviceTokenSecret" -}}
{{- .Values.auth.serviceToken.existingSecret | default (include "lapis.componentName" (dict "root" . "component" "service-token")) -}}
{{- end -}}

{{/* Fails the render when no caller could ever authenticate (the services would not start). */}}
{{- define "lapis.validate" -}}
{{- if not (or (include "lapis.oidcEnabled" .) (include "lapis.staticTokensEnabled" .)) -}}
{{- fail "auth: set auth.oidc.issuer (or auth.oidc.existingSecret) or static tokens (auth.staticTokens.existingSecret or auth.staticTokens.tokens): callers need a way to authenticate" -}}
{{- end -}}
{{- if and .Values.imageSync.enabled (not .Values.imageSync.siteRegistry) -}}
{{- fail "imageSync.siteRegistry is required: the registry (URL) trusted images are synced into" -}}
{{- end -}}
{{- if and .Values.containerRuntime.enabled (not .Values.imageSync.enabled) (not .Values.containerRuntime.allowUntrustedImages) -}}
{{- fail "containerRuntime needs imageSync.enabled (the trusted catalogue) or containerRuntime.allowUntrustedImages=true" -}}
{{- end -}}
{{- end -}}

{{/* gRPC address of a component's Service: (dict "root" $ "component" "scheduler" "port" 50053). */}}
{{- define "lapis.address" -}}
{{- printf "%s.%s.svc:%v" (include "lapis.componentName" (dict "root" .root "component" .component)) .root.Release.Namespace .port -}}
{{- end -}}

{{/* Environment and volumes every service shares: (dict "root" $ "component" "scheduler" "port" 50053),
     and "shutdownDelaySeconds" where a component's differs from the release's. */}}
{{- define "lapis.commonEnv" -}}
{{- $v := .root.Values -}}
- name: POD_NAME
  valueFrom: { fieldRef: { fieldPath: metadata.name } }
- name: POD_NAMESPACE
  valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
- name: K8S_NODE_NAME
  valueFrom: { fieldRef: { fieldPath: spec.nodeName } }
- name: LAPIS_GRPC_HOST
  value: "0.0.0.0"
- name: LAPIS_GRPC_PORT
  value: {{ .port | quote }}
- name: OTEL_METRICS_EXPORTER
  value: {{ $v.metrics.exporter | quote }}
- name: LAPIS_METRICS_PORT
  value: {{ $v.metrics.port | quote }}
- name: LAPIS_NATS_URL
  value: {{ include "lapis.natsUrl" .root | quote }}
- name: LAPIS_NATS_STREAM
  value: {{ $v.nats.stream | quote }}
- name: LAPIS_NATS_REPLICAS
  value: {{ include "lapis.natsStreamReplicas" .root | quote }}
{{- if include "lapis.natsAuthOn" .root }}
- name: LAPIS_NATS_USER
  value: {{ .component | quote }}
- name: LAPIS_NATS_PASSWORD_FILE
  value: /etc/lapis/nats/password
{{- end }}
{{- if include "lapis.natsTlsOn" .root }}
- name: LAPIS_NATS_CA_FILE
  value: /etc/lapis/nats-tls/ca.crt
{{- end }}
- name: LOG_LEVEL
  value: {{ $v.logLevel | quote }}
- name: LAPIS_SHUTDOWN_DELAY_MS
  value: {{ mul (hasKey . "shutdownDelaySeconds" | ternary .shutdownDelaySeconds $v.shutdownDelaySeconds) 1000 | quote }}
{{- if include "lapis.staticTokensEnabled" .root }}
- name: LAPIS_STATIC_TOKENS_FILE
  value: /etc/lapis/auth/{{ $v.auth.staticTokens.key }}
{{- end }}
{{- if include "lapis.serviceTokenEnabled" .root }}
- name: LAPIS_SERVICE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "lapis.serviceTokenSecret" .root }}
      key: {{ $v.auth.serviceToken.key }}
{{- end }}
- name: OTEL_SERVICE_NAME
  value: {{ .component | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),k8s.node.name=$(K8S_NODE_NAME),service.namespace=lapis{{ with $v.telemetry.resourceAttributes }},{{ . }}{{ end }}"
{{- with $v.telemetry.tracesExporter }}
- name: OTEL_TRACES_EXPORTER
  value: {{ . | quote }}
{{- end }}
{{- with $v.telemetry.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $v.telemetry.otlpProtocol | quote }}
{{- end }}
{{- with $v.telemetry.otlpHeadersSecret.name }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $v.telemetry.otlpHeadersSecret.key }}
{{- end }}
{{- with $v.telemetry.zipkinEndpoint }}
- name: OTEL_EXPORTER_ZIPKIN_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "lapis.envFrom" -}}
{{- if include "lapis.oidcEnabled" . }}
envFrom:
  - secretRef:
      name: {{ include "lapis.oidcSecret" . }}
{{- end }}
{{- end -}}

{{- define "lapis.commonVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if include "lapis.staticTokensEnabled" . }}
- name: static-tokens
  mountPath: /etc/lapis/auth
  readOnly: true
{{- end }}
{{- end -}}

{{- define "lapis.commonVolumes" -}}
- name: tmp
  emptyDir: { sizeLimit: 256Mi }
{{- if include "lapis.staticTokensEnabled" . }}
- name: static-tokens
  secret:
    secretName: {{ include "lapis.staticTokensSecret" . }}
    defaultMode: 0440
    items:
      - key: {{ .Values.auth.staticTokens.key }}
        path: {{ .Values.auth.staticTokens.key }}
{{- end }}
{{- end -}}

{{- define "lapis.flavorsVolume" -}}
- name: flavors
  configMap:
    name: {{ include "lapis.componentName" (dict "root" . "component" "config") }}
    items:
      - { key: flavors.yaml, path: flavors.yaml }
{{- end -}}

{{/* Checksum of what the pods read from the chart's ConfigMap and Secrets: a change rolls them. */}}
{{- define "lapis.configChecksum" -}}
{{- $v := .Values -}}
{{- list $v.flavors $v.scheduler.config $v.imageSync.policies $v.auth (include "lapis.natsUrl" .) $v.nats.auth $v.nats.tls | toJson | sha256sum -}}
{{- end -}}

{{/* The metrics port of a Lapis container, when metrics are served through Prometheus. */}}
{{- define "lapis.metricsPort" -}}
{{- if eq .Values.metrics.exporter "prometheus" }}
- { name: metrics, containerPort: {{ .Values.metrics.port }}, protocol: TCP }
{{- end }}
{{- end -}}

{{/* Scrape annotations of a Lapis pod (Prometheus's kubernetes_sd, role pod). */}}
{{- define "lapis.scrapeAnnotations" -}}
{{- if and (eq .Values.metrics.exporter "prometheus") .Values.metrics.scrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/* Whether the cluster has the Prometheus Operator's CRDs (PodMonitor, PrometheusRule). */}}
{{- define "lapis.prometheusOperator" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- end -}}
