// Locations in requests: entity locations ("/compute/ID", with or without the base URL), user
// mixins' collection paths, and the attributes that name them. A bad one is the client's error.
import { decodeComponent, OcciError, type Attributes } from './entity';
import { KINDS, type EntityKind } from './model';

export const ENTITY_KINDS: readonly EntityKind[] = ['compute', 'storage', 'storagelink', 'network', 'networkinterface'];

/** A collection path as stored and compared: no scheme and host, one trailing slash. */
export const normalizeLocation = (path: string) => path.replace(/^https?:\/\/[^/]+/, '').replace(/\/*$/, '/');

/** A user mixin's collection: a path of its own, not a kind's collection nor the query interface. */
export function isMixinLocation(location: string): boolean {
  const path = normalizeLocation(location);
  if (!/^\/[a-zA-Z0-9_.~-]+(\/[a-zA-Z0-9_.~-]+)*\/$/.test(path)) return false;
  const first = path.split('/')[1]!;
  return !['-', '.well-known', ...Object.values(KINDS).map((k) => k.term)].includes(first);
}

/** The kind and id an entity location names ("/compute/ID", with or without the base URL). */
export function entityLocation(location: string): { kind: EntityKind; id: string } {
  const path = location.trim().replace(/^https?:\/\/[^/]+/, '');
  const match = /^\/?([a-z]+)\/([^/?#]+)\/?$/.exec(path);
  const kind = match?.[1] as EntityKind | undefined;
  if (!match || !kind || !ENTITY_KINDS.includes(kind))
    throw new OcciError(400, `X-OCCI-Location: ${JSON.stringify(location.slice(0, 200))} is not an entity location`);
  return { kind, id: decodeComponent(match[2]!, 'X-OCCI-Location') };
}

/** The id of a `/kind/ID` location named by `what` (an attribute, say). */
export function idFromLocation(location: string, kind: EntityKind, what: string): string {
  const path = location.replace(/^https?:\/\/[^/]+/, '');
  const match = new RegExp(`^/?${kind}/([^/?#]+)/?$`).exec(path);
  if (!match) throw new OcciError(400, `${what}: ${JSON.stringify(location.slice(0, 200))} is not a /${kind}/ID location`);
  return decodeComponent(match[1]!, what);
}

/** A required string attribute. */
export function attributeString(attributes: Attributes, name: string): string {
  const value = attributes[name];
  if (typeof value !== 'string' || value === '') throw new OcciError(400, `${name}: required`);
  return value;
}
