// Volumes given to instances: AttachVolume and DetachVolume while an instance runs (block
// files mounted into its /mnt), the volumes a new instance is made with, and their release
// when it goes. Engines that keep volumes as claims mount them when the workload is made, so
// there a change waits for the instance's next pod (a stopped instance has none).
import { failedPrecondition, invalidArgument, notFound } from '@lapis/platform';
import { InstanceState, type InstanceSpec } from '@lapis/proto/lapis/common/v1/common';
import { type Instance, type Volume, type VolumeAttachment, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import type { Scope } from '../domain/door';
import { claimState } from '../domain/observed';
import { requireState, TERMINAL } from '../domain/states';
import { checkMountPath, defaultMountPath } from '../domain/validate';
import { attachmentName, checkAttachable } from '../domain/volumes';
import type { RequestLog } from './idempotency';
import type { InstanceRecords } from './instance-records';
import type { AgentContext } from './settings';
import type { VolumeRecords } from './volume-records';
import { countVolumeAttachment, counted } from './metrics';

export interface InitialMount {
  volume: Volume;
  mountPath: string;
  readOnly: boolean;
}

export class VolumeAttachments {
  constructor(
    private readonly ctx: AgentContext,
    private readonly instances: InstanceRecords,
    private readonly volumes: VolumeRecords,
    private readonly requests: RequestLog,
  ) {}

  async attach(
    input: { volumeId: string; instanceId: string; mountPath: string; readOnly: boolean; requestId: string },
    scope: Scope,
  ): Promise<Volume> {
    if (input.requestId && (await this.requests.find('AttachVolume', scope, input.requestId)) === input.volumeId)
      return this.volumes.inScope(input.volumeId, scope);
    const mountPath = input.mountPath || defaultMountPath(input.volumeId);
    const problems = checkMountPath(mountPath, 'mount_path');
    if (problems.length) throw invalidArgument(problems);
    const refusal = this.ctx.deps.backend.volumeAttachRefusal;
    if (refusal) {
      // Another project's instance is not found, whatever state it is in.
      await this.volumes.inScope(input.volumeId, scope);
      await this.instances.inScope(input.instanceId, scope);
      await this.refuseWhileRunning('attach', input.volumeId, input.instanceId, refusal);
    }
    return this.ctx.locks.with([`v:${input.volumeId}`, `i:${input.instanceId}`], async () => {
      const volume = await this.volumes.inScope(input.volumeId, scope);
      const instance = await this.instances.inScope(input.instanceId, scope);
      if (instance.project !== volume.project)
        throw failedPrecondition(
          `volume ${volume.id} belongs to project ${volume.project}, the instance to ${instance.project}`,
          'OTHER_PROJECT',
        );
      checkAttachable(volume, instance.node, this.ctx.settings.node, !!this.ctx.deps.backend.claims);
      requireState(
        'attach a volume to',
        instance.id,
        instance.state,
        refusal ? [InstanceState.STOPPED] : [InstanceState.RUNNING, InstanceState.STOPPED],
      );
      if (instance.volumeAttachments.some((a) => a.mountPath === mountPath)) {
        throw failedPrecondition(`instance ${instance.id} already has a volume at ${mountPath}`, 'MOUNT_PATH_TAKEN');
      }
      const attachment = await this.mount(volume, instance, mountPath, input.readOnly);
      await this.instances.setState(instance.id, (i) => {
        i.volumeAttachments = [...i.volumeAttachments, attachment];
      });
      if (input.requestId) await this.requests.remember('AttachVolume', scope, input.requestId, volume.id);
      return (await this.ctx.deps.store.volumes.get(volume.id))!.value;
    });
  }

  async detach(volumeId: string, requestId: string, scope: Scope): Promise<Volume> {
    if (requestId && (await this.requests.find('DetachVolume', scope, requestId)) === volumeId)
      return this.volumes.inScope(volumeId, scope);
    const first = await this.volumes.inScope(volumeId, scope);
    const instanceId = first.attachment?.instanceId ?? '';
    const refusal = this.ctx.deps.backend.volumeAttachRefusal;
    if (refusal && instanceId) await this.refuseWhileRunning('detach', volumeId, instanceId, refusal);
    return this.ctx.locks.with([`v:${volumeId}`, ...(instanceId ? [`i:${instanceId}`] : [])], async () => {
      const volume = await this.volumes.inScope(volumeId, scope);
      if (volume.state !== VolumeState.ATTACHED || !volume.attachment) {
        throw failedPrecondition(`volume ${volumeId} is not attached (it is ${VolumeState[volume.state]})`, 'VOLUME_NOT_ATTACHED');
      }
      if (refusal) {
        const holder = (await this.instances.get(volume.attachment.instanceId))?.value;
        if (holder && holder.state !== InstanceState.STOPPED && !TERMINAL.has(holder.state))
          await this.refuseWhileRunning('detach', volumeId, holder.id, refusal);
      }
      const node = this.ctx.settings.node;
      if (volume.node !== node)
        throw failedPrecondition(`volume ${volumeId} is on node ${volume.node}; this is node ${node}`, 'WRONG_NODE');
      const detached = await this.unmount(volumeId, volume.attachment.instanceId);
      await this.instances
        .setState(volume.attachment.instanceId, (i) => {
          i.volumeAttachments = i.volumeAttachments.filter((a) => a.volumeId !== volumeId);
        })
        .catch(() => undefined);
      if (requestId) await this.requests.remember('DetachVolume', scope, requestId, volumeId);
      return detached;
    });
  }

  /** The volumes a new instance's spec names, checked before anything is made: the project's, free, on this node, each once. */
  async initialMounts(spec: InstanceSpec, project: string): Promise<InitialMount[]> {
    const result: InitialMount[] = [];
    const { backend } = this.ctx.deps;
    const refusal = backend.volumeAttachRefusal;
    if (refusal && !backend.claims && spec.volumes.length) {
      throw failedPrecondition(`spec.volumes: this node's backend does not take Lapis volumes; ${refusal}`, 'VOLUMES_NOT_SUPPORTED');
    }
    for (const [i, m] of spec.volumes.entries()) {
      let volume = (await this.ctx.deps.store.volumes.get(m.volumeId))?.value;
      if (!volume || volume.project !== project || volume.state === VolumeState.DELETING) {
        throw notFound(`spec.volumes[${i}]: volume ${m.volumeId} not found in project ${project}`, 'VOLUME_NOT_FOUND');
      }
      volume = await this.volumes.refresh(volume);
      checkAttachable(volume, this.ctx.settings.node, this.ctx.settings.node, !!backend.claims);
      const mountPath = m.mountPath || defaultMountPath(volume.id);
      if (result.some((r) => r.volume.id === volume!.id))
        throw invalidArgument([{ field: `spec.volumes[${i}].volume_id`, description: `volume ${volume.id} is named twice` }]);
      if (result.some((r) => r.mountPath === mountPath))
        throw invalidArgument([{ field: `spec.volumes[${i}].mount_path`, description: `two volumes at ${mountPath}` }]);
      result.push({ volume, mountPath, readOnly: m.readOnly });
    }
    return result;
  }

  /** Mounts into the running instance and records the volume ATTACHED; leaves nothing on failure. */
  /** Attaches the volume on the node (an AttachVolume, or a volume of an instance being created). */
  mount(volume: Volume, instance: Instance, mountPath: string, readOnly: boolean): Promise<VolumeAttachment> {
    return counted(
      () => this.mountVolume(volume, instance, mountPath, readOnly),
      (outcome) => countVolumeAttachment('attach', outcome),
    );
  }

  /** Detaches the volume on the node (a DetachVolume, or an instance being deleted). */
  unmount(volumeId: string, instanceId: string): Promise<Volume> {
    return counted(
      () => this.unmountVolume(volumeId, instanceId),
      (outcome) => countVolumeAttachment('detach', outcome),
    );
  }

  private async mountVolume(volume: Volume, instance: Instance, mountPath: string, readOnly: boolean): Promise<VolumeAttachment> {
    const attachment: VolumeAttachment = { volumeId: volume.id, instanceId: instance.id, mountPath, readOnly, attachTime: new Date() };
    const claims = !!this.ctx.deps.backend.claims;
    const claimed = await this.ctx.deps.store.volumes.mutate(volume.id, (v) => {
      if (!v || (v.state !== VolumeState.AVAILABLE && !(claims && v.state === VolumeState.CREATING))) {
        throw failedPrecondition(`volume ${volume.id} is no longer available`, 'VOLUME_NOT_AVAILABLE');
      }
      return { ...v, state: VolumeState.ATTACHED, attachment };
    });
    try {
      // A claim is mounted by the pod the instance is created with (ContainerPlan.volumes).
      if (!claims) await this.ctx.deps.host.attach(volume.id, instance.id, attachmentName(mountPath), readOnly);
    } catch (error) {
      await this.ctx.deps.store.volumes.mutate(volume.id, (v) => v && { ...v, state: VolumeState.AVAILABLE, attachment: undefined });
      throw failedPrecondition(`cannot attach volume ${volume.id}: ${(error as Error).message}`, 'ATTACH_FAILED');
    }
    await this.volumes.announce(claimed!.value);
    return attachment;
  }

  /** Unmounts, frees the loop device and records the volume AVAILABLE. */
  private async unmountVolume(volumeId: string, instanceId: string): Promise<Volume> {
    const volume = (await this.ctx.deps.store.volumes.get(volumeId))?.value;
    const mountPath = volume?.attachment?.instanceId === instanceId ? volume.attachment.mountPath : '';
    const name = mountPath ? attachmentName(mountPath) : '';
    const { backend, host } = this.ctx.deps;
    // A claim is released when the pod that mounted it is gone: nothing to unmount on the node.
    const claim = backend.claims ? await backend.claims.status(volumeId).catch(() => undefined) : undefined;
    if (!backend.claims) {
      if (name) await host.detach(volumeId, instanceId, name);
      else await host.freeLoops(volumeId);
    }
    const result = await this.ctx.deps.store.volumes.mutate(volumeId, (v) => {
      if (!v || v.attachment?.instanceId !== instanceId) return undefined;
      const released = { ...v, state: VolumeState.AVAILABLE, attachment: undefined };
      return claim ? { ...released, ...claimState(claim) } : released;
    });
    if (result && volume?.state === VolumeState.ATTACHED) await this.volumes.announce(result.value);
    return result!.value;
  }

  /** Every volume of the instance unmounted and released, also those only their own record ties to it. */
  async releaseAll(instance: Instance): Promise<void> {
    for (const attachment of instance.volumeAttachments) await this.unmount(attachment.volumeId, instance.id);
    // Volumes whose record says attached here but the instance record does not list (a crash between writes).
    for (const v of await this.volumes.attachedTo(instance.id)) await this.unmount(v.id, instance.id);
  }

  /**
   * Where volumes cannot change on a running workload: refused, except (engines with claims) for
   * a stopped instance, which has no pod: the change is recorded and its next pod has it.
   */
  private async refuseWhileRunning(action: 'attach' | 'detach', volumeId: string, instanceId: string, refusal: string): Promise<void> {
    const { claims } = this.ctx.deps.backend;
    const instance = claims ? (await this.instances.get(instanceId))?.value : undefined;
    if (claims && (!instance || instance.state === InstanceState.STOPPED)) return;
    const hint = claims ? `; stop the instance, ${action} the volume and start it again: its new pod has the change` : '';
    throw failedPrecondition(
      `cannot ${action} volume ${volumeId} ${action === 'attach' ? 'to' : 'from'} instance ${instanceId} while it runs: ${refusal}${hint}`,
      action === 'attach' ? 'ATTACH_NOT_SUPPORTED' : 'DETACH_NOT_SUPPORTED',
    );
  }
}
