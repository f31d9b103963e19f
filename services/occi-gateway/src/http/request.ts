// Reading an OCCI request: authentication (a bearer token or Keystone's X-Auth-Token), the body
// (at most 1 MiB), the request in whatever rendering it comes (OCCI headers, text/plain,
// JSON), the entity locations it names, collection filters and pages.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Metadata } from '@grpc/grpc-js';
import type { Authenticator } from '@lapis/platform';
import { PROJECT_HEADER } from '@lapis/platform';
import type { Credentials } from '../adapters/lapis';
import { emptyRequest, OcciError, type Entity, type OcciRequest } from '../domain/entity';
import { collectionLocations, parseJson } from '../domain/json';
import { requestRendering } from '../domain/negotiate';
import { parseHeaders, parsePlainText, type Header } from '../domain/text';

const OCCI_HEADERS = ['category', 'x-occi-attribute', 'link', 'x-occi-location'];
/** The largest request body accepted (413 beyond). */
export const MAX_BODY = 1 << 20;
/** What a client may still send after its body was refused, read and dropped; beyond it the connection is cut. */
const MAX_DRAINED = 64 << 20;

/** One request and its answer, with the URL it names and the base URL of locations in answers. */
export interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  base: string;
}

/** The entity locations a request names: X-OCCI-Location (text), a uri-list, or a JSON collection. */
export function requestLocations(x: Exchange, body: string): string[] {
  const type = (header(x.req, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'text/uri-list')
    return body
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
  if (requestRendering(header(x.req, 'content-type'), body.trim() !== '') === 'application/occi+json') {
    return body.trim() ? collectionLocations(body) : [];
  }
  return parseRequest(x, body).locations;
}

export async function authenticate(req: IncomingMessage, authenticator: Authenticator): Promise<Credentials> {
  const bearer = asciiHeader(req, 'authorization');
  const keystone = asciiHeader(req, 'x-auth-token');
  const token = bearer ? bearer : keystone ? `Bearer ${keystone}` : undefined;
  const metadata = new Metadata();
  if (token) metadata.set('authorization', token);
  const project = asciiHeader(req, PROJECT_HEADER);
  if (project) metadata.set(PROJECT_HEADER, project);
  const caller = await authenticator.authenticate(metadata);
  return { token: caller.token, project: caller.project };
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value || undefined;
}

/** A header gRPC metadata can carry (printable ASCII); anything else is the client's error, not ours. */
function asciiHeader(req: IncomingMessage, name: string): string | undefined {
  const value = header(req, name);
  if (value !== undefined && !/^[\x20-\x7e]*$/.test(value))
    throw new OcciError(400, `${name} header: only printable ASCII characters are allowed`);
  return value;
}

/**
 * The body, at most MAX_BODY bytes. A larger one is refused with 413 at once, and the rest of
 * it is read and dropped (up to MAX_DRAINED) on a connection kept open: closing a socket with
 * unread data resets it, and the client would see the reset instead of the answer.
 */
export function readBody(req: IncomingMessage): Promise<string> {
  const tooLarge = (alreadyRead: number) => {
    let drained = alreadyRead;
    req.on('data', (chunk: Buffer) => {
      drained += chunk.length;
      if (drained > MAX_DRAINED) req.socket.destroy();
    });
    return new OcciError(413, `request body: larger than ${MAX_BODY} bytes`);
  };
  if (Number(req.headers['content-length']) > MAX_BODY) return Promise.reject(tooLarge(0));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY) return void chunks.push(chunk);
      req.off('data', onData);
      reject(tooLarge(size));
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** The request, whatever its rendering: OCCI headers, a text/plain body or JSON. */
export function parseRequest(x: Exchange, body: string): OcciRequest {
  const rendering = requestRendering(header(x.req, 'content-type'), body.trim() !== '');
  const fromHeaders = parseHeaders(occiRequestHeaders(x.req));
  if (rendering === 'application/occi+json') return body.trim() ? parseJson(body) : emptyRequest();
  if (rendering === 'text/plain' && body.trim()) {
    const fromBody = parsePlainText(body);
    return {
      categories: [...fromHeaders.categories, ...fromBody.categories],
      attributes: { ...fromHeaders.attributes, ...fromBody.attributes },
      links: [...fromHeaders.links, ...fromBody.links],
      locations: [...fromHeaders.locations, ...fromBody.locations],
    };
  }
  return fromHeaders;
}

function occiRequestHeaders(req: IncomingMessage): Header[] {
  return OCCI_HEADERS.flatMap((name) => {
    const value = header(req, name);
    return value === undefined ? [] : [[name, value] as Header];
  });
}

/** Filter by Category: the `category` query parameter (term or scheme#term) or Category headers. */
export function categoryFilter(x: Exchange, body: string): string[] {
  const fromQuery = x.url.searchParams.getAll('category');
  const fromRequest =
    x.req.headers.category || (body.trim() && requestRendering(header(x.req, 'content-type'), true) === 'text/plain')
      ? parseRequest(x, body).categories.map((c) => c.scheme + c.term)
      : [];
  return [...fromQuery, ...fromRequest];
}

/** Filter by attribute: X-OCCI-Attribute headers; an entity matches when every value is equal. */
export function attributeFilter(x: Exchange): Record<string, unknown> {
  return x.req.headers['x-occi-attribute'] ? parseHeaders([['X-OCCI-Attribute', header(x.req, 'x-occi-attribute')!]]).attributes : {};
}

export function filterEntities(entities: Entity[], categories: string[], attributes: Record<string, unknown>): Entity[] {
  return entities.filter((e) => {
    const own = [`http://schemas.ogf.org/occi/infrastructure#${e.kind}`, e.kind, ...e.mixins.flatMap((m) => [m.scheme + m.term, m.term])];
    if (categories.length && !categories.some((c) => own.includes(c))) return false;
    return Object.entries(attributes).every(([name, value]) => e.attributes[name] === value);
  });
}

/** `?page_size=N&page_token=T` over the collection, with `next` (X-OCCI-Next-Page) naming the next page. */
export function page(x: Exchange, entities: Entity[]): { entities: Entity[]; next?: string } {
  const size = Number(x.url.searchParams.get('page_size') ?? 0);
  if (!Number.isInteger(size) || size < 0) throw new OcciError(400, 'page_size: must be a whole number');
  if (!size) return { entities };
  const start = Number(x.url.searchParams.get('page_token') ?? 0);
  if (!Number.isInteger(start) || start < 0) throw new OcciError(400, 'page_token: not a token this server gave out');
  let next: string | undefined;
  if (start + size < entities.length) {
    const query = new URLSearchParams(x.url.searchParams);
    query.set('page_token', String(start + size));
    next = `${x.base}${x.url.pathname}?${query}`;
  }
  return { entities: entities.slice(start, start + size), next };
}

export function methodNotAllowed(method: string, allowed: string): OcciError {
  return new OcciError(405, `${method} is not allowed here; allowed: ${allowed}`);
}
