// A user mixin's collection (GFD.223 4.3): the entities tagged with it, read at the mixin's
// location and changed by entity location (POST adds, DELETE removes, PUT replaces the set).
import type { Credentials } from '../adapters/lapis';
import { OcciError, type Entity } from '../domain/entity';
import { entityLocation, normalizeLocation } from '../domain/locations';
import { categoryId, KINDS, type Category, type EntityKind } from '../domain/model';
import { userMixinCategories, type GatewayContext } from './context';
import { get, lapisEntity } from './read-entities';

/** The user mixin whose collection is at `path`, if the project defined one there. */
export function mixinAt(ctx: GatewayContext, c: Credentials, path: string): Category | undefined {
  const location = normalizeLocation(path);
  return userMixinCategories(ctx, c).find((m) => m.location === location);
}

/** The entities tagged with a user mixin. */
export async function mixinMembers(ctx: GatewayContext, c: Credentials, mixin: Category): Promise<Entity[]> {
  const id = categoryId(mixin);
  const tagged = ctx.store.states(c.project).filter((v) => v.state.mixins.includes(id));
  const entities = await Promise.all(
    tagged.map((v) =>
      get(ctx, c, v.kind, v.id).catch((error: unknown) => {
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
export async function updateMixinMembers(
  ctx: GatewayContext,
  c: Credentials,
  mixin: Category,
  locations: string[],
  mode: 'add' | 'remove' | 'replace',
): Promise<void> {
  const id = categoryId(mixin);
  const named = locations.map((location) => entityLocation(location));
  for (const { kind, id: entityId } of named) {
    if (!mixin.applies?.includes(categoryId(KINDS[kind]))) throw new OcciError(400, `mixin ${id} does not apply to a ${kind}`);
    await lapisEntity(ctx, c, kind, entityId);
  }
  const change = (kind: EntityKind, entityId: string, member: boolean) =>
    ctx.store.changeState(c.project, kind, entityId, (current) => {
      const mixins = current?.mixins ?? [];
      if (mixins.includes(id) === member) return undefined;
      return { ...current, mixins: member ? [...mixins, id] : mixins.filter((m) => m !== id) };
    });
  if (mode === 'replace') {
    for (const v of ctx.store.states(c.project)) {
      if (v.state.mixins.includes(id) && !named.some((n) => n.kind === v.kind && n.id === v.id)) await change(v.kind, v.id, false);
    }
  }
  for (const { kind, id: entityId } of named) await change(kind, entityId, mode !== 'remove');
}
