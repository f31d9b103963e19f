// Builds the node agent from the configuration: the adapters it drives (Docker or Kubernetes,
// the node's storage, image-sync, the KV store) and the node it describes.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type EventBus, loadFlavors, type Logger, parseHostPortRange } from '@lapis/platform';
import { Agent } from './application/agent';
import { countingEngineErrors } from './application/metrics';
import type { RuntimeBackend } from './adapters/backend';
import { DockerBackend } from './adapters/docker';
import { KubernetesBackend } from './adapters/kubernetes';
import { HostStorage } from './adapters/host';
import { ImageSyncResolver, type ImageResolver } from './adapters/images';
import { openStore } from './adapters/store';
import type { RuntimeConfig } from './config';
import { parseGpuList, type NodeInventory } from './domain/devices';

type AgentConfig = Pick<
  RuntimeConfig,
  | 'LAPIS_NODE_NAME'
  | 'LAPIS_NODE_PARTITION'
  | 'LAPIS_NODE_CPU_MILLIS'
  | 'LAPIS_NODE_MEMORY_BYTES'
  | 'LAPIS_FLAVORS_FILE'
  | 'LAPIS_DOCKER_SOCKET'
  | 'LAPIS_IMAGE_SYNC_ADDRESS'
  | 'LAPIS_ALLOW_UNTRUSTED_IMAGES'
  | 'LAPIS_STATE_DIR'
  | 'LAPIS_HEARTBEAT_MS'
  | 'LAPIS_MAX_VOLUME_BYTES'
  | 'LAPIS_MIN_VOLUME_BYTES'
  | 'LAPIS_MAX_PROJECT_VOLUME_BYTES'
  | 'LAPIS_GPUS'
  | 'LAPIS_GPU_MODE'
  | 'LAPIS_INFINIBAND_DIR'
  | 'LAPIS_DEVICE_ALLOWLIST'
  | 'LAPIS_INFINIBAND_MEMLOCK'
  | 'LAPIS_STOP_TIMEOUT_S'
  | 'LAPIS_SERVICE_TOKEN'
  | 'LAPIS_RUNTIME_BACKEND'
  | 'LAPIS_KUBE_NAMESPACE'
  | 'LAPIS_KUBECONFIG'
  | 'LAPIS_KUBE_TOLERATE_KWOK'
  | 'LAPIS_KUBE_NODE'
  | 'LAPIS_KUBE_STORAGE_CLASS'
  | 'LAPIS_KUBE_USER_NAMESPACES'
  | 'LAPIS_HOST_PORTS'
  | 'LAPIS_HOST_PORT_ADDRESS'
>;

/** Character devices under the InfiniBand directory (uverbs, rdma_cm, umad...). */
export function findInfiniband(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isCharacterDevice())
    .sort();
}

export function inventoryFrom(config: AgentConfig): NodeInventory {
  return {
    gpus: parseGpuList(config.LAPIS_GPUS),
    infiniband: findInfiniband(config.LAPIS_INFINIBAND_DIR),
    allowlist: config.LAPIS_DEVICE_ALLOWLIST.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    gpuMode: config.LAPIS_GPU_MODE as NodeInventory['gpuMode'],
    infinibandMemlock: config.LAPIS_INFINIBAND_MEMLOCK === 'unlimited' ? -1 : Number(config.LAPIS_INFINIBAND_MEMLOCK),
  };
}

/** The engine LAPIS_RUNTIME_BACKEND names: the node's Docker (default) or Kubernetes Pods. */
export function backendFrom(config: AgentConfig, log: Logger): RuntimeBackend {
  if (config.LAPIS_RUNTIME_BACKEND === 'kubernetes') {
    return new KubernetesBackend(
      {
        kubeconfig: config.LAPIS_KUBECONFIG,
        namespace: config.LAPIS_KUBE_NAMESPACE,
        tolerateKwok: config.LAPIS_KUBE_TOLERATE_KWOK,
        kubeNode: config.LAPIS_KUBE_NODE,
        storageClass: config.LAPIS_KUBE_STORAGE_CLASS,
        userNamespaces: config.LAPIS_KUBE_USER_NAMESPACES,
      },
      config.LAPIS_NODE_NAME,
      log.child({ backend: 'kubernetes' }),
    );
  }
  return new DockerBackend(config.LAPIS_DOCKER_SOCKET, config.LAPIS_NODE_NAME, log);
}

export async function buildAgent(config: AgentConfig, bus: EventBus, log: Logger, images?: ImageResolver): Promise<Agent> {
  return new Agent(
    {
      node: config.LAPIS_NODE_NAME,
      partition: config.LAPIS_NODE_PARTITION,
      capacity: { cpuMillis: config.LAPIS_NODE_CPU_MILLIS, memoryBytes: config.LAPIS_NODE_MEMORY_BYTES, gpus: 0, pids: 0, diskBytes: 0 },
      inventory: inventoryFrom(config),
      heartbeatMs: config.LAPIS_HEARTBEAT_MS,
      stopTimeoutS: config.LAPIS_STOP_TIMEOUT_S,
      minVolumeBytes: config.LAPIS_MIN_VOLUME_BYTES,
      maxVolumeBytes: config.LAPIS_MAX_VOLUME_BYTES,
      hostPorts: parseHostPortRange(config.LAPIS_HOST_PORTS),
      hostPortAddress: config.LAPIS_HOST_PORT_ADDRESS,
      maxProjectVolumeBytes: config.LAPIS_MAX_PROJECT_VOLUME_BYTES,
    },
    {
      bus,
      store: await openStore(bus),
      backend: countingEngineErrors(backendFrom(config, log)),
      host: new HostStorage(config.LAPIS_STATE_DIR),
      images:
        images ?? new ImageSyncResolver(config.LAPIS_IMAGE_SYNC_ADDRESS, config.LAPIS_SERVICE_TOKEN, config.LAPIS_ALLOW_UNTRUSTED_IMAGES),
      flavors: loadFlavors(config.LAPIS_FLAVORS_FILE),
      log: log.child({ node: config.LAPIS_NODE_NAME }),
    },
  );
}
