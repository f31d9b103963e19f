// An instance's workload on the node (a container, a pod) and what it needs there: its mount
// point and metadata directory, the plan it is made from, its making anew where the engine
// cannot change a workload in place (Pods), and the removal of everything it had.
import { failedPrecondition, LapisError } from '@lapis/platform';
import { DeviceKind, InstanceSpec, InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import { planVolumes, secretsOf, type ContainerPlan } from '../domain/container';
import { metadataFiles } from '../domain/instance';
import { applyObserved } from '../domain/observed';
import { instanceSecurity } from '../domain/security';
import { TERMINAL } from '../domain/states';
import type { EngineEvents } from './engine-events';
import type { InstanceRecords } from './instance-records';
import type { NetworkConnections } from './network-connections';
import type { AgentContext } from './settings';
import type { VolumeAttachments } from './volume-attachments';

export class Workloads {
  constructor(
    private readonly ctx: AgentContext,
    private readonly records: InstanceRecords,
    private readonly engine: EngineEvents,
    private readonly attachments: VolumeAttachments,
    private readonly connections: NetworkConnections,
  ) {}

  /**
   * The instance's mount point and metadata directory on the node. An engine that keeps volumes
   * itself (Pods, PVCs; the agent a non-root Deployment) needs neither: nothing is made or mounted.
   */
  async instanceDirs(instance: Instance): Promise<{ mountDir: string; metadataDir: string }> {
    if (this.ctx.deps.backend.claims) return { mountDir: '', metadataDir: '' };
    return this.ctx.deps.host.prepareInstance(
      instance.id,
      metadataFiles(instance),
      InstanceSpec.encode(secretsOf(instance.spec!)).finish(),
    );
  }

  /** Removes everything an instance has on the node: volumes detached, container, mounts, networks. */
  async cleanup(instance: Instance): Promise<void> {
    const { backend, host } = this.ctx.deps;
    // Block files are unmounted before the container goes; claims are released after the pod is gone.
    const claims = !!backend.claims;
    if (!claims) await this.attachments.releaseAll(instance);
    this.engine.expect(instance.id);
    try {
      const containers = (await backend.list()).filter((o) => o.instanceId === instance.id);
      for (const c of containers) await backend.remove(c.backendId);
      if (instance.backendId) await backend.remove(instance.backendId);
    } finally {
      this.engine.doneSoon(instance.id);
    }
    if (claims) await this.attachments.releaseAll(instance);
    else await host.releaseInstance(instance.id);
    await this.connections.releaseAll(instance);
    const node = this.ctx.settings.node;
    const others = (await this.records.all()).some(
      (i) => i.id !== instance.id && i.project === instance.project && i.node === node && i.backendId && !TERMINAL.has(i.state),
    );
    if (!others) await backend.releaseNetwork(instance.project);
  }

  /**
   * For engines that cannot change a workload in place (Pods): deletes the instance's workload
   * (grace `timeoutS`) and makes it anew from the record with `spec`: same id, volumes and
   * devices. Each step is a state change with its event (STOPPED, then RUNNING with the
   * generation bumped). When the new one cannot run, a resize makes the old spec again (and
   * answers FAILED_PRECONDITION); otherwise the instance is ERROR (which ends its claim), and
   * an admin's StartInstance tries again.
   */
  async remake(instance: Instance, action: string, timeoutS: number, spec: InstanceSpec, reason: string): Promise<Instance> {
    const { backend } = this.ctx.deps;
    const id = instance.id;
    this.engine.expect(id);
    try {
      if (instance.backendId && (await backend.inspect(instance.backendId))) {
        await backend.stop(instance.backendId, timeoutS);
        if (instance.state !== InstanceState.STOPPED) {
          await this.records.setState(id, (i) => {
            i.state = InstanceState.STOPPED;
            i.stateReason = `${action}: the pod is deleted and made anew`;
            i.addresses = [];
          });
        }
      }
      try {
        return await this.make(id, spec, reason);
      } catch (error) {
        const why = (error as Error).message;
        if (action === 'resize') {
          const old = await this.make(id, instance.spec!, `${action} failed, runs with its previous resources: ${why}`).catch(
            () => undefined,
          );
          if (old)
            throw failedPrecondition(`cannot resize instance ${id}: ${why}; it runs again with its previous resources`, 'RESIZE_FAILED');
        }
        await this.records.setState(id, (i) => {
          i.state = InstanceState.ERROR;
          i.stateReason = `${action} failed: ${why}`;
          i.addresses = [];
        });
        if (error instanceof LapisError) throw error;
        throw failedPrecondition(`cannot ${action} instance ${id}: ${why}`, 'START_FAILED');
      }
    } finally {
      this.engine.doneSoon(id);
    }
  }

  /** Creates the instance's workload from its record with `spec`, waits until it runs, records RUNNING. */
  private async make(id: string, spec: InstanceSpec, reason: string): Promise<Instance> {
    const { backend } = this.ctx.deps;
    const current = (await this.records.get(id))!.value;
    const plan = await this.planFor({ ...current, spec });
    const backendId = await backend.create(plan);
    try {
      await backend.start(backendId);
      const observed = await backend.inspect(backendId);
      if (!observed?.running)
        throw failedPrecondition(
          `the new pod of ${id} stopped at once: ${observed?.error || `exit code ${observed?.exitCode}`}`,
          'START_FAILED',
        );
      return await this.records.setState(
        id,
        (i) => {
          i.spec = spec;
          i.backendId = backendId;
          applyObserved(i, observed, reason, false);
        },
        { announceAlways: true },
      );
    } catch (error) {
      this.engine.expect(id);
      await backend
        .remove(backendId)
        .catch((e: Error) => this.ctx.deps.log.warn({ instance: id, err: e }, 'removing a workload that did not start failed'));
      throw error;
    }
  }

  /** What the engine needs to make the instance's workload again: image by the recorded digest, its volumes. */
  private async planFor(instance: Instance): Promise<ContainerPlan> {
    const { backend, images, flavors } = this.ctx.deps;
    const spec = instance.spec!;
    const image = await images.resolve(spec.image);
    const digest = instance.imageDigest.startsWith('sha256:') ? instance.imageDigest : image.digest;
    return {
      instance,
      resources: spec.resources!,
      image: await backend.localImage(image.reference, digest),
      grant: { gpuRequests: [], cdiNames: [], paths: [], capAdd: [], devices: instance.devices },
      ...(await this.instanceDirs(instance)),
      network: await backend.ensureNetwork(instance.project),
      volumes: planVolumes(instance),
      // The flavor as the site defines it now, and IPC_LOCK where InfiniBand was granted.
      security: instanceSecurity(
        flavors.find((f) => f.name === spec.flavor),
        instance.devices.some((d) => d.kind === DeviceKind.INFINIBAND) ? ['IPC_LOCK'] : [],
      ),
      hostIp: this.ctx.settings.hostPortAddress,
    };
  }
}
