// The OCCI JSON rendering (GFD.226): entities, collections, the query interface, and
// what clients send (an entity to create, an action to invoke, mixins to define).
import { isLink, OcciError, type AttributeValue, type Attributes, type Entity, type OcciRequest } from './entity';
import { categoryId, KINDS, type AttributeDefinition, type Category } from './model';

type Json = Record<string, unknown>;

export function entityJson(entity: Entity): Json {
  const json: Json = {
    kind: categoryId(KINDS[entity.kind]),
    id: entity.id,
    location: entity.location,
    attributes: entity.attributes,
  };
  if (entity.mixins.length > 0) json.mixins = entity.mixins.map(categoryId);
  if (entity.actions.length > 0) json.actions = entity.actions.map(categoryId);
  const title = entity.attributes['occi.core.title'];
  if (typeof title === 'string') json.title = title;
  const summary = entity.attributes['occi.core.summary'];
  if (typeof summary === 'string' && !isLink(entity)) json.summary = summary;
  if (isLink(entity)) {
    json.source = entity.source;
    json.target = entity.target;
  } else if (entity.links.length > 0) {
    json.links = entity.links.map(entityJson);
  }
  return json;
}

/** A collection (GFD.226): both lists, empty ones too, so an empty collection still reads as one. */
export function collectionJson(entities: Entity[]): Json {
  return { resources: entities.filter((e) => !isLink(e)).map(entityJson), links: entities.filter(isLink).map(entityJson) };
}

function attributeDefinitions(definitions: readonly AttributeDefinition[]): Json {
  return Object.fromEntries(
    definitions.map((a) => {
      const type = a.type === 'integer' ? 'number' : a.type;
      const definition: Json = { mutable: a.mutable, required: a.required, type };
      if (a.default !== undefined) definition.default = a.default;
      if (a.description) definition.description = a.description;
      if (a.enum) definition.pattern = { enum: a.enum };
      return [a.name, definition];
    }),
  );
}

function categoryJson(category: Category): Json {
  const json: Json = { term: category.term, scheme: category.scheme, title: category.title };
  if (category.attributes.length > 0) json.attributes = attributeDefinitions(category.attributes);
  if (category.actions?.length) json.actions = category.actions;
  if (category.parent) json.parent = category.parent;
  if (category.depends?.length) json.depends = category.depends;
  if (category.applies?.length) json.applies = category.applies;
  if (category.location) json.location = category.location;
  return json;
}

export function queryInterfaceJson(categories: Category[]): Json {
  const of = (kind: Category['class']) => categories.filter((c) => c.class === kind).map(categoryJson);
  return { kinds: of('kind'), mixins: of('mixin'), actions: of('action') };
}

// --- parsing -------------------------------------------------------------------------

function asObject(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new OcciError(400, `${what} must be a JSON object`);
  return value as Json;
}

function asString(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') throw new OcciError(400, `${what} must be a non-empty string`);
  return value;
}

function asAttributes(value: unknown, what: string): Attributes {
  if (value === undefined) return {};
  const object = asObject(value, what);
  for (const [name, v] of Object.entries(object)) {
    const ok =
      ['string', 'number', 'boolean'].includes(typeof v) ||
      (Array.isArray(v) && v.every((x) => typeof x === 'string')) ||
      (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string'));
    if (!ok) throw new OcciError(400, `${what}.${name}: a string, number, boolean, list of strings or map of strings`);
  }
  return object as Record<string, AttributeValue>;
}

/** The locations of the entities a JSON collection names: each one's location, or /<kind term>/<id>. */
export function collectionLocations(body: string): string[] {
  const doc = parseBoundedJson(body, 'body');
  const object = asObject(doc, 'body');
  return (['resources', 'links'] as const).flatMap((part) => {
    const list = object[part] ?? [];
    if (!Array.isArray(list)) throw new OcciError(400, `${part} must be a list`);
    return list.map((item, i) => {
      const entity = asObject(item, `${part}[${i}]`);
      if (typeof entity.location === 'string' && entity.location) return entity.location;
      const { term } = splitCategoryId(asString(entity.kind, `${part}[${i}].kind`), `${part}[${i}].kind`);
      return `/${term}/${encodeURIComponent(asString(entity.id, `${part}[${i}].id`))}`;
    });
  });
}

/** Splits "scheme#term" into a category reference. */
export function splitCategoryId(id: string, what: string): { scheme: string; term: string } {
  const hash = id.lastIndexOf('#');
  if (hash < 0 || hash === id.length - 1) throw new OcciError(400, `${what}: ${JSON.stringify(id.slice(0, 200))} is not scheme#term`);
  return { scheme: id.slice(0, hash + 1), term: id.slice(hash + 1) };
}

/**
 * How deep a body may nest: OCCI's JSON goes 4 levels deep (resources, an entity, its attributes,
 * a map value); what walks a parsed body (String() of a list, for one) recurses, and
 * JSON.parse itself takes a while on a body nested a million deep.
 */
export const MAX_JSON_DEPTH = 32;

/**
 * Where a JSON text first nests deeper than `max` (an offset), if it does: a scan of its brackets
 * outside strings, before JSON.parse builds anything.
 */
export function jsonTooDeepAt(text: string, max = MAX_JSON_DEPTH): number | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92)
        i++; // backslash: the next character is escaped
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > max) return i;
    } else if (c === 93 || c === 125) depth--;
  }
  return undefined;
}

/** JSON.parse with the depth bound first: 400 naming `what` (and where) for anything else. */
export function parseBoundedJson(text: string, what: string): unknown {
  const tooDeep = jsonTooDeepAt(text);
  if (tooDeep !== undefined) throw new OcciError(400, `${what}:${lineColumn(text, tooDeep)}: JSON nested more than ${MAX_JSON_DEPTH} deep`);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new OcciError(400, `${what} is not JSON: ${(error as Error).message}`);
  }
}

/** 1-based line and column of an offset. */
function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return `${line}:${offset - before.lastIndexOf('\n')}`;
}

/** An entity, a collection of one entity, an action invocation, or mixin definitions. */
export function parseJson(body: string): OcciRequest {
  const doc = parseBoundedJson(body, 'body');
  const object = asObject(doc, 'body');
  if (object.action !== undefined) {
    const action = asString(object.action, 'action');
    return { categories: [], attributes: asAttributes(object.attributes, 'attributes'), links: [], locations: [], action };
  }
  if (Array.isArray(object.mixins) && object.kind === undefined) {
    return {
      categories: object.mixins.map((m, i) => {
        const mixin = asObject(m, `mixins[${i}]`);
        return {
          term: asString(mixin.term, `mixins[${i}].term`),
          scheme: asString(mixin.scheme, `mixins[${i}].scheme`),
          class: 'mixin',
          ...(typeof mixin.title === 'string' ? { title: mixin.title } : {}),
          ...(typeof mixin.location === 'string' ? { location: mixin.location } : {}),
          ...(Array.isArray(mixin.depends) ? { rel: mixin.depends.map(String).join(' ') } : {}),
        };
      }),
      attributes: {},
      links: [],
      locations: [],
    };
  }
  const entity = Array.isArray(object.resources) && object.resources.length === 1 ? asObject(object.resources[0], 'resources[0]') : object;
  const kind = splitCategoryId(asString(entity.kind, 'kind'), 'kind');
  const mixins = entity.mixins === undefined ? [] : Array.isArray(entity.mixins) ? entity.mixins : null;
  if (!mixins) throw new OcciError(400, 'mixins must be a list of scheme#term strings');
  const request: OcciRequest = {
    categories: [
      { ...kind, class: 'kind' },
      ...mixins.map((m, i) => ({ ...splitCategoryId(asString(m, `mixins[${i}]`), `mixins[${i}]`), class: 'mixin' })),
    ],
    attributes: asAttributes(entity.attributes, 'attributes'),
    links: [],
    locations: [],
  };
  if (typeof entity.title === 'string') request.attributes['occi.core.title'] ??= entity.title;
  if (typeof entity.summary === 'string') request.attributes['occi.core.summary'] ??= entity.summary;
  if (typeof entity.id === 'string') request.id = entity.id;
  const end = (value: unknown, what: string) =>
    typeof value === 'string' ? value : asString(asObject(value, what).location, `${what}.location`);
  if (entity.source !== undefined) request.source = end(entity.source, 'source');
  if (entity.target !== undefined) request.target = end(entity.target, 'target');
  if (entity.links !== undefined) {
    if (!Array.isArray(entity.links)) throw new OcciError(400, 'links must be a list');
    request.links = entity.links.map((l, i) => {
      const link = asObject(l, `links[${i}]`);
      return {
        target: end(link.target, `links[${i}].target`),
        categories: [asString(link.kind, `links[${i}].kind`), ...(Array.isArray(link.mixins) ? link.mixins.map(String) : [])],
        attributes: asAttributes(link.attributes, `links[${i}].attributes`),
      };
    });
  }
  return request;
}
