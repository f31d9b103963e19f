// What each OCCI request does in Lapis: templates from the catalogue and the flavors, computes
// as scheduler claims (joined with their runtime instances), storage as runtime volumes,
// storage links as attachments made while the compute runs. Renderings are not its business.
import { randomUUID } from 'node:crypto';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import type { Bucket, Logger } from '@lapis/platform';
import { ClaimState } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import type { Credentials, LapisClients } from './adapters/lapis';
import { decodeComponent, OcciError, type Attributes, type Entity, type OcciRequest } from './domain/entity';
import { splitCategoryId } from './domain/json';
import { computeEntity, computeSpec, networkEntity, networkInterfaceEntity, osTemplate, resourceTemplate, storageEntity, storageLinkEntity, type Templates } from './domain/mapping';
import { ACTIONS, categoryId, KINDS, STATIC_CATEGORIES, USER_MIXIN_SCHEME_PREFIX, type Category, type EntityKind } from './domain/model';

const GiB = 2 ** 30;
const TEMPLATE_TTL_MS = 10_000;
/**
 * A compute is read far more often than it changes. Its entity is kept this long, and dropped
 * at once when an event says its claim or instance changed (see invalidate()); what no event
 * announces (a queued claim's pending reason) is at most this old.
 */
const COMPUTE_TTL_MS = 5_000;
const COMPUTE_CACHE_MAX = 20_000;

/** User-defined mixins of one project (OCCI lets clients tag entities with their own mixins). */
export interface UserMixins {
  mixins: Array<{ scheme: string; term: string; title: string; location: string; depends: string[] }>;
}

export class Gateway {
  private templates?: { value: Promise<Templates>; at: number };
  private readonly computes = new Map<string, { project: string; entity: Entity; until: number }>();

  constructor(
    private readonly lapis: LapisClients,
    private readonly userMixins: Bucket<UserMixins>,
    private readonly log: Logger,
  ) {}

  /** Images and flavors change rarely; every request needs them, so they are kept a short while. */
  async templatesFor(c: Credentials): Promise<Templates> {
    if (!this.templates || Date.now() - this.templates.at > TEMPLATE_TTL_MS) {
      const value = Promise.all([this.lapis.listImages(c), this.lapis.listFlavors(c)]).then(([images, flavors]) => ({
        images: images.map(osTemplate),
        flavors: flavors.map(resourceTemplate),
      }));
      this.templates = { value, at: Date.now() };
      value.catch(() => (this.templates = undefined));
    }
    return this.templates.value;
  }

  async categories(c: Credentials): Promise<Category[]> {
    const templates = await this.templatesFor(c);
    const user = (await this.userMixins.get(c.project))?.value.mixins ?? [];
    return [
      ...STATIC_CATEGORIES,
      ...templates.images,
      ...templates.flavors,
      ...user.map((m): Category => ({ ...m, class: 'mixin', attributes: [], applies: [categoryId(KINDS.compute)] })),
    ];
  }

  /** POST /-/: user mixins, scheme under http://schemas.lapis.dev/occi/user/. */
  async addMixins(c: Credentials, request: OcciRequest): Promise<void> {
    if (request.categories.length === 0) throw new OcciError(400, 'no mixin given');
    for (const m of request.categories) {
      if (m.class && m.class !== 'mixin') throw new OcciError(400, `${m.term}: only mixins can be defined, not a ${m.class}`);
      if (!m.scheme.startsWith(USER_MIXIN_SCHEME_PREFIX)) throw new OcciError(400, `${m.term}: a user mixin's scheme must start with ${USER_MIXIN_SCHEME_PREFIX}`);
      if (!/^[a-z0-9_.-]+$/i.test(m.term)) throw new OcciError(400, `mixin term ${JSON.stringify(m.term)} is not valid`);
    }
    await this.userMixins.mutate(c.project, (current) => {
      const mixins = (current?.mixins ?? []).filter((x) => !request.categories.some((m) => m.scheme + m.term === x.scheme + x.term));
      for (const m of request.categories) {
        mixins.push({ scheme: m.scheme, term: m.term, title: m.title ?? m.term, location: m.location ?? `/mixins/${m.term}/`, depends: m.rel ? m.rel.split(/\s+/) : [] });
      }
      return { mixins };
    });
  }

  async removeMixins(c: Credentials, request: OcciRequest): Promise<void> {
    const current = (await this.userMixins.get(c.project))?.value.mixins ?? [];
    for (const m of request.categories) {
      if (!current.some((x) => x.scheme === m.scheme && x.term === m.term)) throw new OcciError(404, `mixin ${m.scheme}${m.term} is not defined`);
    }
    await this.userMixins.mutate(c.project, (value) => ({ mixins: (value?.mixins ?? []).filter((x) => !request.categories.some((m) => m.scheme === x.scheme && m.term === x.term)) }));
  }

  async list(c: Credentials, kind: EntityKind): Promise<Entity[]> {
    switch (kind) {
      case 'compute': {
        const [claims, instances, templates] = await Promise.all([this.lapis.listClaims(c), this.lapis.listInstances(c), this.templatesFor(c)]);
        const byId = new Map(instances.map((i) => [i.id, i]));
        return claims.map((claim) => computeEntity(claim, byId.get(claim.id), templates));
      }
      case 'storage':
        return (await this.lapis.listVolumes(c)).map(storageEntity);
      case 'storagelink':
        return (await this.lapis.listVolumes(c)).filter((v) => v.attachment).map((v) => storageLinkEntity(v.attachment!.instanceId, v.id, v.attachment!.mountPath, true));
      case 'network':
        return (await this.networks(c)).map(networkEntity);
      case 'networkinterface':
        return (await this.lapis.listInstances(c)).flatMap((i) => i.addresses.map((a) => networkInterfaceEntity(i.id, a.network, a.ip, a.mac)));
    }
  }

  async get(c: Credentials, kind: EntityKind, id: string): Promise<Entity> {
    return hideOtherProjects(kind, id, async () => {
      switch (kind) {
        case 'compute': {
          // A hit serves only the project that owns it; anyone else goes to the scheduler, which decides.
          const hit = this.computes.get(id);
          if (hit && hit.until > Date.now() && hit.project === c.project) return hit.entity;
          const claim = await this.lapis.getClaim(c, id);
          if (claim.state === ClaimState.ENDED || claim.state === ClaimState.CANCELLED) throw new OcciError(404, `compute ${id} was deleted`);
          const [instance, templates] = await Promise.all([claim.node ? this.lapis.findInstance(c, id) : undefined, this.templatesFor(c)]);
          const entity = computeEntity(claim, instance, templates);
          this.remember(claim.project, entity);
          return entity;
        }
        case 'storage':
          return storageEntity(await this.lapis.getVolume(c, id));
        case 'storagelink': {
          const volume = await this.lapis.getVolume(c, id);
          if (!volume.attachment) throw new OcciError(404, `storagelink ${id} does not exist: the storage is not attached`);
          return storageLinkEntity(volume.attachment.instanceId, volume.id, volume.attachment.mountPath, true);
        }
        case 'network':
        case 'networkinterface': {
          const found = (await this.list(c, kind)).find((e) => e.id === id);
          if (!found) throw new OcciError(404, `${kind} ${id} does not exist`);
          return found;
        }
      }
    });
  }

  /** An event (or this gateway) changed the compute: the next read asks Lapis again. */
  invalidate(id: string): void {
    this.computes.delete(id);
  }

  private remember(project: string, entity: Entity): void {
    if (this.computes.size >= COMPUTE_CACHE_MAX) this.computes.delete(this.computes.keys().next().value!);
    this.computes.set(entity.id, { project, entity, until: Date.now() + COMPUTE_TTL_MS });
  }

  async create(c: Credentials, kind: EntityKind, request: OcciRequest, requestId: string = randomUUID()): Promise<Entity> {
    switch (kind) {
      case 'compute': {
        const { spec, volumeLinks } = computeSpec(request, await this.templatesFor(c));
        const claim = await this.lapis.submitClaim(c, spec, requestId);
        this.log.info({ compute: claim.id, volumes: volumeLinks.length }, 'compute created as a claim');
        return computeEntity(claim, undefined, await this.templatesFor(c));
      }
      case 'storage': {
        const size = request.attributes['occi.storage.size'];
        if (typeof size !== 'number' || !(size > 0)) throw new OcciError(400, 'occi.storage.size: required, a number of GiB greater than 0');
        const title = request.attributes['occi.core.title'];
        const volume = await this.lapis.createVolume(c, typeof title === 'string' ? title : '', Math.round(size * GiB), requestId);
        return storageEntity(volume);
      }
      case 'storagelink': {
        const source = request.source ?? attributeString(request.attributes, 'occi.core.source');
        const target = request.target ?? attributeString(request.attributes, 'occi.core.target');
        const instanceId = idFromLocation(source, 'compute', 'occi.core.source');
        const volumeId = idFromLocation(target, 'storage', 'occi.core.target');
        const mount = request.attributes['occi.storagelink.mountpoint'];
        const volume = await hideOtherProjects('compute', instanceId, () => this.lapis.attachVolume(c, volumeId, instanceId, typeof mount === 'string' ? mount : ''));
        return storageLinkEntity(instanceId, volume.id, volume.attachment?.mountPath ?? '', true);
      }
      default:
        throw new OcciError(405, `${kind} entities are made by Lapis, not created through OCCI`);
    }
  }

  async delete(c: Credentials, kind: EntityKind, id: string): Promise<void> {
    this.invalidate(id);
    await hideOtherProjects(kind, id, async () => {
      if (kind === 'compute') await this.lapis.cancelClaim(c, id);
      else if (kind === 'storage') await this.lapis.deleteVolume(c, id);
      else if (kind === 'storagelink') await this.lapis.detachVolume(c, id);
      else throw new OcciError(405, `${kind} entities are managed by Lapis and cannot be deleted through OCCI`);
    });
  }

  /** POST ?action=: `action` is the term from the query string, checked against the body. */
  async invoke(c: Credentials, kind: EntityKind, id: string, term: string, request: OcciRequest): Promise<void> {
    const action = Object.values(ACTIONS).find((a) => a.term === term && (KINDS[kind] as Category).actions?.includes(categoryId(a)));
    if (!action) throw new OcciError(400, `${kind} has no action "${term}"`);
    const named = request.action ?? request.categories.map((x) => x.scheme + x.term)[0];
    if (named && named !== categoryId(action)) {
      const { term: bodyTerm } = splitCategoryId(named, 'action');
      throw new OcciError(400, `the body invokes "${bodyTerm}" but the query string says ?action=${term}`);
    }
    const method = request.attributes.method;
    this.invalidate(id);
    await hideOtherProjects(kind, id, async () => {
      if (action === ACTIONS.start) await this.lapis.startInstance(c, id);
      else if (action === ACTIONS.stop) await this.lapis.stopInstance(c, id, method === 'poweroff' ? 0 : undefined);
      else if (action === ACTIONS.restart) await this.lapis.rebootInstance(c, id, method === 'cold' ? 0 : undefined);
      else throw new OcciError(501, `${kind} action "${term}" is not supported by Lapis yet`);
    });
  }

  private async networks(c: Credentials): Promise<string[]> {
    const names = new Set((await this.lapis.listInstances(c)).flatMap((i) => i.addresses.map((a) => a.network)));
    return [...names].sort();
  }
}

function attributeString(attributes: Attributes, name: string): string {
  const value = attributes[name];
  if (typeof value !== 'string' || value === '') throw new OcciError(400, `${name}: required`);
  return value;
}

function idFromLocation(location: string, kind: EntityKind, what: string): string {
  const path = location.replace(/^https?:\/\/[^/]+/, '');
  const match = new RegExp(`^/?${kind}/([^/?#]+)/?$`).exec(path);
  if (!match) throw new OcciError(400, `${what}: ${JSON.stringify(location.slice(0, 200))} is not a /${kind}/ID location`);
  return decodeComponent(match[1]!, what);
}

/** Another project's entity is answered as if it did not exist. */
async function hideOtherProjects<T>(kind: EntityKind, id: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    if ((error as ServiceError).code === grpcStatus.PERMISSION_DENIED || (error as ServiceError).code === grpcStatus.NOT_FOUND) {
      throw new OcciError(404, `${kind} ${id} does not exist${(error as ServiceError).code === grpcStatus.NOT_FOUND && (error as ServiceError).details ? `: ${(error as ServiceError).details}` : ''}`);
    }
    throw error;
  }
}

