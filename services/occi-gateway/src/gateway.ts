// What each OCCI request does in Lapis: templates from the catalogue and the flavors, computes
// as scheduler claims (joined with their runtime instances), storage as runtime volumes,
// storage links as attachments made while the compute runs; what only OCCI knows (titles,
// summaries, user mixins) in the gateway's own store. Renderings are not its business.
import { randomUUID } from 'node:crypto';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from '@lapis/platform';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import { ClaimState, type Claim } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import type { Credentials, LapisClients } from './adapters/lapis';
import type { OcciStore, UserMixins } from './adapters/store';
import { decodeComponent, OcciError, type Attributes, type Entity, type OcciRequest } from './domain/entity';
import { splitCategoryId } from './domain/json';
import { applyUpdate, initialState, withState } from './domain/update';
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

export class Gateway {
  private templates?: { value: Promise<Templates>; at: number };
  private readonly computes = new Map<string, { project: string; entity: Entity; until: number }>();

  constructor(
    private readonly lapis: LapisClients,
    /** User mixins, and the title, summary and user mixins of entities: what only OCCI knows. */
    private readonly store: OcciStore,
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
    const user = this.store.userMixins(c.project);
    return [
      ...STATIC_CATEGORIES,
      ...templates.images,
      ...templates.flavors,
      ...user.map(userMixinCategory),
    ];
  }

  private userMixinCategories(c: Credentials): Category[] {
    return this.store.userMixins(c.project).map(userMixinCategory);
  }

  /** POST /-/: user mixins, scheme under http://schemas.lapis.dev/occi/user/. */
  async addMixins(c: Credentials, request: OcciRequest): Promise<void> {
    if (request.categories.length === 0) throw new OcciError(400, 'no mixin given');
    for (const m of request.categories) {
      if (m.class && m.class !== 'mixin') throw new OcciError(400, `${m.term}: only mixins can be defined, not a ${m.class}`);
      if (!m.scheme.startsWith(USER_MIXIN_SCHEME_PREFIX)) throw new OcciError(400, `${m.term}: a user mixin's scheme must start with ${USER_MIXIN_SCHEME_PREFIX}`);
      if (!/^[a-z0-9_.-]+$/i.test(m.term)) throw new OcciError(400, `mixin term ${JSON.stringify(m.term)} is not valid`);
      if (m.location !== undefined && !isMixinLocation(m.location)) {
        throw new OcciError(400, `${m.term}: location ${JSON.stringify(m.location.slice(0, 200))} must be a path like /mixins/${m.term}/, outside the kinds' collections and /-/`);
      }
    }
    await this.store.changeUserMixins(c.project, (current) => {
      const mixins = current.filter((x) => !request.categories.some((m) => m.scheme + m.term === x.scheme + x.term));
      for (const m of request.categories) {
        mixins.push({ scheme: m.scheme, term: m.term, title: m.title ?? m.term, location: normalizeLocation(m.location ?? `/mixins/${m.term}/`), depends: m.rel ? m.rel.split(/\s+/) : [] });
      }
      return mixins;
    });
  }

  async removeMixins(c: Credentials, request: OcciRequest): Promise<void> {
    if (request.categories.length === 0) throw new OcciError(400, 'no mixin given');
    const current = this.store.userMixins(c.project);
    for (const m of request.categories) {
      if (!current.some((x) => x.scheme === m.scheme && x.term === m.term)) throw new OcciError(404, `mixin ${m.scheme}${m.term} is not defined`);
    }
    await this.store.changeUserMixins(c.project, (mixins) => mixins.filter((x) => !request.categories.some((m) => m.scheme === x.scheme && m.term === x.term)));
  }

  async list(c: Credentials, kind: EntityKind): Promise<Entity[]> {
    const entities = await this.lapisEntities(c, kind);
    const states = new Map(this.store.states(c.project, kind).map((s) => [s.id, s.state]));
    const userMixins = this.userMixinCategories(c);
    return entities.map((e) => withState(e, states.get(e.id), userMixins));
  }

  private async lapisEntities(c: Credentials, kind: EntityKind): Promise<Entity[]> {
    switch (kind) {
      case 'compute': {
        const [claims, instances, templates] = await Promise.all([this.lapis.listClaims(c), this.lapis.listInstances(c), this.templatesFor(c)]);
        const byId = new Map(instances.map((i) => [i.id, i]));
        const live = new Set(claims.map((claim) => claim.id));
        // An instance whose claim ended (its container failed) stays a compute until it is deleted.
        const ended = await Promise.all(
          instances
            .filter((i) => !live.has(i.id) && !isGone(i))
            .map((i) => this.lapis.getClaim(c, i.id).then((claim) => (claim.state === ClaimState.ENDED ? claim : undefined), () => undefined)),
        );
        return [...claims, ...ended.filter((claim): claim is Claim => claim !== undefined)].map((claim) => computeEntity(claim, byId.get(claim.id), templates));
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
    const entity = await this.lapisEntity(c, kind, id);
    return withState(entity, this.store.state(c.project, kind, id), this.userMixinCategories(c));
  }

  /** The entity as Lapis' services have it, without what the gateway keeps. */
  private async lapisEntity(c: Credentials, kind: EntityKind, id: string): Promise<Entity> {
    return hideOtherProjects(kind, id, async () => {
      switch (kind) {
        case 'compute': {
          // A hit serves only the project that owns it; anyone else goes to the scheduler, which decides.
          const hit = this.computes.get(id);
          if (hit && hit.until > Date.now() && hit.project === c.project) return hit.entity;
          const { claim, instance } = await this.compute(c, id);
          const entity = computeEntity(claim, instance, await this.templatesFor(c));
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
          const found = (await this.lapisEntities(c, kind)).find((e) => e.id === id);
          if (!found) throw new OcciError(404, `${kind} ${id} does not exist`);
          return found;
        }
      }
    });
  }

  /**
   * A compute's claim and instance. It exists from its claim until it is deleted: a claim the
   * scheduler ended (the container failed) still has its instance, shown in error; a cancelled
   * claim, or an ended one whose instance is gone, is a deleted compute.
   */
  private async compute(c: Credentials, id: string): Promise<{ claim: Claim; instance?: Instance }> {
    const claim = await this.lapis.getClaim(c, id);
    if (claim.state === ClaimState.CANCELLED) throw new OcciError(404, `compute ${id} was deleted`);
    const instance = claim.node ? await this.lapis.findInstance(c, id) : undefined;
    if (claim.state === ClaimState.ENDED && (!instance || isGone(instance))) throw new OcciError(404, `compute ${id} was deleted`);
    return { claim, instance };
  }

  /** The compute's instance, for what needs one (actions, links); a queued compute has none yet. */
  private async liveInstance(c: Credentials, id: string, what: string): Promise<Instance> {
    const { claim, instance } = await hideOtherProjects('compute', id, () => this.compute(c, id));
    if (!instance || instance.state === InstanceState.SCHEDULED || instance.state === InstanceState.PENDING) {
      const reason = claim.state === ClaimState.PENDING || claim.state === ClaimState.REQUEUED ? claim.reasonDetail || 'queued' : 'placed, its instance is being made';
      throw new OcciError(409, `compute ${id} is queued and has no instance yet (${reason}): ${what} once it runs`);
    }
    return instance;
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
    const userMixins = this.userMixinCategories(c);
    const created = await this.createInLapis(c, kind, request, requestId);
    const state = initialState(request, userMixins);
    if (state) await this.store.changeState(c.project, kind, created.id, () => state);
    return withState(created, state, userMixins);
  }

  private async createInLapis(c: Credentials, kind: EntityKind, request: OcciRequest, requestId: string): Promise<Entity> {
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
        if (title !== undefined && typeof title !== 'string') throw new OcciError(400, 'occi.core.title: must be a string');
        // The title is free text, kept by the gateway; the volume's name is derived from it.
        const volume = await this.lapis.createVolume(c, volumeNameFrom(title ?? '') || 'occi-storage', Math.round(size * GiB), requestId);
        return storageEntity(volume);
      }
      case 'storagelink': {
        const source = request.source ?? attributeString(request.attributes, 'occi.core.source');
        const target = request.target ?? attributeString(request.attributes, 'occi.core.target');
        const instanceId = idFromLocation(source, 'compute', 'occi.core.source');
        const volumeId = idFromLocation(target, 'storage', 'occi.core.target');
        const mount = request.attributes['occi.storagelink.mountpoint'];
        await this.liveInstance(c, instanceId, 'a storage can be linked to it');
        const volume = await hideOtherProjects('compute', instanceId, () => this.lapis.attachVolume(c, volumeId, instanceId, typeof mount === 'string' ? mount : ''));
        return storageLinkEntity(instanceId, volume.id, volume.attachment?.mountPath ?? '', true);
      }
      default:
        throw new OcciError(405, `${kind} entities are made by Lapis, not created through OCCI`);
    }
  }

  /**
   * POST (partial) or PUT (full) on an entity: title, summary and user mixins change; anything
   * else must be sent as it is (GFD.223 4.4). An unknown entity is 404, as for GET.
   */
  async update(c: Credentials, kind: EntityKind, id: string, request: OcciRequest, mode: 'partial' | 'full'): Promise<Entity> {
    const entity = await this.lapisEntity(c, kind, id);
    const userMixins = this.userMixinCategories(c);
    const state = await this.store.changeState(c.project, kind, id, (current) => applyUpdate(entity, current, request, mode, userMixins));
    return withState(entity, state, userMixins);
  }

  /** The user mixin whose collection is at `path`, if the project defined one there. */
  async mixinAt(c: Credentials, path: string): Promise<Category | undefined> {
    const location = normalizeLocation(path);
    return this.userMixinCategories(c).find((m) => m.location === location);
  }

  /** The entities tagged with a user mixin (its collection, GFD.223 4.3). */
  async mixinMembers(c: Credentials, mixin: Category): Promise<Entity[]> {
    const id = categoryId(mixin);
    const tagged = this.store.states(c.project).filter((v) => v.state.mixins.includes(id));
    const entities = await Promise.all(
      tagged.map((v) =>
        this.get(c, v.kind, v.id).catch((error: unknown) => {
          if (error instanceof OcciError && error.status === 404) return undefined; // deleted meanwhile
          throw error;
        }),
      ),
    );
    return entities.filter((e): e is Entity => e !== undefined);
  }

  /**
   * Changes a mixin's collection: "add" (POST) and "remove" (DELETE) the given entities, or
   * "replace" (PUT) the whole set. Every location must name an entity of the caller's project.
   */
  async updateMixinMembers(c: Credentials, mixin: Category, locations: string[], mode: 'add' | 'remove' | 'replace'): Promise<void> {
    const id = categoryId(mixin);
    const named = locations.map((location) => entityLocation(location));
    for (const { kind, id: entityId } of named) {
      if (!mixin.applies?.includes(categoryId(KINDS[kind]))) throw new OcciError(400, `mixin ${id} does not apply to a ${kind}`);
      await this.lapisEntity(c, kind, entityId);
    }
    const change = (kind: EntityKind, entityId: string, member: boolean) =>
      this.store.changeState(c.project, kind, entityId, (current) => {
        const mixins = current?.mixins ?? [];
        if (mixins.includes(id) === member) return undefined;
        return { ...current, mixins: member ? [...mixins, id] : mixins.filter((m) => m !== id) };
      });
    if (mode === 'replace') {
      for (const v of this.store.states(c.project)) {
        if (v.state.mixins.includes(id) && !named.some((n) => n.kind === v.kind && n.id === v.id)) await change(v.kind, v.id, false);
      }
    }
    for (const { kind, id: entityId } of named) await change(kind, entityId, mode !== 'remove');
  }

  async delete(c: Credentials, kind: EntityKind, id: string): Promise<void> {
    this.invalidate(id);
    await hideOtherProjects(kind, id, async () => {
      if (kind === 'compute') {
        const { claim, instance } = await this.compute(c, id);
        // The scheduler no longer owns an ended claim: its instance is removed at the runtime.
        if (claim.state === ClaimState.ENDED && instance) await this.lapis.deleteInstance(c, id);
        else await this.lapis.cancelClaim(c, id);
      } else if (kind === 'storage') await this.lapis.deleteVolume(c, id);
      else if (kind === 'storagelink') await this.lapis.detachVolume(c, id);
      else throw new OcciError(405, `${kind} entities are managed by Lapis and cannot be deleted through OCCI`);
    });
    await this.store.deleteState(c.project, kind, id).catch((error: unknown) => this.log.warn({ err: error, kind, id }, 'could not drop what the gateway kept of a deleted entity'));
  }

  /** POST /kind/?action=: the action on every entity of the collection that offers it now (a queued compute does not). */
  async invokeAll(c: Credentials, kind: EntityKind, term: string, request: OcciRequest): Promise<void> {
    this.actionOf(kind, term, request);
    for (const entity of await this.list(c, kind)) {
      if (entity.actions.some((a) => a.term === term)) await this.invoke(c, kind, entity.id, term, request);
    }
  }

  /** POST ?action=: `action` is the term from the query string, checked against the body. */
  async invoke(c: Credentials, kind: EntityKind, id: string, term: string, request: OcciRequest): Promise<void> {
    const action = this.actionOf(kind, term, request);
    const method = request.attributes.method;
    this.invalidate(id);
    await this.liveInstance(c, id, `${term} can be invoked`);
    await hideOtherProjects(kind, id, async () => {
      if (action === ACTIONS.start) await this.lapis.startInstance(c, id);
      else if (action === ACTIONS.stop) await this.lapis.stopInstance(c, id, method === 'poweroff' ? 0 : undefined);
      else if (action === ACTIONS.restart) await this.lapis.rebootInstance(c, id, method === 'cold' ? 0 : undefined);
    });
  }

  /** The action ?action= names, if the kind offers it and the body (if it names one) agrees. */
  private actionOf(kind: EntityKind, term: string, request: OcciRequest): Category {
    const action = Object.values(ACTIONS).find((a) => a.term === term && (KINDS[kind] as Category).actions?.includes(categoryId(a)));
    if (!action) throw new OcciError(400, `${kind} has no action "${term}"`);
    const named = request.action ?? request.categories.map((x) => x.scheme + x.term)[0];
    if (named && named !== categoryId(action)) {
      const { term: bodyTerm } = splitCategoryId(named, 'action');
      throw new OcciError(400, `the body invokes "${bodyTerm}" but the query string says ?action=${term}`);
    }
    return action;
  }

  private async networks(c: Credentials): Promise<string[]> {
    const names = new Set((await this.lapis.listInstances(c)).flatMap((i) => i.addresses.map((a) => a.network)));
    return [...names].sort();
  }
}

/** An instance that no longer exists on its node. */
const isGone = (instance: Instance) => instance.state === InstanceState.DELETED || instance.state === InstanceState.PREEMPTED;

function userMixinCategory(m: UserMixins['mixins'][number]): Category {
  return { ...m, class: 'mixin', attributes: [], applies: [categoryId(KINDS.compute), categoryId(KINDS.storage)] };
}

/** A collection path as stored and compared: no scheme and host, one trailing slash. */
const normalizeLocation = (path: string) => path.replace(/^https?:\/\/[^/]+/, '').replace(/\/*$/, '/');

/** A user mixin's collection: a path of its own, not a kind's collection nor the query interface. */
function isMixinLocation(location: string): boolean {
  const path = normalizeLocation(location);
  if (!/^\/[a-zA-Z0-9_.~-]+(\/[a-zA-Z0-9_.~-]+)*\/$/.test(path)) return false;
  const first = path.split('/')[1]!;
  return !['-', '.well-known', ...Object.values(KINDS).map((k) => k.term)].includes(first);
}

/** A volume name from free text (lower case letters, digits, ".", "-", "_"; at most 63). */
function volumeNameFrom(title: string): string {
  return title
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .slice(0, 63)
    .replace(/^[-._]+|[-._]+$/g, '');
}

const ENTITY_KINDS: readonly EntityKind[] = ['compute', 'storage', 'storagelink', 'network', 'networkinterface'];

/** The kind and id an entity location names ("/compute/ID", with or without the base URL). */
function entityLocation(location: string): { kind: EntityKind; id: string } {
  const path = location.trim().replace(/^https?:\/\/[^/]+/, '');
  const match = /^\/?([a-z]+)\/([^/?#]+)\/?$/.exec(path);
  const kind = match?.[1] as EntityKind | undefined;
  if (!match || !kind || !ENTITY_KINDS.includes(kind)) throw new OcciError(400, `X-OCCI-Location: ${JSON.stringify(location.slice(0, 200))} is not an entity location`);
  return { kind, id: decodeComponent(match[2]!, 'X-OCCI-Location') };
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

