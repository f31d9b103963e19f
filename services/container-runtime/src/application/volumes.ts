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
/** How long a repeated CreateVolume waits for the first one, still making the same volume. */
const CREATE_WAIT_MS = 60_000;

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
    const repeated = await this.repeatOf(input.requestId, scope);
    if (repeated) return repeated;
    const { filesystem } = checkNewVolume(input, this.ctx.settings);
    if (input.node && input.node !== node)
      throw failedPrecondition(`this agent serves node ${node}, not ${input.node}: ask that node's agent`, 'WRONG_NODE');
    // Claims: the cluster's storage (and its quotas) decides, not this node's disk.
    const free = backend.claims ? Infinity : await host.freeBytes();
    if (input.sizeBytes > free)
      throw resourceExhausted(`size_bytes ${input.sizeBytes} is more than the ${free} bytes free on node ${node}`, 'DISK_FULL');
    // One project's creates one at a time, so two cannot both pass the name and size checks.
    const made = await this.ctx.locks.with([`volumes:${scope.project}`], async () => {
      // A repeat that came in beside the first finds it here, not its name taken.
      const earlier = input.requestId ? await this.requests.find('CreateVolume', scope, input.requestId) : undefined;
      if (earlier && (this.records.creating.has(earlier) || (await store.volumes.get(earlier)))) return undefined;
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
      const revision = await store.volumes.create(volume.id, volume);
      this.records.creating.add(volume.id);
      // Remembered from the record on, not once made: a repeat meanwhile is answered with this volume.
      if (input.requestId) await this.requests.remember('CreateVolume', scope, input.requestId, volume.id);
      return { volume, revision };
    });
    if (!made) {
      const earlier = await this.repeatOf(input.requestId, scope);
      if (earlier) return earlier;
      throw failedPrecondition(
        'the CreateVolume with this request_id failed while this repeat waited for it: try again',
        'VOLUME_CREATE_FAILED',
      );
    }
    try {
      return await this.make(made.volume, made.revision);
    } finally {
      this.records.creating.delete(made.volume.id);
    }
  }

  /**
   * The volume an earlier CreateVolume with this request id made, once made: the same request
   * again (its caller went away, a restarted orchestrator resuming its step) is answered with it.
   */
  private async repeatOf(requestId: string, scope: Scope): Promise<Volume | undefined> {
    if (!requestId) return undefined;
    const earlier = await this.requests.find('CreateVolume', scope, requestId);
    if (!earlier) return undefined;
    for (let waited = 0; this.records.creating.has(earlier) && waited < CREATE_WAIT_MS; waited += 200)
      await new Promise((r) => setTimeout(r, 200));
    return (await this.ctx.deps.store.volumes.get(earlier))?.value;
  }

  /** Makes the recorded volume's file (or claim) and records it AVAILABLE (or what its claim says). */
  private async make(volume: Volume, revision: number): Promise<Volume> {
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
