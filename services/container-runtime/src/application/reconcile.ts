// Reconcile at start: makes the store, the engine and the host agree after a restart or a
// crash. Workloads are adopted by their labels, instances whose workload vanished are marked,
// and workloads, mounts and loop devices that no instance owns are removed; attachments stand
// only on live instances, and their mounts are put back where they went away; network
// connections stand only for live instances, and bridges nobody uses go.
import { forEachConcurrently } from '@lapis/platform';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { type Instance, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { adoptFromLabels, applyObserved } from '../domain/observed';
import { isGone, TERMINAL } from '../domain/states';
import { attachmentName } from '../domain/volumes';
import type { EngineEvents } from './engine-events';
import type { InstanceRecords } from './instance-records';
import type { NetworkConnections } from './network-connections';
import type { AgentContext } from './settings';
import type { VolumeAttachments } from './volume-attachments';
import type { VolumeRecords } from './volume-records';
import type { Workloads } from './workloads';
import { recordReconcile } from './metrics';

/** Instances reconciled at once. */
const RECONCILE_PARALLEL = 16;

export interface ReconcileReport {
  adopted: string[];
  vanished: string[];
  removedContainers: string[];
  removedMounts: string[];
  freedLoops: string[];
  adoptedVolumes: string[];
}

export class Reconciler {
  constructor(
    private readonly ctx: AgentContext,
    private readonly records: InstanceRecords,
    private readonly engine: EngineEvents,
    private readonly workloads: Workloads,
    private readonly attachments: VolumeAttachments,
    private readonly volumes: VolumeRecords,
    private readonly connections: NetworkConnections,
  ) {}

  async run(): Promise<ReconcileReport> {
    const startedAt = performance.now();
    const started = new Date();
    const report: ReconcileReport = {
      adopted: [],
      vanished: [],
      removedContainers: [],
      removedMounts: [],
      freedLoops: [],
      adoptedVolumes: [],
    };
    const live = await this.instances(report);
    if (this.ctx.deps.backend.claims) await this.claims(live, report.adoptedVolumes);
    else await this.nodeStorage(live, report);
    await this.connections.settle(live, started);
    if (Object.values(report).some((l) => l.length)) this.ctx.deps.log.info(report, 'reconciled');
    recordReconcile(startedAt);
    return report;
  }

  /** Workloads against records; answers the instances that live on (they may keep volumes and mounts). */
  private async instances(report: ReconcileReport): Promise<Set<string>> {
    const { backend, host } = this.ctx.deps;
    const node = this.ctx.settings.node;
    const observed = await backend.list();
    const all = await this.records.all();
    const records = new Map(all.filter((i) => i.node === node).map((i) => [i.id, i]));
    // Instances whose record another node holds: moved there while this node was lost.
    const movedAway = new Map(all.filter((i) => i.node !== node).map((i) => [i.id, i.node]));
    const live = new Set<string>();
    // Each instance under its own lock, RECONCILE_PARALLEL at a time: the work is round trips.
    await forEachConcurrently(observed, RECONCILE_PARALLEL, async (container) => {
      await this.ctx.locks.with([`i:${container.instanceId}`], async () => {
        const record = records.get(container.instanceId);
        if (!record && movedAway.has(container.instanceId)) {
          // Fenced: the copy goes, the record (the other node's) stays as it is.
          await backend.remove(container.backendId);
          report.removedContainers.push(container.backendId);
          return;
        }
        if (!record) {
          const secrets = backend.claims ? undefined : await host.keptSecrets(container.instanceId);
          const adopted = adoptFromLabels(container, node, backend.kind, secrets);
          if (!adopted) {
            await backend.remove(container.backendId);
            report.removedContainers.push(container.backendId);
            return;
          }
          await this.records.write(adopted, undefined);
          await this.records.announce(adopted, InstanceState.UNSPECIFIED);
          records.set(adopted.id, adopted);
          live.add(adopted.id);
          report.adopted.push(adopted.id);
          return;
        }
        // Writes read the record again: placed on another node after the records were listed
        // (this node lost and fenced meanwhile), it is that node's and its create is under way;
        // a write here would break it (lost claims in the chaos run). The copy goes then.
        const ours = (current: Instance) => current.node === node && current.attempt === record.attempt;
        if (
          TERMINAL.has(record.state) ||
          (record.backendId && record.backendId !== container.backendId) ||
          record.state === InstanceState.CREATING
        ) {
          // Deleted (or being created when the agent died): nothing may stay of it.
          this.engine.expect(record.id);
          await backend.remove(container.backendId);
          report.removedContainers.push(container.backendId);
          if (record.state === InstanceState.CREATING) {
            await this.workloads.cleanup(record);
            await this.records.setStateIf(record.id, ours, (i) => {
              i.state = InstanceState.ERROR;
              i.stateReason = 'the agent restarted while creating it';
              i.backendId = '';
              i.volumeAttachments = [];
            });
          }
          this.engine.doneSoon(record.id);
          return;
        }
        const expected = record.state === InstanceState.STOPPED && !container.running ? record.state : undefined;
        const kept = expected
          ? await this.records.get(record.id).then((r) => (r && ours(r.value) ? r.value : undefined))
          : await this.records.setStateIf(record.id, ours, (i) => applyObserved(i, container, 'found on agent start', false));
        if (!kept) {
          await backend.remove(container.backendId);
          report.removedContainers.push(container.backendId);
          return;
        }
        live.add(record.id);
      });
    });
    const gone = [...records.values()].filter((record) => {
      if (live.has(record.id) || isGone(record)) return false;
      // A stopped pod-backed instance has no pod: StartInstance makes one.
      if (backend.recreates && record.state === InstanceState.STOPPED && record.backendId) {
        live.add(record.id);
        return false;
      }
      return true;
    });
    await forEachConcurrently(gone, RECONCILE_PARALLEL, (record) =>
      this.ctx.locks.with([`i:${record.id}`], () => this.vanished(record, report)),
    );
    return live;
  }

  private async vanished(record: Instance, report: ReconcileReport): Promise<void> {
    // Placed again on another node while this one was lost (and fenced): the record is that
    // node's now, and a write here would break its create under way (lost claims in the chaos run).
    const current = (await this.records.get(record.id))?.value;
    if (current && (current.node !== this.ctx.settings.node || current.attempt !== record.attempt)) return;
    await this.workloads.cleanup({ ...record, backendId: '' });
    await this.records.setState(record.id, (i) => {
      i.state = InstanceState.ERROR;
      i.stateReason = record.state === InstanceState.CREATING ? 'the agent restarted while creating it' : 'container vanished';
      i.backendId = '';
      i.addresses = [];
      i.volumeAttachments = [];
    });
    report.vanished.push(record.id);
  }

  /** Block files, mounts and loop devices on the node against the volume records and the live instances. */
  private async nodeStorage(live: Set<string>, report: ReconcileReport): Promise<void> {
    const { host, store } = this.ctx.deps;
    const node = this.ctx.settings.node;
    for (const volume of await this.volumes.all()) {
      if (volume.node !== node) continue;
      if (volume.state === VolumeState.CREATING) {
        await host.deleteVolumeFile(volume.id);
        await store.volumes.delete(volume.id);
        continue;
      }
      const a = volume.attachment;
      if (!a) continue;
      const name = attachmentName(a.mountPath);
      if (!live.has(a.instanceId)) {
        await host.detach(volume.id, a.instanceId, name);
        await store.volumes.mutate(volume.id, (v) => v && { ...v, state: VolumeState.AVAILABLE, attachment: undefined });
      } else if (!(await host.isMounted(host.attachPoint(a.instanceId, name)))) {
        await host.freeLoops(volume.id);
        await host.attach(volume.id, a.instanceId, name, a.readOnly);
      }
    }
    // Host leftovers: instance directories and mounts no live instance owns, loop devices of unattached volumes.
    for (const id of await host.instanceIdsOnDisk()) {
      if (live.has(id)) continue;
      const before = await host.mountPoints();
      await host.releaseInstance(id);
      report.removedMounts.push(...before.filter((m) => m.startsWith(`${host.instancesDir}/${id}`)));
    }
    const attached = new Map((await this.volumes.all()).filter((v) => v.attachment && v.node === node).map((v) => [v.id, v]));
    for (const mount of await host.mountPoints()) {
      const [instanceId, , name] = mount.slice(host.instancesDir.length + 1).split('/');
      if (!instanceId || !mount.startsWith(`${host.instancesDir}/`)) continue;
      const owned =
        live.has(instanceId) &&
        (!name ||
          [...attached.values()].some((v) => v.attachment?.instanceId === instanceId && v.attachment.mountPath.endsWith(`/${name}`)));
      if (!owned) {
        await host.detach('', instanceId, name ?? '').catch(() => undefined);
        report.removedMounts.push(mount);
      }
    }
    for (const loop of await host.loopDevices()) {
      const volumeId = loop.backingFile.slice(host.volumesDir.length + 1, -'.img'.length);
      if (!attached.has(volumeId)) {
        await host.freeLoops(volumeId);
        report.freedLoops.push(loop.device);
      }
    }
  }

  /**
   * Claim-backed volumes after a restart: a record whose claim was never made is dropped, one
   * whose claim went away is ERROR, an attachment to an instance that is gone is released, the
   * state follows the claim's phase; a claim of this node that no record owns (a lost store) is
   * adopted from its annotations, never deleted: it holds data. The node's storage is not used.
   */
  private async claims(live: Set<string>, adopted: string[]): Promise<void> {
    const claims = this.ctx.deps.backend.claims!;
    const { store } = this.ctx.deps;
    const found = await claims.list();
    const present = new Set(found.map((v) => v.id));
    const known = new Set<string>();
    for (const volume of await this.volumes.all()) {
      if (volume.node !== this.ctx.settings.node) continue;
      known.add(volume.id);
      await this.ctx.locks.with([`v:${volume.id}`], async () => {
        if (!present.has(volume.id) && volume.state === VolumeState.CREATING && !volume.attachment) {
          await store.volumes.delete(volume.id);
          return;
        }
        const a = volume.attachment;
        if (a && !live.has(a.instanceId)) await this.attachments.unmount(volume.id, a.instanceId);
        const current = (await store.volumes.get(volume.id))?.value;
        if (current) await this.volumes.refresh(current);
      });
    }
    for (const volume of found) {
      if (known.has(volume.id) || !volume.project) continue;
      await store.volumes.create(volume.id, volume).then(
        async () => {
          adopted.push(volume.id);
          await this.volumes.refresh(volume);
        },
        (error: Error) => this.ctx.deps.log.warn({ volume: volume.id, err: error }, 'adopting a claim no volume record owns failed'),
      );
    }
  }
}
