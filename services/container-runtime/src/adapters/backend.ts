// What the agent needs from an engine. The Docker backend implements it here; the
// Kubernetes backend (pods) implements the same, so the agent does not know which it drives.
import type { Backend, Resources } from '@lapis/proto/lapis/common/v1/common';
import type { Network, Volume } from '@lapis/proto/lapis/runtime/v1/runtime';
import type { ContainerPlan } from '../domain/container';
import type { ClaimStatus, Observed } from '../domain/observed';

export type { ClaimStatus, Observed };

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
  /** The engine's stamp in nanoseconds since the epoch, where it gives them (Docker does). */
  timeNs?: bigint;
}

/** A command run in a workload, after files are written into it (ExecInInstance). */
export interface ExecRequest {
  files: { path: string; content: Uint8Array; mode: number }[];
  argv: string[];
  environment: Record<string, string>;
  workingDir: string;
  timeoutMs: number;
}

export interface ExecResult {
  /** -1 when the command did not end in time. */
  exitCode: number;
  outputTail: Buffer;
  outputTruncated: boolean;
  timedOut: boolean;
}

export interface LogOptions {
  follow: boolean;
  tailLines: number;
  since?: Date;
  signal: AbortSignal;
}

/**
 * Volumes the engine makes and keeps (Kubernetes: PersistentVolumeClaims). A workload gets
 * them when it is created (ContainerPlan.volumes); the node's block files are not used.
 */
export interface VolumeClaims {
  /** The engine's name of the volume's claim. */
  claimName(volumeId: string): string;
  create(volume: Volume): Promise<void>;
  status(volumeId: string): Promise<ClaimStatus>;
  /** Deletes the claim and waits until it is gone; FAILED_PRECONDITION while a workload uses it. */
  delete(volumeId: string): Promise<void>;
  /** This node's claims, as the volume records they were made for (state CREATING: the agent reads the phase). */
  list(): Promise<Volume[]>;
}

export interface RuntimeBackend {
  readonly kind: Backend;
  /** Set where volumes cannot be attached to a running instance: why (the refusal's message). */
  readonly volumeAttachRefusal?: string;
  /** Set where the engine keeps volumes itself (claims) instead of the node's block files. */
  readonly claims?: VolumeClaims;
  /**
   * True where a workload cannot be stopped, rebooted or resized in place (a Pod): the agent
   * deletes it and creates it anew from the instance record (same id, same volumes).
   */
  readonly recreates?: boolean;
  /** Makes the image the plan runs available and returns what the engine calls it. */
  localImage(reference: string, digest: string): Promise<string>;
  cachedImages(): Promise<string[]>;
  ensureNetwork(project: string): Promise<string>;
  releaseNetwork(project: string): Promise<void>;
  /**
   * Connects the running workload to a Lapis network (its bridge made on the engine first, once
   * for every agent sharing it), at `ip` or one the engine picks. Absent where the engine
   * cannot change a running workload's interfaces; `networkRefusal` then says why.
   */
  connectNetwork?(backendId: string, network: Network, ip: string): Promise<void>;
  /** Disconnects the workload (nothing when it is not connected) and removes the bridge once unused. */
  disconnectNetwork?(backendId: string, networkId: string): Promise<void>;
  /** Removes the network's bridge from the engine when no workload uses it. */
  releaseLapisNetwork?(networkId: string): Promise<void>;
  readonly networkRefusal?: string;
  create(plan: ContainerPlan): Promise<string>;
  start(backendId: string): Promise<void>;
  stop(backendId: string, timeoutS: number): Promise<void>;
  restart(backendId: string, timeoutS: number): Promise<void>;
  /** Freezes the workload where it is (Docker: pause, the cgroup freezer); absent where the engine cannot. */
  suspend?(backendId: string): Promise<void>;
  resume?(backendId: string): Promise<void>;
  /** Set where the engine cannot suspend: why (the refusal's message). */
  readonly suspendRefusal?: string;
  remove(backendId: string): Promise<void>;
  resize(backendId: string, resources: Resources): Promise<void>;
  inspect(backendId: string): Promise<Observed | undefined>;
  /** Every workload of this node, found by its labels. */
  list(): Promise<Observed[]>;
  logs(backendId: string, options: LogOptions): AsyncIterable<LogChunk>;
  /**
   * What the workload writes from now on, until it stops or `signal` aborts; resolves once the
   * engine streams, so nothing written after that is missed. Absent where the backend cannot
   * follow a log.
   */
  followLogs?(backendId: string, signal: AbortSignal): Promise<AsyncIterable<LogChunk>>;
  /** Writes files into the running workload and runs a command there. Absent where the backend cannot. */
  exec?(backendId: string, request: ExecRequest): Promise<ExecResult>;
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
  /** `secrets`: the secret part of the spec (InstanceSpec bytes), kept for adopting the container. */
  prepareInstance(
    instanceId: string,
    metadata: Record<string, string | Buffer>,
    secrets: Uint8Array,
  ): Promise<{ mountDir: string; metadataDir: string }>;
  keptSecrets(instanceId: string): Promise<Buffer | undefined>;
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
