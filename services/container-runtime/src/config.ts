// The runtime agent's configuration: the platform's variables plus its own, parsed once at start.
import { cpus, hostname, totalmem } from 'node:os';
import { isIP } from 'node:net';
import { listenPort, loadConfig, checkHostPortsVariable, platformSpecs, requireAuthSource } from '@lapis/platform';
import { bool, num, str } from 'envalid';

export const runtimeSpecs = {
  ...platformSpecs,
  LAPIS_GRPC_PORT: listenPort({ default: 50051, desc: 'port the gRPC server listens on (0 picks a free one)' }),
  LAPIS_METRICS_PORT: listenPort({ default: 9451, desc: 'port of the Prometheus endpoint, GET /metrics (0 picks a free one)' }),
  LAPIS_NODE_NAME: str({ default: hostname(), desc: 'name of this node, as placements address it' }),
  LAPIS_NODE_PARTITION: str({ default: 'default', desc: 'partition the node belongs to (advertised in heartbeats)' }),
  LAPIS_NODE_CPU_MILLIS: num({ default: cpus().length * 1000, desc: 'CPU capacity advertised, in thousandths of a CPU' }),
  LAPIS_NODE_MEMORY_BYTES: num({ default: totalmem(), desc: 'memory capacity advertised, in bytes' }),
  LAPIS_FLAVORS_FILE: str({ desc: "YAML file of the site's flavors", example: 'config/flavors.yaml' }),
  LAPIS_DOCKER_SOCKET: str({ default: '/var/run/docker.sock', desc: 'Docker engine socket' }),
  LAPIS_IMAGE_SYNC_ADDRESS: str({ default: '', desc: 'image-sync gRPC address (host:port) for the trusted catalogue' }),
  LAPIS_ALLOW_UNTRUSTED_IMAGES: bool({ default: false, desc: 'run images image-sync does not list (a node setting for development)' }),
  LAPIS_STATE_DIR: str({ default: '/var/lib/lapis/runtime', desc: 'host directory for volume files, instance mount points and metadata' }),
  LAPIS_HEARTBEAT_MS: num({ default: 5000, desc: 'interval between node heartbeats' }),
  LAPIS_MAX_VOLUME_BYTES: num({ default: 2 ** 40, desc: 'largest volume this node creates' }),
  LAPIS_MIN_VOLUME_BYTES: num({ default: 16 * 2 ** 20, desc: 'smallest volume this node creates (ext4 needs room)' }),
  LAPIS_MAX_PROJECT_VOLUME_BYTES: num({
    default: 4 * 2 ** 40,
    desc: "most a project's volumes on this node add up to (volumes are outside the scheduler's quotas); 0 = no limit",
  }),
  LAPIS_GPUS: str({
    default: '',
    desc: 'GPUs this node has, comma separated "vendor:id[:model]" (for example "nvidia:GPU-8f1c...:A100"); empty for none',
  }),
  LAPIS_GPU_MODE: str({
    default: 'device-request',
    choices: ['device-request', 'cdi'],
    desc: 'how GPUs are given: Docker device requests, or CDI names',
  }),
  LAPIS_INFINIBAND_DIR: str({ default: '/dev/infiniband', desc: 'directory of the InfiniBand device nodes; absent means no InfiniBand' }),
  LAPIS_INFINIBAND_MEMLOCK: str({
    default: 'unlimited',
    desc: 'memlock limit of InfiniBand instances: "unlimited", or bytes where the engine cannot raise it (no CAP_SYS_RESOURCE)',
  }),
  LAPIS_DEVICE_ALLOWLIST: str({ default: '', desc: 'host device paths instances may ask for (generic passthrough), comma separated' }),
  LAPIS_RUNTIME_BACKEND: str({
    default: 'docker',
    choices: ['docker', 'kubernetes'],
    desc: "what runs instances: the node's Docker engine, or Pods of a Kubernetes cluster",
  }),
  LAPIS_KUBE_NAMESPACE: str({ default: 'default', desc: "namespace of the instances' Pods (kubernetes backend)" }),
  LAPIS_KUBECONFIG: str({
    default: '',
    desc: 'kubeconfig file (kubernetes backend); empty: the in-cluster service account, else KUBECONFIG',
  }),
  LAPIS_KUBE_STORAGE_CLASS: str({
    default: '',
    desc: "StorageClass of the volumes' PersistentVolumeClaims (kubernetes backend); empty: the cluster's default class",
  }),
  LAPIS_KUBE_NODE: str({
    default: '',
    desc: "the Kubernetes node this agent's Pods run on (kubernetes backend; one agent a node, as the Docker backend has); empty: the cluster's scheduler chooses",
  }),
  LAPIS_KUBE_TOLERATE_KWOK: bool({ default: false, desc: "let instance Pods run on kwok's simulated nodes (tests and simulations only)" }),
  LAPIS_HOST_PORTS: str({
    default: '',
    desc: 'host ports instances may publish, "low-high" (for example 30000-32767); empty: none (instances of a project still reach each other on its network)',
  }),
  LAPIS_HOST_PORT_ADDRESS: str({
    default: '127.0.0.1',
    desc: 'host address published ports are bound to (0.0.0.0 for every address of the node)',
  }),
  LAPIS_KUBE_USER_NAMESPACES: bool({
    default: false,
    desc: "give instance Pods their own user namespace (hostUsers: false; kubernetes backend; needs the cluster's UserNamespacesSupport and a runtime that supports it)",
  }),
  LAPIS_STOP_TIMEOUT_S: num({ default: 10, desc: 'default time between SIGTERM and SIGKILL when stopping an instance' }),
};

export const loadRuntimeConfig = (env: NodeJS.ProcessEnv = process.env) =>
  loadConfig(runtimeSpecs, env, [
    requireAuthSource,
    (c) =>
      !c.LAPIS_IMAGE_SYNC_ADDRESS && !c.LAPIS_ALLOW_UNTRUSTED_IMAGES
        ? 'LAPIS_IMAGE_SYNC_ADDRESS must be set (or LAPIS_ALLOW_UNTRUSTED_IMAGES=true): images are checked against the trusted catalogue'
        : undefined,
    (c) =>
      c.LAPIS_INFINIBAND_MEMLOCK === 'unlimited' || /^\d+$/.test(c.LAPIS_INFINIBAND_MEMLOCK)
        ? undefined
        : `LAPIS_INFINIBAND_MEMLOCK=${JSON.stringify(c.LAPIS_INFINIBAND_MEMLOCK)} is invalid: "unlimited" or a number of bytes`,
    checkHostPortsVariable,
    (c) =>
      isIP(c.LAPIS_HOST_PORT_ADDRESS)
        ? undefined
        : `LAPIS_HOST_PORT_ADDRESS=${JSON.stringify(c.LAPIS_HOST_PORT_ADDRESS)} is invalid: an IP address of the node, such as 127.0.0.1`,
    (c) =>
      /^[A-Za-z0-9._-]{1,63}$/.test(c.LAPIS_NODE_NAME)
        ? undefined
        : `LAPIS_NODE_NAME=${JSON.stringify(c.LAPIS_NODE_NAME)} is invalid: letters, digits, ".", "-" and "_" only`,
  ]);
export type RuntimeConfig = ReturnType<typeof loadRuntimeConfig>;
