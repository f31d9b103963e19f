// DELETE on an entity: a compute's claim is cancelled (or, once the scheduler ended it, its
// instance removed at the runtime), a storage's volume deleted, a storage link detached, a
// network deleted, a network interface disconnected; what the gateway kept of it goes too. A
// project's default network, and a compute's interface on it, are Lapis', not OCCI's to delete.
import { ClaimState } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import type { Credentials } from '../adapters/lapis';
import { OcciError } from '../domain/entity';
import type { EntityKind } from '../domain/model';
import { interfaceEnds, isLapisNetwork } from '../domain/network-mapping';
import { compute } from './computes';
import type { GatewayContext } from './context';
import { hideOtherProjects } from './hide-other-projects';
import { lapisEntity } from './read-entities';

export async function deleteEntity(ctx: GatewayContext, c: Credentials, kind: EntityKind, id: string): Promise<void> {
  try {
    await deleteInLapis(ctx, c, kind, id);
    // Gone for OCCI once answered, while Lapis may still be removing it (a placed claim's instance).
    if (kind === 'compute' || kind === 'storage') ctx.views.deleted(c.project, kind, id);
  } finally {
    ctx.views.changed(c.project, kind, id);
    // A storage link is its volume's attachment, shown on the storage and on its compute (any one, as far as this knows).
    if (kind === 'storagelink') {
      ctx.views.changed(c.project, 'storage', id);
      ctx.views.changed(c.project, 'compute');
    }
    if (kind === 'storage') ctx.views.changed(c.project, 'storagelink');
    if (kind === 'networkinterface') {
      ctx.views.changed(c.project, 'network');
      ctx.views.changed(c.project, 'compute', interfaceEnds(id)?.instanceId);
    }
  }
  await ctx.store
    .deleteState(c.project, kind, id)
    .catch((error: unknown) => ctx.log.warn({ err: error, kind, id }, 'could not drop what the gateway kept of a deleted entity'));
}

async function deleteInLapis(ctx: GatewayContext, c: Credentials, kind: EntityKind, id: string): Promise<void> {
  await hideOtherProjects(kind, id, async () => {
    if (kind === 'compute') {
      const { claim, instance } = await compute(ctx, c, id);
      // The scheduler no longer owns an ended claim: its instance is removed at the runtime.
      if (claim.state === ClaimState.ENDED && instance) await ctx.lapis.deleteInstance(c, id);
      else await ctx.lapis.cancelClaim(c, id);
    } else if (kind === 'storage') await ctx.lapis.deleteVolume(c, id);
    else if (kind === 'storagelink') await ctx.lapis.detachVolume(c, id);
    else if (kind === 'network' && isLapisNetwork(id)) await ctx.lapis.deleteNetwork(c, id);
    else if (kind === 'networkinterface' && interfaceEnds(id)) {
      const { instanceId, networkId } = interfaceEnds(id)!;
      await ctx.lapis.disconnectNetwork(c, networkId, instanceId);
    } else if (kind === 'network' || kind === 'networkinterface') await defaultNetworkRefusal(ctx, c, kind, id);
  });
}

/** A default network (or an interface on one) that exists is not OCCI's to delete (405); one that does not is 404. */
async function defaultNetworkRefusal(
  ctx: GatewayContext,
  c: Credentials,
  kind: 'network' | 'networkinterface',
  id: string,
): Promise<never> {
  await lapisEntity(ctx, c, kind, id);
  throw new OcciError(
    405,
    `${kind} ${id} is the project's default network${kind === 'networkinterface' ? "'s interface" : ''}: Lapis manages it, it cannot be deleted through OCCI`,
  );
}
