// What the agent needs from an engine. The Docker backend implements it here; the
// Kubernetes backend (pods) implements the same, so the agent does not know which it drives.
import type { Address, Backend, Resources } from '@lapis/proto/lapis/common/v1/common';
import type { ContainerPlan } from '../domain/container';

/** An instance's workload as the engine sees it. */
export interface Observed {
  backendId: string;
  instanceId: string;
  labels: Record<string, string>;
  running: boolean;
  /** "created", "running", "exited", "restarting", "dead"... */
  status: string;
  exitCode: number;
  oomKilled: boolean;
  error: string;
  addresses: Address[];
  startedAt?: Date;
}

export interface EngineEvent {
  instanceId: string;
  backendId: string;
  action: 'start' | 'die' | 'oom' | 'destroy';
  exitCode?: number;
}

export interface LogChunk {
  stream: 'stdout' | 'stderr';
  data: Buffer;
  time?: Date;
}

export interface LogOptions {
  follow: boolean;
  tailLines: number;
  since?: Date;
  signal: AbortSignal;
}

export interface RuntimeBackend {
  readonly kind: Backend;
  /** Set where volumes cannot be attached to a running instance: why (the refusal's message). */
  readonly volumeAttachRefusal?: string;
  /** Makes the image the plan runs available and returns what the engine calls it. */
  localImage(reference: string, digest: string): Promise<string>;
  cachedImages(): Promise<string[]>;
  ensureNetwork(project: string): Promise<string>;
  releaseNetwork(project: string): Promise<void>;
  create(plan: ContainerPlan): Promise<string>;
  start(backendId: string): Promise<void>;
  stop(backendId: string, timeoutS: number): Promise<void>;
  restart(backendId: string, timeoutS: number): Promise<void>;
  remove(backendId: string): Promise<void>;
  resize(backendId: string, resources: Resources): Promise<void>;
  inspect(backendId: string): Promise<Observed | undefined>;
  /** Every workload of this node, found by its labels. */
  list(): Promise<Observed[]>;
  logs(backendId: string, options: LogOptions): AsyncIterable<LogChunk>;
  /** Follows the engine's events for this node's workloads until the returned function is called. */
  watch(onEvent: (event: EngineEvent) => void): () => void;
}

/**
 * The node's block storage and per-instance directories. The Docker backend uses it with bind
 * mounts (`rslave`); a Kubernetes agent (a DaemonSet) can use the same with hostPath volumes and
 * `mountPropagation: HostToContainer`, which is the same kernel mechanism.
 */
export interface NodeStorage {
  readonly instancesDir: string;
  readonly volumesDir: string;
  init(): Promise<void>;
  attachPoint(instanceId: string, name: string): string;
  prepareInstance(instanceId: string, metadata: Record<string, string | Buffer>): Promise<{ mountDir: string; metadataDir: string }>;
  releaseInstance(instanceId: string): Promise<void>;
  createVolumeFile(volumeId: string, sizeBytes: number, filesystem: string): Promise<void>;
  deleteVolumeFile(volumeId: string): Promise<void>;
  attach(volumeId: string, instanceId: string, name: string, readOnly: boolean): Promise<string>;
  detach(volumeId: string, instanceId: string, name: string): Promise<void>;
  freeLoops(volumeId: string): Promise<void>;
  isMounted(path: string): Promise<boolean>;
  mountPoints(): Promise<string[]>;
  loopDevices(): Promise<Array<{ device: string; backingFile: string }>>;
  freeBytes(): Promise<number>;
  instanceIdsOnDisk(): Promise<string[]>;
}
