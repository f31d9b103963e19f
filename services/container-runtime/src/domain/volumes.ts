// Block volumes of a node: what a new volume may be, how much one project may hold on the
// node (volumes are outside the scheduler's quotas), and when a volume may be given to an
// instance.
import { alreadyExists, failedPrecondition, type FieldViolation, invalidArgument, resourceExhausted } from '@lapis/platform/errors';
import { type Volume, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';

export const VOLUME_NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;

export interface VolumeLimits {
  minVolumeBytes: number;
  maxVolumeBytes: number;
}

/** Checks a new volume's name, filesystem and size, naming every bad field; answers the filesystem it gets. */
export function checkNewVolume(
  input: { name: string; sizeBytes: number; filesystem: string },
  limits: VolumeLimits,
): { filesystem: string } {
  const v: FieldViolation[] = [];
  if (!VOLUME_NAME.test(input.name))
    v.push({
      field: 'name',
      description: `"${input.name}" is not a valid name: lower case letters, digits, ".", "-", "_", 1 to 63 characters`,
    });
  const filesystem = input.filesystem || 'ext4';
  if (filesystem !== 'ext4') v.push({ field: 'filesystem', description: `"${filesystem}" is not supported; use ext4` });
  if (input.sizeBytes < limits.minVolumeBytes)
    v.push({ field: 'size_bytes', description: `${input.sizeBytes} is too small; at least ${limits.minVolumeBytes}` });
  if (input.sizeBytes > limits.maxVolumeBytes)
    v.push({
      field: 'size_bytes',
      description: `${input.sizeBytes} is larger than the largest volume this node makes (${limits.maxVolumeBytes})`,
    });
  if (v.length) throw invalidArgument(v);
  return { filesystem };
}

/**
 * A project's new volume beside the ones it has (`mine`, every node): the name is free in the
 * project, and what it holds on `node` stays within `limit` bytes (0: no limit).
 */
export function checkProjectVolumes(
  mine: readonly Volume[],
  project: string,
  node: string,
  name: string,
  sizeBytes: number,
  limit: number,
): void {
  if (mine.some((m) => m.name === name)) throw alreadyExists(`project ${project} already has a volume named "${name}"`, 'NAME_TAKEN');
  const held = mine.filter((m) => m.node === node).reduce((sum, m) => sum + m.sizeBytes, 0);
  if (limit && held + sizeBytes > limit) {
    throw resourceExhausted(
      `project ${project} has ${held} bytes of volumes on node ${node}; ${sizeBytes} more would pass its limit of ${limit}: delete volumes it no longer needs`,
      'VOLUME_QUOTA',
    );
  }
}

/**
 * A volume may be given to an instance on `instanceNode` by the agent of `agentNode`: it is
 * free (AVAILABLE; with `claims`, a Pending claim too, which a WaitForFirstConsumer class binds
 * only when a pod uses it) and on the instance's node, which is this agent's.
 */
export function checkAttachable(volume: Volume, instanceNode: string, agentNode: string, claims: boolean): void {
  if (volume.state === VolumeState.ATTACHED) {
    throw failedPrecondition(
      `volume ${volume.id} is already attached to instance ${volume.attachment?.instanceId}`,
      'VOLUME_ALREADY_ATTACHED',
      {
        instance: volume.attachment?.instanceId ?? '',
      },
    );
  }
  const pendingClaim = claims && volume.state === VolumeState.CREATING;
  if (volume.state !== VolumeState.AVAILABLE && !pendingClaim) {
    throw failedPrecondition(
      `volume ${volume.id} is ${VolumeState[volume.state]}, not AVAILABLE${volume.stateReason ? ` (${volume.stateReason})` : ''}`,
      'VOLUME_NOT_AVAILABLE',
    );
  }
  if (volume.node !== instanceNode) {
    throw failedPrecondition(
      `volume ${volume.id} is on node ${volume.node} and the instance on node ${instanceNode}: a volume attaches only on its own node`,
      'VOLUME_ON_ANOTHER_NODE',
    );
  }
  if (volume.node !== agentNode)
    throw failedPrecondition(`volume ${volume.id} is on node ${volume.node}; this is node ${agentNode}`, 'WRONG_NODE');
}

/** The name of a volume's mount point under the instance's /mnt: the mount path's last part. */
export const attachmentName = (mountPath: string) => mountPath.slice(mountPath.lastIndexOf('/') + 1);
