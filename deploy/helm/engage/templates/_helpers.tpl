{{/* Names and labels ------------------------------------------------------------------------------------------ */}}

{{- define "engage.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "engage.fullname" -}}
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

{{/* The name of one component's objects: <fullname>-<component> (dict "root" $ "component" "worker"). */}}
{{- define "engage.componentName" -}}
{{- printf "%s-%s" (include "engage.fullname" .root | trunc 50 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "engage.selectorLabels" -}}
app.kubernetes.io/name: {{ include "engage.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "engage.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "engage.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: engage
{{- end -}}

{{- define "engage.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Checks on the values, run once (templates/validate.yaml) ----------------------------------------------------- */}}

{{- define "engage.validate" -}}
{{- $v := .Values -}}
{{- if and (not $v.secrets.existingSecret) (not $v.secrets.allowDemoKeys) -}}
{{- fail "secrets.existingSecret is empty: name the Secret holding the ClickHouse password and the API keys (deploy/helm/README.md), or set secrets.allowDemoKeys=true for a throwaway install with the engine's demo keys" -}}
{{- end -}}
{{- if not $v.kafka.bootstrapServers -}}
{{- fail "kafka.bootstrapServers is empty: list the brokers as host:port" -}}
{{- end -}}
{{- if lt (int $v.kafka.replicationFactor) 1 -}}
{{- fail "kafka.replicationFactor must be at least 1" -}}
{{- end -}}
{{- if lt (int $v.kafka.minInsyncReplicas) 1 -}}
{{- fail "kafka.minInsyncReplicas must be at least 1" -}}
{{- end -}}
{{- if gt (int $v.kafka.minInsyncReplicas) (int $v.kafka.replicationFactor) -}}
{{- fail (printf "kafka.minInsyncReplicas (%d) must be at most kafka.replicationFactor (%d): no write could ever be acknowledged" (int $v.kafka.minInsyncReplicas) (int $v.kafka.replicationFactor)) -}}
{{- end -}}
{{- if gt (int $v.worker.replicas) (int $v.kafka.partitions) -}}
{{- fail (printf "worker.replicas (%d) is more than kafka.partitions (%d): the extra workers would own no partition" (int $v.worker.replicas) (int $v.kafka.partitions)) -}}
{{- end -}}
{{- $protocols := list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL" -}}
{{- if not (has $v.kafka.securityProtocol $protocols) -}}
{{- fail (printf "kafka.securityProtocol must be one of %s, not %q" (join ", " $protocols) $v.kafka.securityProtocol) -}}
{{- end -}}
{{- if hasPrefix "SASL" $v.kafka.securityProtocol -}}
{{- if not $v.kafka.sasl.username -}}
{{- fail (printf "kafka.securityProtocol %s needs kafka.sasl.username" $v.kafka.securityProtocol) -}}
{{- end -}}
{{- if not (has $v.kafka.sasl.mechanism (list "SCRAM-SHA-256" "SCRAM-SHA-512" "PLAIN")) -}}
{{- fail (printf "kafka.sasl.mechanism must be SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN, not %q" $v.kafka.sasl.mechanism) -}}
{{- end -}}
{{- if not (and $v.secrets.existingSecret $v.secrets.keys.kafkaSaslPassword) -}}
{{- fail (printf "kafka.securityProtocol %s needs the SASL password from the Secret: secrets.existingSecret and secrets.keys.kafkaSaslPassword" $v.kafka.securityProtocol) -}}
{{- end -}}
{{- end -}}
{{- if not (has $v.worker.advertise (list "dns" "ip")) -}}
{{- fail (printf "worker.advertise must be dns or ip, not %q" $v.worker.advertise) -}}
{{- end -}}
{{- if gt (int $v.desk.replicas) 1 -}}
{{- fail "desk.replicas must be 1: its queue is one SQLite file" -}}
{{- end -}}
{{- if and (gt (int $v.dashboards.replicas) 1) (not (include "engage.dashboardsKeyMounted" .)) -}}
{{- fail "dashboards.replicas > 1 needs secrets.existingSecret and secrets.keys.dashboardsSigningKey: each pod would otherwise sign sessions and student links with a key of its own" -}}
{{- end -}}
{{- range $port := list $v.sinks.metricsPort $v.notify.metricsPort $v.modelMonitor.metricsPort -}}
{{- if not (int $port) -}}
{{- fail "sinks, notify and modelMonitor need a metricsPort: their probes ask /metrics there" -}}
{{- end -}}
{{- end -}}
{{- $plain := dict "env" $v.env -}}
{{- range $key := list "collector" "worker" "sinks" "modelMonitor" "notify" "desk" "leaderboards" "dashboards" -}}
{{- $_ := set $plain (printf "%s.extraEnv" $key) (get (get $v $key) "extraEnv") -}}
{{- end -}}
{{- range $where, $env := $plain -}}
{{- range $name, $value := $env -}}
{{- if regexMatch "(?i)(PASSWORD|SECRET|KEY|TOKEN)" $name -}}
{{- fail (printf "%s.%s looks like a secret: put it in the Secret and name its key in secrets.extraEnv (%s: <key>)" $where $name $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Environment ------------------------------------------------------------------------------------------------ */}}

{{/* "true" when the dashboards' signing key comes from the Secret (a file mount at runDir/dashboards.key). */}}
{{- define "engage.dashboardsKeyMounted" -}}
{{- if and .Values.secrets.existingSecret .Values.secrets.keys.dashboardsSigningKey -}}true{{- end -}}
{{- end -}}

{{/* Settings from the Secret: values key under secrets.keys, the ENGAGE_* variable, whether the key may be missing. */}}
{{- define "engage.secretSettings" -}}
- {key: clickhousePassword, env: ENGAGE_CLICKHOUSE_PASSWORD, optional: false}
- {key: kafkaSaslPassword, env: ENGAGE_KAFKA_SASL_PASSWORD, optional: sasl}
- {key: writeKeys, env: ENGAGE_WRITE_KEYS, optional: false}
- {key: serverKeys, env: ENGAGE_SERVER_KEYS, optional: false}
- {key: adminKeys, env: ENGAGE_ADMIN_KEYS, optional: false}
- {key: offerCodeSecret, env: ENGAGE_OFFER_CODE_SECRET, optional: false}
- {key: trackingSecret, env: ENGAGE_TRACKING_SECRET, optional: false}
- {key: trackingRetiredSecrets, env: ENGAGE_TRACKING_RETIRED_SECRETS, optional: true}
- {key: deskKey, env: ENGAGE_DESK_KEY, optional: true}
- {key: smtpPassword, env: ENGAGE_SMTP_PASSWORD, optional: true}
- {key: fcmAccessToken, env: ENGAGE_FCM_ACCESS_TOKEN, optional: true}
- {key: twilioAuthToken, env: ENGAGE_TWILIO_AUTH_TOKEN, optional: true}
{{- end -}}

{{/* Every secret setting as valueFrom.secretKeyRef (nothing when secrets.existingSecret is empty: demo keys). */}}
{{- define "engage.secretEnv" -}}
{{- $s := .Values.secrets -}}
{{- if $s.existingSecret -}}
{{- range $item := include "engage.secretSettings" . | fromYamlArray -}}
{{- $key := get $s.keys $item.key -}}
{{- if $key }}
- name: {{ $item.env }}
  valueFrom:
    secretKeyRef:
      name: {{ $s.existingSecret | quote }}
      key: {{ $key | quote }}
      {{- if eq (toString $item.optional) "sasl" }}
      {{- if not (hasPrefix "SASL" $.Values.kafka.securityProtocol) }}
      optional: true  # needed only with a SASL_* kafka.securityProtocol
      {{- end }}
      {{- else if $item.optional }}
      optional: true
      {{- end }}
{{- end -}}
{{- end -}}
{{- range $name, $key := $s.extraEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $s.existingSecret | quote }}
      key: {{ $key | quote }}
      optional: true
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The environment of one engine container: (dict "root" $ "key" "worker" "set" (dict ENGAGE_X "v")).
The same settings in every process kind (as deploy/docker-compose.yml gives them all one set), then `set` (what the
component itself needs), then values' `env` and the component's `extraEnv`, then the Secret's settings.
*/}}
{{- define "engage.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $env := dict -}}
{{- $svc := dict "root" $root -}}
{{- $_ := set $env "ENGAGE_BIND_HOST" "0.0.0.0" -}}{{/* listen on the pod's interfaces; the *_HOST settings say where it is reached */}}
{{- $_ := set $env "ENGAGE_RUN_DIR" $v.runDir -}}
{{- $_ := set $env "ENGAGE_CACHE_DIR" (printf "%s/cache" $v.runDir) -}}
{{- $_ := set $env "ENGAGE_KAFKA_BOOTSTRAP_SERVERS" (join "," $v.kafka.bootstrapServers) -}}
{{- $_ := set $env "ENGAGE_KAFKA_REPLICATION_FACTOR" (toString $v.kafka.replicationFactor) -}}
{{- $_ := set $env "ENGAGE_KAFKA_MIN_INSYNC_REPLICAS" (toString $v.kafka.minInsyncReplicas) -}}
{{- $_ := set $env "ENGAGE_EVENT_PARTITIONS" (toString $v.kafka.partitions) -}}
{{- $_ := set $env "ENGAGE_TOPIC_PREFIX" $v.kafka.topicPrefix -}}
{{- $_ := set $env "ENGAGE_KAFKA_SECURITY_PROTOCOL" $v.kafka.securityProtocol -}}
{{- if hasPrefix "SASL" $v.kafka.securityProtocol -}}
{{- $_ := set $env "ENGAGE_KAFKA_SASL_MECHANISM" $v.kafka.sasl.mechanism -}}
{{- $_ := set $env "ENGAGE_KAFKA_SASL_USERNAME" $v.kafka.sasl.username -}}
{{- end -}}
{{- if $v.kafka.caConfigMap.name -}}
{{- $_ := set $env "ENGAGE_KAFKA_SSL_CA_FILE" (printf "/etc/engage/kafka-ca/%s" $v.kafka.caConfigMap.key) -}}
{{- end -}}
{{- $_ := set $env "ENGAGE_CLICKHOUSE_HOST" $v.clickhouse.host -}}
{{- $_ := set $env "ENGAGE_CLICKHOUSE_PORT" (toString $v.clickhouse.port) -}}
{{- $_ := set $env "ENGAGE_CLICKHOUSE_HTTP_PORT" (toString $v.clickhouse.httpPort) -}}
{{- $_ := set $env "ENGAGE_CLICKHOUSE_DATABASE" $v.clickhouse.database -}}
{{- $_ := set $env "ENGAGE_CLICKHOUSE_USER" $v.clickhouse.user -}}
{{- $_ := set $env "ENGAGE_CLICKHOUSE_SECURE" (ternary "true" "false" (eq (toString $v.clickhouse.secure) "true")) -}}
{{- if $v.clickhouse.cluster -}}
{{- $_ := set $env "ENGAGE_CLICKHOUSE_CLUSTER" $v.clickhouse.cluster -}}
{{- end -}}
{{- if $v.clickhouse.caConfigMap.name -}}
{{- $_ := set $env "ENGAGE_CLICKHOUSE_CA_FILE" (printf "/etc/engage/clickhouse-ca/%s" $v.clickhouse.caConfigMap.key) -}}
{{- end -}}
{{- /* where each service is reached (its Service's name), and the ports each listens on */ -}}
{{- $collector := include "engage.componentName" (merge (dict "component" "collector") $svc) -}}
{{- $worker := include "engage.componentName" (merge (dict "component" "worker") $svc) -}}
{{- $desk := include "engage.componentName" (merge (dict "component" "desk") $svc) -}}
{{- $leaderboards := include "engage.componentName" (merge (dict "component" "leaderboards") $svc) -}}
{{- $dashboards := include "engage.componentName" (merge (dict "component" "dashboards") $svc) -}}
{{- $_ := set $env "ENGAGE_COLLECTOR_HOST" $collector -}}
{{- $_ := set $env "ENGAGE_COLLECTOR_PORT" (toString $v.collector.port) -}}
{{- if $v.collector.publicUrl -}}
{{- $_ := set $env "ENGAGE_TRACKING_PUBLIC_URL" $v.collector.publicUrl -}}
{{- end -}}
{{- $_ := set $env "ENGAGE_WORKER_HOST" $worker -}}
{{- $_ := set $env "ENGAGE_WORKER_WEB_PORT" (toString $v.worker.webPort) -}}
{{- $_ := set $env "ENGAGE_SINK_METRICS_PORT" (toString $v.sinks.metricsPort) -}}
{{- $_ := set $env "ENGAGE_NOTIFY_METRICS_PORT" (toString $v.notify.metricsPort) -}}
{{- $_ := set $env "ENGAGE_DESK_PORT" (toString $v.desk.port) -}}
{{- $_ := set $env "ENGAGE_LEADERBOARD_PORT" (toString $v.leaderboards.port) -}}
{{- $_ := set $env "ENGAGE_LEADERBOARD_URL" (printf "http://%s:%v" $leaderboards $v.leaderboards.port) -}}
{{- $_ := set $env "ENGAGE_DASHBOARDS_HOST" $dashboards -}}
{{- $_ := set $env "ENGAGE_DASHBOARDS_PORT" (toString $v.dashboards.port) -}}
{{- $_ := set $env "ENGAGE_DASHBOARDS_WORKER_URL" (printf "http://%s:%v" $worker $v.worker.webPort) -}}
{{- $_ := set $env "ENGAGE_DASHBOARDS_DESK_URL" (printf "http://%s:%v" $desk $v.desk.port) -}}
{{- if $v.dashboards.publicUrl -}}
{{- $_ := set $env "ENGAGE_DASHBOARDS_BASE" $v.dashboards.publicUrl -}}
{{- end -}}
{{- if and .shared $v.shared.existingClaim -}}
{{- $_ := set $env "ENGAGE_MODEL_REGISTRY_DIR" (printf "%s/models" $v.shared.mountPath) -}}
{{- $_ := set $env "ENGAGE_INBOX_PATH" (printf "%s/inbox.sqlite3" $v.shared.mountPath) -}}
{{- end -}}
{{- range $name, $value := .set -}}
{{- $_ := set $env $name (toString $value) -}}
{{- end -}}
{{- range $name, $value := $v.env -}}
{{- $_ := set $env $name (toString $value) -}}
{{- end -}}
{{- range $name, $value := (get $v .key).extraEnv -}}
{{- $_ := set $env $name (toString $value) -}}
{{- end -}}
{{- range $name, $value := $env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end -}}
{{- include "engage.secretEnv" $root -}}
{{- end -}}

{{/* Pods ------------------------------------------------------------------------------------------------------- */}}

{{/* An httpGet probe: (dict "root" $ "path" "/healthz" "port" "http" "timing" .Values.probes.liveness). */}}
{{- define "engage.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
{{ toYaml .timing }}
{{- end -}}

{{- define "engage.podAnnotations" -}}
{{- if .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end -}}
{{- end -}}

{{/* What every pod of the chart shares: pull secrets, placement, security context, no API token. */}}
{{- define "engage.podCommon" -}}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{ toYaml . }}
{{- end }}
securityContext:
{{ toYaml .Values.podSecurityContext | indent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
{{ toYaml . | indent 2 }}
{{- end }}
{{- end -}}

{{/* The volume mounts every engine container has: runDir (volume "run"), /tmp, the ClickHouse CA, the shared claim. */}}
{{- define "engage.volumeMounts" -}}
- name: run
  mountPath: {{ .root.Values.runDir }}
- name: tmp
  mountPath: /tmp
{{- if .root.Values.clickhouse.caConfigMap.name }}
- name: clickhouse-ca
  mountPath: /etc/engage/clickhouse-ca
  readOnly: true
{{- end }}
{{- if .root.Values.kafka.caConfigMap.name }}
- name: kafka-ca
  mountPath: /etc/engage/kafka-ca
  readOnly: true
{{- end }}
{{- if and .shared .root.Values.shared.existingClaim }}
- name: shared
  mountPath: {{ .root.Values.shared.mountPath }}
{{- end }}
{{- end -}}

{{/* The volumes matching engage.volumeMounts, except "run" (each workload says where its runDir lives). */}}
{{- define "engage.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .root.Values.clickhouse.caConfigMap.name }}
- name: clickhouse-ca
  configMap:
    name: {{ .root.Values.clickhouse.caConfigMap.name }}
{{- end }}
{{- if .root.Values.kafka.caConfigMap.name }}
- name: kafka-ca
  configMap:
    name: {{ .root.Values.kafka.caConfigMap.name }}
{{- end }}
{{- if and .shared .root.Values.shared.existingClaim }}
- name: shared
  persistentVolumeClaim:
    claimName: {{ .root.Values.shared.existingClaim }}
{{- end }}
{{- end -}}

{{/*
A Deployment and its Service for one process kind that keeps nothing of its own (collector, sinks, model monitor,
notify, desk, leaderboards, dashboards):
  root, component (the compose service's name), key (values key), command (list), port, portName (http | metrics),
  liveness, readiness (paths on that port), set (component env), shared (mounts the shared claim),
  runVolume (the "run" volume's source; default an emptyDir), strategy (Deployment strategy type; default RollingUpdate),
  metrics (false: the process serves no /metrics on its port, so no Prometheus annotations),
  extraMounts, extraVolumes (lists added to the container's mounts and the pod's volumes)
*/}}
{{- define "engage.deployment" -}}
{{- $root := .root -}}
{{- $c := get $root.Values .key -}}
{{- $names := dict "root" $root "component" .component -}}
{{- $timing := $root.Values.probes -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "engage.componentName" $names }}
  labels:
    {{- include "engage.labels" $names | nindent 4 }}
spec:
  replicas: {{ $c.replicas }}
  strategy:
    type: {{ default "RollingUpdate" .strategy }}
  selector:
    matchLabels:
      {{- include "engage.selectorLabels" $names | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "engage.labels" $names | nindent 8 }}
      {{- with and (ne (toString .metrics) "false") (include "engage.podAnnotations" (dict "root" $root "port" .port) | trim) }}
      annotations:
        {{- . | nindent 8 }}
      {{- end }}
    spec:
      {{- include "engage.podCommon" $root | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "engage.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: {{ toJson .command }}
          ports:
            - name: {{ .portName }}
              containerPort: {{ .port }}
              protocol: TCP
          env:
            {{- include "engage.env" (dict "root" $root "key" .key "set" (default (dict) .set) "shared" .shared) | trim | nindent 12 }}
          livenessProbe:
            {{- include "engage.httpProbe" (dict "path" .liveness "port" .portName "timing" $timing.liveness) | nindent 12 }}
          readinessProbe:
            {{- include "engage.httpProbe" (dict "path" .readiness "port" .portName "timing" $timing.readiness) | nindent 12 }}
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            {{- include "engage.volumeMounts" (dict "root" $root "shared" .shared) | nindent 12 }}
            {{- with .extraMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: run
          {{- toYaml (default (dict "emptyDir" (dict)) .runVolume) | nindent 10 }}
        {{- include "engage.volumes" (dict "root" $root "shared" .shared) | nindent 8 }}
        {{- with .extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "engage.componentName" $names }}
  labels:
    {{- include "engage.labels" $names | nindent 4 }}
spec:
  type: {{ default "ClusterIP" (($c.service | default dict).type) }}
  selector:
    {{- include "engage.selectorLabels" $names | nindent 4 }}
  ports:
    - name: {{ .portName }}
      port: {{ .port }}
      targetPort: {{ .portName }}
      protocol: TCP
{{- end -}}
