// POST (partial) or PUT (full) on an entity: title, summary and user mixins change; anything
// else must be sent as it is (GFD.223 4.4). An unknown entity is 404, as for GET.
import type { Credentials } from '../adapters/lapis';
import type { Entity, OcciRequest } from '../domain/entity';
import type { EntityKind } from '../domain/model';
import { applyUpdate, withState } from '../domain/update';
import { userMixinCategories, type GatewayContext } from './context';
import { lapisEntity } from './read-entities';

export async function update(
  ctx: GatewayContext,
  c: Credentials,
  kind: EntityKind,
  id: string,
  request: OcciRequest,
  mode: 'partial' | 'full',
): Promise<Entity> {
  const entity = await lapisEntity(ctx, c, kind, id);
  const userMixins = userMixinCategories(ctx, c);
  const state = await ctx.store.changeState(c.project, kind, id, (current) => applyUpdate(entity, current, request, mode, userMixins));
  return withState(entity, state, userMixins);
}
