// Updating an entity (GFD.223 4.4): POST changes what it names, PUT replaces every mutable part.
// What Lapis' services keep (image, flavor, hostname, sizes, states) is immutable here; what only
// OCCI knows (title, summary, the user mixins an entity carries) the gateway keeps beside it, and
// this decides its next value. An immutable attribute sent with its current value is accepted,
// so a client can send back what it read.
import { isLink, OcciError, type AttributeValue, type Entity, type OcciRequest } from './entity';
import { categoryId, KINDS, MIXINS, USER_MIXIN_SCHEME_PREFIX, type Category } from './model';

/** What the gateway keeps of one entity: the parts of OCCI that no Lapis service has. */
export interface EntityState {
  title?: string;
  summary?: string;
  /** User mixin ids (scheme + term) associated with the entity. */
  mixins: string[];
}

export const MUTABLE = ['occi.core.title', 'occi.core.summary'] as const;

const same = (a: AttributeValue | undefined, b: AttributeValue | undefined) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The entity's next state after `request`. `mode` "partial" (POST) keeps what the request does
 * not name; "full" (PUT) drops it. `userMixins` are the mixins the project defined.
 */
export function applyUpdate(
  entity: Entity,
  current: EntityState | undefined,
  request: OcciRequest,
  mode: 'partial' | 'full',
  userMixins: readonly Category[],
): EntityState {
  const kindId = categoryId(KINDS[entity.kind]);
  const next: EntityState = mode === 'full' ? { mixins: [] } : { ...current, mixins: [...(current?.mixins ?? [])] };
  for (const category of request.categories) {
    const id = category.scheme + category.term;
    if (id === kindId) continue;
    if (category.class === 'kind') throw new OcciError(400, `${id}: a ${entity.kind} cannot change its kind`);
    if (category.class === 'action') throw new OcciError(400, `${id}: an action is invoked with ?action=, not sent in an update`);
    if (userMixins.some((m) => categoryId(m) === id)) {
      if (!next.mixins.includes(id)) next.mixins.push(id);
      continue;
    }
    if (entity.mixins.some((m) => categoryId(m) === id)) continue;
    if (category.scheme.startsWith(USER_MIXIN_SCHEME_PREFIX)) throw new OcciError(400, `mixin ${id} is not defined (POST it to /-/ first)`);
    throw new OcciError(
      400,
      `mixin ${id}: only user mixins can be associated with a ${entity.kind} after it was created; ${category.term} is set at creation`,
    );
  }
  const known = new Set([...knownAttributes(entity), 'occi.core.source', 'occi.core.target']);
  for (const [name, value] of Object.entries(request.attributes)) {
    if ((MUTABLE as readonly string[]).includes(name)) {
      if (typeof value !== 'string') throw new OcciError(400, `${name}: must be a string`);
      next[name === 'occi.core.title' ? 'title' : 'summary'] = value;
      continue;
    }
    if (!known.has(name)) throw new OcciError(400, `attribute ${name} is not defined for ${entity.kind}`);
    const now = name === 'occi.core.source' || name === 'occi.core.target' ? linkEnd(entity, name) : entity.attributes[name];
    if (!same(value, now)) throw new OcciError(400, `${name} is immutable: it is ${JSON.stringify(now ?? null)} and cannot be changed`);
  }
  if (request.id !== undefined && request.id !== entity.id)
    throw new OcciError(400, `occi.core.id is immutable: it is ${JSON.stringify(entity.id)}`);
  return next;
}

function linkEnd(entity: Entity, name: string): string | undefined {
  if (!isLink(entity)) return undefined;
  return (name === 'occi.core.source' ? entity.source : entity.target).location;
}

function knownAttributes(entity: Entity): string[] {
  const categories: Category[] = [KINDS.entity, KINDS[entity.kind], ...Object.values(MIXINS), ...entity.mixins];
  return [...categories.flatMap((c) => c.attributes.map((a) => a.name)), ...Object.keys(entity.attributes)];
}

/** The entity as OCCI shows it: Lapis' view with what the gateway keeps laid over it. */
export function withState(entity: Entity, state: EntityState | undefined, userMixins: readonly Category[]): Entity {
  if (!state) return entity;
  const attributes = { ...entity.attributes };
  if (state.title !== undefined) attributes['occi.core.title'] = state.title;
  if (state.summary !== undefined) attributes['occi.core.summary'] = state.summary;
  // A mixin the project deleted since is no longer shown.
  const mixins = [...entity.mixins, ...userMixins.filter((m) => state.mixins.includes(categoryId(m)))];
  return { ...entity, attributes, mixins };
}

/** The state kept for a new entity from its create request: its title, summary and user mixins. */
export function initialState(request: OcciRequest, userMixins: readonly Category[]): EntityState | undefined {
  const title = request.attributes['occi.core.title'];
  const summary = request.attributes['occi.core.summary'];
  const mixins = request.categories.map((c) => c.scheme + c.term).filter((id) => userMixins.some((m) => categoryId(m) === id));
  if (typeof title !== 'string' && typeof summary !== 'string' && mixins.length === 0) return undefined;
  return { ...(typeof title === 'string' ? { title } : {}), ...(typeof summary === 'string' ? { summary } : {}), mixins };
}
