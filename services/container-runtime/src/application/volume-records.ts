// Volume records: read in the caller's scope, kept in step with the claims an engine keeps
// (a PersistentVolumeClaim's phase is the volume's state), and announced as
// `volumeStateChanged`.
import { notFound } from '@lapis/platform';
import { type Volume, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { type Scope, visibleTo } from '../domain/door';
import { claimState } from '../domain/observed';
import type { AgentContext } from './settings';

export class VolumeRecords {
  /** Volumes being made by CreateVolume: their claim may not exist yet, so no refresh reads it. */
  readonly creating = new Set<string>();

  constructor(private readonly ctx: AgentContext) {}

  /** A volume the caller may see, its state fresh from its claim where there is one. */
  async inScope(id: string, scope: Scope): Promise<Volume> {
    const found = await this.ctx.deps.store.volumes.get(id);
    if (!found || !visibleTo(scope, found.value.project)) throw notFound(`volume ${id} not found`, 'VOLUME_NOT_FOUND');
    return this.refresh(found.value).catch((error: Error) => {
      this.ctx.deps.log.warn({ volume: id, err: error }, "cannot read the volume's claim; answering the recorded state");
      return found.value;
    });
  }

  async all(): Promise<Volume[]> {
    return (await this.ctx.deps.store.volumes.list()).map((e) => e.value);
  }

  /** Volumes whose record says they are attached to the instance. */
  async attachedTo(instanceId: string): Promise<Volume[]> {
    return (await this.all()).filter((v) => v.attachment?.instanceId === instanceId);
  }

  /** Pending claims are looked at every heartbeat, so that their binding is announced without a read. */
  async refreshPending(): Promise<void> {
    const pending = (await this.all()).filter((v) => v.node === this.ctx.settings.node && v.state === VolumeState.CREATING);
    for (const volume of pending)
      await this.refresh(volume).catch((error: Error) =>
        this.ctx.deps.log.warn({ volume: volume.id, err: error }, 'cannot read the claim'),
      );
  }

  /** A claim-backed volume of this node with its state read from its claim's phase (recorded and announced when it moved). */
  async refresh(volume: Volume): Promise<Volume> {
    const { claims } = this.ctx.deps.backend;
    if (!claims || volume.node !== this.ctx.settings.node || volume.state === VolumeState.DELETING || this.creating.has(volume.id))
      return volume;
    const claim = await claims.status(volume.id);
    const seen = claimState(claim);
    const attached = volume.state === VolumeState.ATTACHED;
    if ((attached ? VolumeState.ATTACHED : seen.state) === volume.state && seen.stateReason === volume.stateReason) return volume;
    let moved = false;
    const result = await this.ctx.deps.store.volumes.mutate(volume.id, (v) => {
      if (!v || v.state === VolumeState.DELETING) return undefined;
      const next = { ...v, stateReason: seen.stateReason, ...(v.state === VolumeState.ATTACHED ? {} : { state: seen.state }) };
      moved = next.state !== v.state;
      return next;
    });
    if (!result) return volume;
    if (moved) await this.announce(result.value);
    return result.value;
  }

  async announce(volume: Volume): Promise<void> {
    await this.ctx.deps.bus
      .publish(
        {
          $case: 'volumeStateChanged',
          volumeStateChanged: {
            volumeId: volume.id,
            project: volume.project,
            node: volume.node,
            state: volume.state,
            instanceId: volume.attachment?.instanceId ?? '',
            mountPath: volume.attachment?.mountPath ?? '',
          },
        },
        volume.id,
      )
      .catch((error) => this.ctx.deps.log.error({ err: error, volume: volume.id }, 'volume event not published'));
  }
}
