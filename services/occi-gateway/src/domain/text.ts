// The OCCI text renderings (GFD.229): text/plain (headers in the body, one per line) and
// text/occi (the same in HTTP headers). Quoted values may hold commas, semicolons and
// escaped quotes; the tokenizer respects them.
import {
  isLink,
  OcciError,
  type AttributeValue,
  type Attributes,
  type CategoryRef,
  type Entity,
  type LinkRef,
  type OcciRequest,
} from './entity';
import { categoryId, KINDS, type Category } from './model';

export type Header = [name: string, value: string];

/** A quoted string; control characters as \uXXXX, so a value never breaks a line or a header. */
const quote = (value: string) =>
  `"${value
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;

export function renderValue(value: AttributeValue): string {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return quote(typeof value === 'string' ? value : JSON.stringify(value));
}

/** A category as the query interface shows it: every field it has. */
export function renderCategory(category: Category, full = true): string {
  const parts = [category.term, `scheme=${quote(category.scheme)}`, `class=${quote(category.class)}`];
  if (full) {
    parts.push(`title=${quote(category.title)}`);
    const rel = category.parent ?? category.depends?.join(' ');
    if (rel) parts.push(`rel=${quote(rel)}`);
    if (category.location) parts.push(`location=${quote(category.location)}`);
    if (category.attributes.length > 0) {
      const attributes = category.attributes.map((a) => {
        const flags = [a.required ? 'required' : '', a.mutable ? '' : 'immutable'].filter(Boolean).join(' ');
        return flags ? `${a.name}{${flags}}` : a.name;
      });
      parts.push(`attributes=${quote(attributes.join(' '))}`);
    }
    if (category.actions?.length) parts.push(`actions=${quote(category.actions.join(' '))}`);
  }
  return parts.join('; ');
}

function renderLink(link: Entity & { target: { location: string; kind: string } }): string {
  const parts = [`<${link.target.location}>`, `rel=${quote(link.target.kind)}`, `self=${quote(link.location)}`];
  parts.push(`category=${quote([categoryId(KINDS[link.kind]), ...link.mixins.map(categoryId)].join(' '))}`);
  for (const [name, value] of Object.entries(link.attributes)) parts.push(`${name}=${renderValue(value)}`);
  return parts.join('; ');
}

/** An entity as header lines: its categories, links, actions and attributes. */
export function entityHeaders(entity: Entity): Header[] {
  const headers: Header[] = [['Category', renderCategory(KINDS[entity.kind], false)]];
  for (const mixin of entity.mixins) headers.push(['Category', renderCategory(mixin, false)]);
  for (const link of entity.links) headers.push(['Link', renderLink(link)]);
  for (const action of entity.actions) {
    headers.push(['Link', `<${entity.location}?action=${action.term}>; rel=${quote(categoryId(action))}`]);
  }
  if (isLink(entity)) {
    headers.push(['X-OCCI-Attribute', `occi.core.source=${quote(entity.source.location)}`]);
    headers.push(['X-OCCI-Attribute', `occi.core.target=${quote(entity.target.location)}`]);
  }
  for (const [name, value] of Object.entries(entity.attributes)) headers.push(['X-OCCI-Attribute', `${name}=${renderValue(value)}`]);
  return headers;
}

export const locationHeaders = (locations: string[]): Header[] => locations.map((l) => ['X-OCCI-Location', l]);

export const categoryHeaders = (categories: Category[]): Header[] => categories.map((c) => ['Category', renderCategory(c)]);

/** text/plain: one "Name: value" line per header. */
export const toPlainText = (headers: Header[]) => headers.map(([name, value]) => `${name}: ${value}\n`).join('');

// --- parsing -------------------------------------------------------------------------

/** Splits on `separator` outside quoted strings; backslash escapes inside quotes. */
export function splitOutsideQuotes(text: string, separator: ',' | ';'): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted && c === '\\' && i + 1 < text.length) {
      current += c + text[++i];
    } else if (c === '"') {
      quoted = !quoted;
      current += c;
    } else if (c === separator && !quoted) {
      parts.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  if (quoted) throw new OcciError(400, `unterminated quoted string in ${JSON.stringify(text.slice(0, 200))}`);
  parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

function unquote(raw: string, what: string): string {
  const value = raw.trim();
  if (!value.startsWith('"')) return value;
  if (value.length < 2 || !value.endsWith('"'))
    throw new OcciError(400, `${what}: bad quoted string ${JSON.stringify(value.slice(0, 200))}`);
  return value
    .slice(1, -1)
    .replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_, e: string) => (e.length === 5 ? String.fromCharCode(parseInt(e.slice(1), 16)) : e));
}

/** `name=value` with value a quoted string, a number or a boolean. */
export function parseAttribute(text: string): [string, AttributeValue] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new OcciError(400, `X-OCCI-Attribute ${JSON.stringify(text.slice(0, 200))} is not name=value`);
  const name = text.slice(0, eq).trim();
  if (!/^[a-zA-Z][a-zA-Z0-9_.-]*$/.test(name))
    throw new OcciError(400, `X-OCCI-Attribute name ${JSON.stringify(name.slice(0, 100))} is not valid`);
  const raw = text.slice(eq + 1).trim();
  if (raw.startsWith('"')) return [name, unquote(raw, `attribute ${name}`)];
  if (raw === 'true' || raw === 'false') return [name, raw === 'true'];
  if (raw !== '' && Number.isFinite(Number(raw))) return [name, Number(raw)];
  throw new OcciError(
    400,
    `attribute ${name}: value ${JSON.stringify(raw.slice(0, 100))} is neither a quoted string, a number nor a boolean`,
  );
}

function parameters(parts: string[], what: string): Record<string, string> {
  const params: Record<string, string> = {};
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new OcciError(400, `${what}: parameter ${JSON.stringify(part.slice(0, 100))} is not key="value"`);
    params[part.slice(0, eq).trim().toLowerCase()] = unquote(part.slice(eq + 1), what);
  }
  return params;
}

export function parseCategory(text: string): CategoryRef {
  const [term, ...rest] = splitOutsideQuotes(text, ';');
  if (!term || !/^[a-zA-Z0-9_.:-]+$/.test(term))
    throw new OcciError(400, `Category ${JSON.stringify(text.slice(0, 200))}: missing or bad term`);
  const params = parameters(rest, `Category ${term}`);
  if (!params.scheme) throw new OcciError(400, `Category ${term}: scheme is required`);
  return { term, scheme: params.scheme, ...pick(params, ['class', 'title', 'rel', 'location', 'attributes', 'actions']) };
}

function pick(params: Record<string, string>, keys: Array<keyof CategoryRef>): Partial<CategoryRef> {
  return Object.fromEntries(keys.filter((k) => params[k] !== undefined).map((k) => [k, params[k]]));
}

export function parseLink(text: string): LinkRef {
  const [target, ...rest] = splitOutsideQuotes(text, ';');
  const match = /^<([^<>]+)>$/.exec(target ?? '');
  if (!match) throw new OcciError(400, `Link ${JSON.stringify(text.slice(0, 200))}: must start with <target>`);
  const link: LinkRef = { target: match[1]!, categories: [], attributes: {} };
  for (const part of rest) {
    const [name, value] = parseAttribute(part);
    if (name === 'rel' || name === 'self') link[name] = String(value);
    else if (name === 'category') link.categories = String(value).split(/\s+/).filter(Boolean);
    else link.attributes[name] = value;
  }
  return link;
}

/** Parses OCCI headers (from text/occi request headers or text/plain body lines). */
export function parseHeaders(headers: Header[]): OcciRequest {
  const request: OcciRequest = { categories: [], attributes: {} as Attributes, links: [], locations: [] };
  for (const [rawName, value] of headers) {
    const name = rawName.toLowerCase();
    if (name === 'category') for (const c of splitOutsideQuotes(value, ',')) request.categories.push(parseCategory(c));
    else if (name === 'x-occi-attribute') {
      for (const a of splitOutsideQuotes(value, ',')) {
        const [key, v] = parseAttribute(a);
        request.attributes[key] = v;
      }
    } else if (name === 'link') for (const l of splitOutsideQuotes(value, ',')) request.links.push(parseLink(l));
    else if (name === 'x-occi-location') request.locations.push(...splitOutsideQuotes(value, ','));
    else throw new OcciError(400, `unknown OCCI header "${rawName.slice(0, 100)}"`);
  }
  return request;
}

/** The text/plain body: "Name: value" lines; blank lines are ignored. */
export function parsePlainText(body: string): OcciRequest {
  const headers: Header[] = [];
  body.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new OcciError(400, `line ${i + 1}: expected "Name: value", got ${JSON.stringify(line.slice(0, 200))}`);
    headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  });
  return parseHeaders(headers);
}
