// POST on a kind's collection: a compute is submitted as a scheduler claim (os_tpl and
// resource_tpl required), a storage made as a runtime volume (its name derived from the
// title), a storage link attached while its compute runs, a network made as a runtime project
// network (the ipnetwork mixin's address, gateway, allocation), a network interface connected
// while its compute runs. Title, summary and user mixins sent with it are kept by the gateway.
import { randomUUID } from 'node:crypto';
import type { Credentials } from '../adapters/lapis';
import { isLink, OcciError, type Entity, type OcciRequest } from '../domain/entity';
import { attributeString, idFromLocation } from '../domain/locations';
import { computeEntity, computeSpec, interfaceEntities, storageEntity, storageLinkEntity, volumeNameFrom } from '../domain/mapping';
import { interfaceId, isLapisNetwork, lapisNetworkEntity, networkRequest } from '../domain/network-mapping';
import type { EntityKind } from '../domain/model';
import { initialState, withState } from '../domain/update';
import { liveInstance } from './computes';
import { userMixinCategories, type GatewayContext } from './context';
import { hideOtherProjects } from './hide-other-projects';
import { inOcciTerms } from './network-refusals';

const GiB = 2 ** 30;

export async function create(
  ctx: GatewayContext,
  c: Credentials,
  kind: EntityKind,
  request: OcciRequest,
  requestId: string = randomUUID(),
): Promise<Entity> {
  const userMixins = userMixinCategories(ctx, c);
  const created = await createInLapis(ctx, c, kind, request, requestId);
  // The new entity is in this gateway's views at once: no event announces a queued claim.
  ctx.views.remember(c.project, kind, created.id, created);
  if (isLink(created)) {
    // A storage link shows on its storage, a network interface on the networks' list; both on their compute.
    if (kind === 'storagelink') ctx.views.changed(c.project, 'storage', created.id);
    else ctx.views.changed(c.project, 'network');
    ctx.views.changed(c.project, 'compute', created.source.location.slice('/compute/'.length));
  }
  const state = initialState(request, userMixins);
  if (state) await ctx.store.changeState(c.project, kind, created.id, () => state);
  return withState(created, state, userMixins);
}

async function createInLapis(
  ctx: GatewayContext,
  c: Credentials,
  kind: EntityKind,
  request: OcciRequest,
  requestId: string,
): Promise<Entity> {
  switch (kind) {
    case 'compute': {
      const { spec, volumeLinks } = computeSpec(request, await ctx.templates.templatesFor(c));
      const claim = await ctx.lapis.submitClaim(c, spec, requestId);
      ctx.log.info({ compute: claim.id, volumes: volumeLinks.length }, 'compute created as a claim');
      return computeEntity(claim, undefined, await ctx.templates.templatesFor(c));
    }
    case 'storage': {
      const size = request.attributes['occi.storage.size'];
      if (typeof size !== 'number' || !(size > 0)) throw new OcciError(400, 'occi.storage.size: required, a number of GiB greater than 0');
      const title = request.attributes['occi.core.title'];
      if (title !== undefined && typeof title !== 'string') throw new OcciError(400, 'occi.core.title: must be a string');
      // The title is free text, kept by the gateway; the volume's name is derived from it.
      const volume = await ctx.lapis.createVolume(c, volumeNameFrom(title ?? '') || 'occi-storage', Math.round(size * GiB), requestId);
      return storageEntity(volume);
    }
    case 'storagelink': {
      const source = request.source ?? attributeString(request.attributes, 'occi.core.source');
      const target = request.target ?? attributeString(request.attributes, 'occi.core.target');
      const instanceId = idFromLocation(source, 'compute', 'occi.core.source');
      const volumeId = idFromLocation(target, 'storage', 'occi.core.target');
      const mount = request.attributes['occi.storagelink.mountpoint'];
      await liveInstance(ctx, c, instanceId, 'a storage can be linked to it');
      const volume = await hideOtherProjects('compute', instanceId, () =>
        ctx.lapis.attachVolume(c, volumeId, instanceId, typeof mount === 'string' ? mount : ''),
      );
      return storageLinkEntity(instanceId, volume.id, volume.attachment?.mountPath ?? '', true);
    }
    case 'network': {
      const network = await inOcciTerms(() => ctx.lapis.createNetwork(c, networkRequest(request), requestId));
      return lapisNetworkEntity(network);
    }
    case 'networkinterface': {
      const source = request.source ?? attributeString(request.attributes, 'occi.core.source');
      const target = request.target ?? attributeString(request.attributes, 'occi.core.target');
      const instanceId = idFromLocation(source, 'compute', 'occi.core.source');
      const networkId = idFromLocation(target, 'network', 'occi.core.target');
      const ip = request.attributes['occi.networkinterface.address'] ?? '';
      if (typeof ip !== 'string') throw new OcciError(400, 'occi.networkinterface.address: must be a string');
      await liveInstance(ctx, c, instanceId, 'it can be connected to a network');
      if (!isLapisNetwork(networkId))
        throw new OcciError(409, `network ${networkId} is the project's default network, which every compute is on from its start`);
      const instance = await hideOtherProjects('network', networkId, () =>
        inOcciTerms(() => ctx.lapis.connectNetwork(c, networkId, instanceId, ip, requestId)),
      );
      const link = interfaceEntities(instanceId, instance.addresses).find((l) => l.id === interfaceId(instanceId, networkId));
      if (!link) throw new OcciError(500, `instance ${instanceId} was connected to network ${networkId} but shows no address on it`);
      return link;
    }
  }
}
