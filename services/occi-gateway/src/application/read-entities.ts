// Reading entities: a kind's collection and one entity, as Lapis' services have them (computes
// from claims and instances, storage from volumes, storage links from attachments, networks
// from the runtime's project networks and the default ones instances' addresses name, network
// interfaces from instances' addresses), joined with what the gateway keeps (title, summary,
// user mixins). Collections and computes are served from the gateway's views (entity-views.ts),
// which read Lapis only for what changed.
import type { Claim } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { ClaimState } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import type { Credentials } from '../adapters/lapis';
import { OcciError, type Entity } from '../domain/entity';
import { computeEntity, interfaceEntities, networkEntity, storageEntity, storageLinkEntity } from '../domain/mapping';
import { isLapisNetwork, lapisNetworkEntity } from '../domain/network-mapping';
import type { EntityKind } from '../domain/model';
import { withState } from '../domain/update';
import { compute, isGone } from './computes';
import { userMixinCategories, type GatewayContext } from './context';
import { hideOtherProjects } from './hide-other-projects';

/** The collection; the same array while neither it nor what the gateway keeps changed. */
export async function list(ctx: GatewayContext, c: Credentials, kind: EntityKind): Promise<Entity[]> {
  const entities = await ctx.views.collection(c.project, kind, {
    all: () => lapisEntities(ctx, c, kind),
    one: kind === 'compute' || kind === 'storage' ? (id) => lapisEntityOrGone(ctx, c, kind, id) : undefined,
  });
  return ctx.views.derived(c.project, kind, entities, String(ctx.store.revision), () => {
    const states = new Map(ctx.store.states(c.project, kind).map((s) => [s.id, s.state]));
    const userMixins = userMixinCategories(ctx, c);
    return entities.map((e) => withState(e, states.get(e.id), userMixins));
  });
}

export async function get(ctx: GatewayContext, c: Credentials, kind: EntityKind, id: string): Promise<Entity> {
  const entity = await lapisEntity(ctx, c, kind, id);
  return withState(entity, ctx.store.state(c.project, kind, id), userMixinCategories(ctx, c));
}

async function lapisEntities(ctx: GatewayContext, c: Credentials, kind: EntityKind): Promise<Entity[]> {
  const { lapis } = ctx;
  switch (kind) {
    case 'compute': {
      const [claims, instances, templates] = await Promise.all([
        lapis.listClaims(c),
        lapis.listInstances(c),
        ctx.templates.templatesFor(c),
      ]);
      const byId = new Map(instances.map((i) => [i.id, i]));
      const live = new Set(claims.map((claim) => claim.id));
      // An instance whose claim ended (its container failed) stays a compute until it is deleted.
      const ended = await Promise.all(
        instances
          .filter((i) => !live.has(i.id) && !isGone(i))
          .map((i) =>
            lapis.getClaim(c, i.id).then(
              (claim) => (claim.state === ClaimState.ENDED ? claim : undefined),
              () => undefined,
            ),
          ),
      );
      return [...claims, ...ended.filter((claim): claim is Claim => claim !== undefined)].map((claim) =>
        computeEntity(claim, byId.get(claim.id), templates),
      );
    }
    case 'storage':
      return (await lapis.listVolumes(c)).map(storageEntity);
    case 'storagelink':
      return (await lapis.listVolumes(c))
        .filter((v) => v.attachment)
        .map((v) => storageLinkEntity(v.attachment!.instanceId, v.id, v.attachment!.mountPath, true));
    case 'network': {
      const [defaults, made] = await Promise.all([defaultNetworks(ctx, c), lapis.listNetworks(c)]);
      return [...defaults.map(networkEntity), ...made.map(lapisNetworkEntity)];
    }
    case 'networkinterface':
      return (await lapis.listInstances(c)).flatMap((i) => interfaceEntities(i.id, i.addresses));
  }
}

/** The entity as Lapis' services have it, without what the gateway keeps. */
export async function lapisEntity(ctx: GatewayContext, c: Credentials, kind: EntityKind, id: string): Promise<Entity> {
  return hideOtherProjects(kind, id, async () => {
    switch (kind) {
      case 'compute': {
        ctx.views.refresh(c.project, kind, () => lapisEntities(ctx, c, kind));
        const hit = ctx.views.get(c.project, kind, id);
        if (hit) return hit;
        const mark = ctx.views.mark();
        try {
          const { claim, instance } = await compute(ctx, c, id);
          const entity = computeEntity(claim, instance, await ctx.templates.templatesFor(c));
          ctx.views.remember(claim.project, kind, id, entity, mark);
          return entity;
        } catch (error) {
          if (error instanceof OcciError && error.status === 404) ctx.views.remember(c.project, kind, id, undefined, mark);
          throw error;
        }
      }
      case 'storage':
        return storageEntity(await ctx.lapis.getVolume(c, id));
      case 'storagelink': {
        const volume = await ctx.lapis.getVolume(c, id);
        if (!volume.attachment) throw new OcciError(404, `storagelink ${id} does not exist: the storage is not attached`);
        return storageLinkEntity(volume.attachment.instanceId, volume.id, volume.attachment.mountPath, true);
      }
      case 'network':
        if (isLapisNetwork(id)) return lapisNetworkEntity(await ctx.lapis.getNetwork(c, id));
        return defaultNetworkEntity(ctx, c, kind, id);
      case 'networkinterface': {
        const found = (await lapisEntities(ctx, c, kind)).find((e) => e.id === id);
        if (!found) throw new OcciError(404, `${kind} ${id} does not exist`);
        return found;
      }
    }
  });
}

/** The entity, or undefined once it is gone (or was never the caller's). */
async function lapisEntityOrGone(ctx: GatewayContext, c: Credentials, kind: EntityKind, id: string): Promise<Entity | undefined> {
  try {
    return await lapisEntity(ctx, c, kind, id);
  } catch (error) {
    if (error instanceof OcciError && error.status === 404) return undefined;
    throw error;
  }
}

/** The project's default networks: those its instances have addresses on, other than the networks it made. */
async function defaultNetworks(ctx: GatewayContext, c: Credentials): Promise<string[]> {
  const names = new Set((await ctx.lapis.listInstances(c)).flatMap((i) => i.addresses.map((a) => a.network)));
  return [...names].filter((n) => !isLapisNetwork(n)).sort();
}

async function defaultNetworkEntity(ctx: GatewayContext, c: Credentials, kind: EntityKind, id: string): Promise<Entity> {
  if (!(await defaultNetworks(ctx, c)).includes(id)) throw new OcciError(404, `${kind} ${id} does not exist`);
  return networkEntity(id);
}
