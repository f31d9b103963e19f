// What the engine reports of an instance's workload (a container, a pod; a volume's claim) and
// what that means for the records: the state an observation gives an instance, an instance
// rebuilt from a workload's labels when the store lost it, a claim's phase as a volume state.
import { type Address, type Backend, InstanceSpec, InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { type Instance, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { LABEL, withSecrets } from './container';

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

/** What the engine says of a volume it keeps itself (a PersistentVolumeClaim's phase). */
export interface ClaimStatus {
  /** Pending (no volume bound yet), Bound, Lost (its volume went away), Missing (no claim). */
  phase: 'Pending' | 'Bound' | 'Lost' | 'Missing';
  /** What the phase means here (why it is not Bound, where the engine says). */
  message: string;
}

/**
 * Records on `i` what the engine observed: RUNNING with its addresses (SUSPENDED if frozen), ERROR for an OOM kill,
 * a non-zero exit or an engine error, otherwise STOPPED; no workload at all is ERROR
 * "container vanished". `reason` says why a RUNNING or STOPPED state was recorded.
 */
export function applyObserved(i: Instance, observed: Observed | undefined, reason: string, oom: boolean, now = new Date()): void {
  if (!observed) {
    i.state = InstanceState.ERROR;
    i.stateReason = 'container vanished';
    i.backendId = '';
    i.addresses = [];
    return;
  }
  i.exitCode = observed.exitCode;
  if (observed.running && observed.status === 'paused') {
    // Frozen by SuspendInstance (or by hand on the node): it runs on once resumed.
    i.state = InstanceState.SUSPENDED;
    i.stateReason = 'suspended';
    i.addresses = observed.addresses;
  } else if (observed.running) {
    i.state = InstanceState.RUNNING;
    i.stateReason = reason;
    i.addresses = observed.addresses;
    i.startTime = observed.startedAt ?? now;
  } else if (observed.oomKilled || oom) {
    i.state = InstanceState.ERROR;
    i.stateReason = 'OOMKilled';
  } else if (observed.exitCode !== 0 || observed.error) {
    i.state = InstanceState.ERROR;
    i.stateReason = observed.error || `exited with code ${observed.exitCode}`;
  } else {
    i.state = InstanceState.STOPPED;
    i.stateReason = reason;
  }
}

/** What a workload's exit means: an OOM kill or a non-zero code is ERROR, a clean exit a shutdown. */
export function applyExit(i: Instance, exitCode: number, oom: boolean): void {
  i.exitCode = exitCode;
  if (oom) {
    i.state = InstanceState.ERROR;
    i.stateReason = 'OOMKilled';
  } else if (exitCode !== 0) {
    i.state = InstanceState.ERROR;
    i.stateReason = `exited with code ${exitCode}`;
  } else {
    i.state = InstanceState.STOPPED;
    i.stateReason = 'exited with code 0';
  }
}

/**
 * Rebuilds an instance record from a workload's labels (the engine is the source of truth)
 * and the secrets the node kept for it (the labels hold none); undefined where the labels do
 * not make an instance (not Lapis's, or damaged).
 */
export function adoptFromLabels(
  container: Observed,
  node: string,
  kind: Backend,
  keptSecrets: Uint8Array | undefined,
  now = new Date(),
): Instance | undefined {
  const l = container.labels;
  if (!l[LABEL.instanceId] || !l[LABEL.project] || !l[LABEL.spec]) return undefined;
  let spec: InstanceSpec;
  try {
    spec = withSecrets(InstanceSpec.decode(Buffer.from(l[LABEL.spec]!, 'base64')), keptSecrets && InstanceSpec.decode(keptSecrets));
  } catch {
    return undefined;
  }
  const instance: Instance = {
    id: l[LABEL.instanceId]!,
    project: l[LABEL.project]!,
    user: l[LABEL.user] ?? '',
    spec,
    // Not in the labels: a tenant's resize is then bounded by the size it has now.
    placedResources: undefined,
    imageDigest: l[LABEL.imageDigest] ?? '',
    node,
    backend: kind,
    state: InstanceState.RUNNING,
    stateReason: '',
    addresses: [],
    volumeAttachments: [],
    devices: [],
    preemptible: l[LABEL.preemptible] === 'true',
    requestId: l[LABEL.requestId] ?? '',
    createTime: now,
    startTime: undefined,
    updateTime: now,
    backendId: container.backendId,
    exitCode: 0,
    generation: 1,
    attempt: Number(l[LABEL.attempt] ?? 0),
  };
  applyObserved(instance, container, 'adopted from its container labels', false, now);
  return instance;
}

/** A claim's phase as a volume's state: Bound is AVAILABLE, Pending CREATING, Lost or gone ERROR. */
export function claimState(claim: ClaimStatus): { state: VolumeState; stateReason: string } {
  switch (claim.phase) {
    case 'Bound':
      return { state: VolumeState.AVAILABLE, stateReason: '' };
    case 'Pending':
      return { state: VolumeState.CREATING, stateReason: claim.message };
    default:
      return { state: VolumeState.ERROR, stateReason: claim.message };
  }
}
