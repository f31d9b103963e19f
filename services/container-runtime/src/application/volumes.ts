// CreateVolume, GetVolume, ListVolumes, DeleteVolume: a volume is a sparse block file with a
// filesystem on the node (or a claim, where the engine keeps volumes), bounded per volume and
// per project. Attaching and detaching are volume-attachments.ts.
import { randomUUID } from 'node:crypto';
import { Code, failedPrecondition, LapisError, notFound, resourceExhausted } from '@lapis/platform';
import { type Volume, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import type { Scope } from '../domain/door';
import { claimState } from '../domain/observed';
import { checkNewVolume, checkProjectVolumes } from '../domain/volumes';
import type { RequestLog } from './idempotency';
import type { AgentContext } from './settings';
import type { VolumeRecords } from './volume-records';

export interface CreateVolumeInput {
  name: string;
  sizeBytes: number;
  filesystem: string;
  node: string;
  labels: Record<string, string>;
  requestId: string;
}

/** How long CreateVolume waits for a new claim to be bound before it answers CREATING. */
const CLAIM_BIND_WAIT_MS = 3_000;

export class Volumes {
  /** Volumes deleted by this agent, so a retried DeleteVolume answers what the first one did. */
  private readonly deleted = new Map<string, Volume>();

  constructor(
    private readonly ctx: AgentContext,
    private readonly records: VolumeRecords,
    private readonly requests: RequestLog,
  ) {}

  async create(input: CreateVolumeInput, scope: Scope): Promise<Volume> {
    const { store, backend, host } = this.ctx.deps;
    const { node } = this.ctx.settings;
    if (input.requestId) {
      const earlier = await this.requests.find('CreateVolume', scope, input.requestId);
      const volume = earlier ? await store.volumes.get(earlier) : undefined;
      if (volume) return volume.value;
    }
    const { filesystem } = checkNewVolume(input, this.ctx.settings);
    if (input.node && input.node !== node)
      throw failedPrecondition(`this agent serves node ${node}, not ${input.node}: ask that node's agent`, 'WRONG_NODE');
    // Claims: the cluster's storage (and its quotas) decides, not this node's disk.
    const free = backend.claims ? Infinity : await host.freeBytes();
    if (input.sizeBytes > free)
      throw resourceExhausted(`size_bytes ${input.sizeBytes} is more than the ${free} bytes free on node ${node}`, 'DISK_FULL');
    // One project's creates one at a time, so two cannot both pass the name and size checks.
    const { volume, revision } = await this.ctx.locks.with([`volumes:${scope.project}`], async () => {
      const mine = (await this.records.all()).filter((v) => v.project === scope.project);
      // Volumes are outside the scheduler's quotas: this bounds what a project holds on the node.
      checkProjectVolumes(mine, scope.project, node, input.name, input.sizeBytes, this.ctx.settings.maxProjectVolumeBytes ?? 0);
      const volume: Volume = {
        id: `vol-${randomUUID().replace(/-/g, '').slice(0, 16)}`,
        name: input.name,
        project: scope.project,
        sizeBytes: input.sizeBytes,
        filesystem,
        node,
        state: VolumeState.CREATING,
        stateReason: '',
        attachment: undefined,
        labels: input.labels,
        createTime: new Date(),
      };
      return { volume, revision: await store.volumes.create(volume.id, volume) };
    });
    this.records.creating.add(volume.id);
    try {
      return await this.make(volume, revision, input.requestId, scope);
    } finally {
      this.records.creating.delete(volume.id);
    }
  }

  /** Makes the recorded volume's file (or claim) and records it AVAILABLE (or what its claim says). */
  private async make(volume: Volume, revision: number, requestId: string, scope: Scope): Promise<Volume> {
    const { store, backend, host } = this.ctx.deps;
    const { claims } = backend;
    try {
      if (claims) await claims.create(volume);
      else await host.createVolumeFile(volume.id, volume.sizeBytes, volume.filesystem);
    } catch (error) {
      await store.volumes.delete(volume.id);
      if (error instanceof LapisError && error.code !== Code.FAILED_PRECONDITION) throw error;
      throw failedPrecondition(`cannot make volume ${volume.name}: ${(error as Error).message}`, 'VOLUME_CREATE_FAILED');
    }
    volume.state = VolumeState.AVAILABLE;
    if (claims) {
      // A provisioner usually binds within moments; a Pending claim is CREATING (a WaitForFirstConsumer
      // class binds only when an instance uses it, which CreateInstance allows).
      let claim = await claims.status(volume.id);
      for (let waited = 0; claim.phase === 'Pending' && waited < CLAIM_BIND_WAIT_MS; waited += 250) {
        await new Promise((r) => setTimeout(r, 250));
        claim = await claims.status(volume.id);
      }
      Object.assign(volume, claimState(claim));
    }
    await store.volumes.update(volume.id, volume, revision);
    if (requestId) await this.requests.remember('CreateVolume', scope, requestId, volume.id);
    await this.records.announce(volume);
    return volume;
  }

  get(id: string, scope: Scope): Promise<Volume> {
    return this.records.inScope(id, scope);
  }

  async list(scope: Scope, filter: { project: string; state: VolumeState; instanceId: string }): Promise<Volume[]> {
    const project = scope.admin ? filter.project : scope.project;
    const mine = (await this.records.all()).filter((v) => !project || v.project === project);
    const fresh = await Promise.all(mine.map((v) => this.records.refresh(v).catch(() => v)));
    return fresh
      .filter((v) => !filter.state || v.state === filter.state)
      .filter((v) => !filter.instanceId || v.attachment?.instanceId === filter.instanceId)
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  async delete(id: string, requestId: string, scope: Scope): Promise<Volume> {
    if (requestId && (await this.requests.find('DeleteVolume', scope, requestId)) === id) {
      return { ...(await this.recordedOrDeleted(id)), state: VolumeState.DELETING };
    }
    const { store, backend, host } = this.ctx.deps;
    const { node } = this.ctx.settings;
    return this.ctx.locks.with([`v:${id}`], async () => {
      const volume = await this.records.inScope(id, scope);
      if (volume.node !== node) throw failedPrecondition(`volume ${id} is on node ${volume.node}; this is node ${node}`, 'WRONG_NODE');
      if (volume.state === VolumeState.ATTACHED) {
        throw failedPrecondition(
          `volume ${id} is attached to instance ${volume.attachment?.instanceId}; detach it first`,
          'VOLUME_ATTACHED',
        );
      }
      if (backend.claims) {
        await backend.claims.delete(id);
      } else {
        await host.freeLoops(id);
        await host.deleteVolumeFile(id);
      }
      await store.volumes.delete(id);
      if (requestId) await this.requests.remember('DeleteVolume', scope, requestId, id);
      const deleted = { ...volume, state: VolumeState.DELETING };
      this.deleted.set(id, deleted);
      await this.records.announce(deleted);
      return deleted;
    });
  }

  private async recordedOrDeleted(id: string): Promise<Volume> {
    const v = this.deleted.get(id) ?? (await this.ctx.deps.store.volumes.get(id))?.value;
    if (!v) throw notFound(`volume ${id} not found`, 'VOLUME_NOT_FOUND');
    return v;
  }
}
