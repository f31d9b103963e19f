// An OCCI entity as the renderings see it, whatever Lapis resource it came from.
import type { Category, EntityKind } from './model';

export type AttributeValue = string | number | boolean | string[] | Record<string, string>;
export type Attributes = Record<string, AttributeValue>;

export interface Entity {
  kind: EntityKind;
  id: string;
  /** Path of the entity, for example "/compute/0f3c...". */
  location: string;
  mixins: Category[];
  attributes: Attributes;
  /** Actions that can be invoked on the entity now. */
  actions: Category[];
  /** Resources only: their links (storage links, network interfaces). */
  links: LinkEntity[];
}

export interface LinkEnd {
  location: string;
  kind: string;
}

export interface LinkEntity extends Entity {
  source: LinkEnd;
  target: LinkEnd;
}

export const isLink = (entity: Entity): entity is LinkEntity => 'source' in entity && 'target' in entity;

/** What a client sent: the same for every rendering once parsed. */
export interface CategoryRef {
  term: string;
  scheme: string;
  class?: string;
  title?: string;
  rel?: string;
  location?: string;
  attributes?: string;
  actions?: string;
}

export interface LinkRef {
  /** The link's target (text: `<target>`). */
  target: string;
  rel?: string;
  /** The link's own location, if it has one. */
  self?: string;
  /** The link's kind and mixins (ids). */
  categories: string[];
  attributes: Attributes;
}

export interface OcciRequest {
  categories: CategoryRef[];
  attributes: Attributes;
  links: LinkRef[];
  locations: string[];
  /** JSON action invocation: the action id. */
  action?: string;
  /** JSON link creation: the link's source and target. */
  source?: string;
  target?: string;
  id?: string;
}

export const emptyRequest = (): OcciRequest => ({ categories: [], attributes: {}, links: [], locations: [] });

/** A client error with the HTTP status it maps to. */
export class OcciError extends Error {
  override name = 'OcciError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A percent-encoded path segment or location part; a bad escape is the client's error (400) naming `what`. */
export function decodeComponent(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new OcciError(400, `${what}: ${JSON.stringify(text.slice(0, 200))} has a bad percent-escape`);
  }
}
