{{/* The services that run as plain Deployments: values key, component (= service) name, port. */}}
{{- define "lapis.components" -}}
- { key: imageSync, name: image-sync }
- { key: scheduler, name: scheduler }
- { key: toscaOrchestrator, name: tosca-orchestrator }
- { key: occiGateway, name: occi-gateway }
{{- end -}}

{{/* Each component's own environment: (dict "root" $ "values" <component values>). */}}
{{- define "lapis.env.image-sync" -}}
{{- $c := .values -}}
- name: LAPIS_SITE_REGISTRY
  value: {{ $c.siteRegistry | quote }}
- name: LAPIS_SYNC_CONCURRENCY
  value: {{ $c.syncConcurrency | quote }}
{{- if $c.policies }}
- name: LAPIS_POLICY_FILE
  value: /etc/lapis/config/policies.yaml
{{- end }}
{{- if $c.siteRegistrySecret.name }}
- name: LAPIS_SITE_REGISTRY_SECRET
  value: file:/etc/lapis/registry/{{ $c.siteRegistrySecret.key }}
{{- end }}
{{- end -}}

{{- define "lapis.volumes.image-sync" -}}
{{- $c := .values -}}
{{- if $c.policies }}
- name: config
  configMap:
    name: {{ include "lapis.componentName" (dict "root" .root "component" "config") }}
    items: [{ key: policies.yaml, path: policies.yaml }]
{{- end }}
{{- if $c.siteRegistrySecret.name }}
- name: registry-credentials
  secret:
    secretName: {{ $c.siteRegistrySecret.name }}
    defaultMode: 0440
    items: [{ key: {{ $c.siteRegistrySecret.key }}, path: {{ $c.siteRegistrySecret.key }} }]
{{- end }}
{{- end -}}

{{- define "lapis.mounts.image-sync" -}}
{{- $c := .values -}}
{{- if $c.policies }}
- { name: config, mountPath: /etc/lapis/config, readOnly: true }
{{- end }}
{{- if $c.siteRegistrySecret.name }}
- { name: registry-credentials, mountPath: /etc/lapis/registry, readOnly: true }
{{- end }}
{{- end -}}

{{- define "lapis.env.scheduler" -}}
{{- $c := .values -}}
- name: LAPIS_FLAVORS_FILE
  value: /etc/lapis/flavors/flavors.yaml
{{- if $c.config }}
- name: LAPIS_SCHEDULER_CONFIG_FILE
  value: /etc/lapis/config/scheduler.yaml
{{- end }}
- name: LAPIS_HOST_PORTS
  value: {{ .root.Values.hostPorts.range | quote }}
- name: LAPIS_SCHEDULER_CYCLE_MS
  value: {{ $c.cycleMs | quote }}
- name: LAPIS_SCHEDULER_LEASE_MS
  value: {{ $c.leaseMs | quote }}
- name: LAPIS_SCHEDULER_NODE_LOST_MS
  value: {{ $c.nodeLostMs | quote }}
- name: LAPIS_HEARTBEAT_MS
  value: {{ .root.Values.containerRuntime.heartbeatMs | quote }}
{{- end -}}

{{- define "lapis.volumes.scheduler" -}}
{{ include "lapis.flavorsVolume" .root }}
{{- if .values.config }}
- name: config
  configMap:
    name: {{ include "lapis.componentName" (dict "root" .root "component" "config") }}
    items: [{ key: scheduler.yaml, path: scheduler.yaml }]
{{- end }}
{{- end -}}

{{- define "lapis.mounts.scheduler" -}}
- { name: flavors, mountPath: /etc/lapis/flavors, readOnly: true }
{{- if .values.config }}
- { name: config, mountPath: /etc/lapis/config, readOnly: true }
{{- end }}
{{- end -}}

{{- define "lapis.env.tosca-orchestrator" -}}
{{- $v := .root.Values -}}
- name: LAPIS_SCHEDULER_ADDRESS
  value: {{ include "lapis.address" (dict "root" .root "component" "scheduler" "port" $v.scheduler.grpcPort) | quote }}
- name: LAPIS_RUNTIME_ADDRESS
  value: {{ include "lapis.address" (dict "root" .root "component" "container-runtime" "port" $v.containerRuntime.grpcPort) | quote }}
{{- end -}}

{{- define "lapis.volumes.tosca-orchestrator" -}}{{- end -}}
{{- define "lapis.mounts.tosca-orchestrator" -}}{{- end -}}

{{- define "lapis.env.occi-gateway" -}}
{{- $v := .root.Values -}}
- name: LAPIS_HTTP_PORT
  value: {{ .values.httpPort | quote }}
- name: LAPIS_OCCI_PUBLIC_URL
  value: {{ .values.publicUrl | default (printf "http://%s" (include "lapis.address" (dict "root" .root "component" "occi-gateway" "port" .values.httpPort))) | quote }}
- name: LAPIS_SCHEDULER_ADDRESS
  value: {{ include "lapis.address" (dict "root" .root "component" "scheduler" "port" $v.scheduler.grpcPort) | quote }}
- name: LAPIS_RUNTIME_ADDRESS
  value: {{ include "lapis.address" (dict "root" .root "component" "container-runtime" "port" $v.containerRuntime.grpcPort) | quote }}
- name: LAPIS_IMAGE_SYNC_ADDRESS
  value: {{ include "lapis.address" (dict "root" .root "component" "image-sync" "port" $v.imageSync.grpcPort) | quote }}
{{- end -}}

{{- define "lapis.volumes.occi-gateway" -}}{{- end -}}
{{- define "lapis.mounts.occi-gateway" -}}{{- end -}}
