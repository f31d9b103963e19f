// The OCCI 1.2 HTTP protocol (GFD.223) in front of the Gateway: routing, authentication,
// content negotiation, renderings, and errors that are always a clear 4xx/5xx with a body.
// Locations in answers start with the configured public URL, never with the client's Host.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import type { Authenticator, Logger } from '@lapis/platform';
import { LapisError, PROJECT_HEADER } from '@lapis/platform';
import { Metadata } from '@grpc/grpc-js';
import { trace } from '@opentelemetry/api';
import type { Credentials } from './adapters/lapis';
import { decodeComponent, emptyRequest, OcciError, type Entity, type OcciRequest } from './domain/entity';
import { collectionJson, collectionLocations, entityJson, parseJson, queryInterfaceJson } from './domain/json';
import type { Category, EntityKind } from './domain/model';
import { requestRendering, responseRendering, type Rendering } from './domain/negotiate';
import { categoryHeaders, entityHeaders, locationHeaders, parseHeaders, parsePlainText, toPlainText, type Header } from './domain/text';
import type { Gateway } from './gateway';

export const SERVER_HEADER = 'lapis-occi/0.1 OCCI/1.2';
const KINDS: readonly EntityKind[] = ['compute', 'storage', 'storagelink', 'network', 'networkinterface'];
const OCCI_HEADERS = ['category', 'x-occi-attribute', 'link', 'x-occi-location'];
const MAX_BODY = 1 << 20;
/** What a client may still send after its body was refused, read and dropped; beyond it the connection is cut. */
const MAX_DRAINED = 64 << 20;

const HTTP_OF_GRPC: Partial<Record<grpcStatus, number>> = {
  [grpcStatus.INVALID_ARGUMENT]: 400,
  [grpcStatus.OUT_OF_RANGE]: 400,
  [grpcStatus.UNAUTHENTICATED]: 401,
  [grpcStatus.PERMISSION_DENIED]: 403,
  [grpcStatus.NOT_FOUND]: 404,
  [grpcStatus.ALREADY_EXISTS]: 409,
  [grpcStatus.FAILED_PRECONDITION]: 409,
  [grpcStatus.ABORTED]: 409,
  [grpcStatus.RESOURCE_EXHAUSTED]: 429,
  [grpcStatus.UNIMPLEMENTED]: 501,
  [grpcStatus.UNAVAILABLE]: 503,
  [grpcStatus.DEADLINE_EXCEEDED]: 504,
};

interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  base: string;
}

/**
 * `publicUrl`: the base URL clients reach the gateway at; empty: http://<listen address>, for a
 * gateway nobody reaches through a proxy (the Host header is the client's word, so never used).
 */
export function createOcciServer(gateway: Gateway, authenticator: Authenticator, log: Logger, publicUrl = ''): Server {
  const server = createServer((req, res) => {
    const base = publicUrl || listenUrl(server.address() as AddressInfo);
    const url = requestTarget(req.url ?? '/');
    const exchange = { req, res, url: url ?? new URL('http://occi.invalid/'), base };
    if (!url) return sendError(exchange, new OcciError(400, 'request target: not an origin-form path or an absolute URL'));
    handle(exchange, gateway, authenticator).catch((error) => {
      if (!(error instanceof OcciError) && !(error instanceof LapisError) && !isServiceError(error)) {
        log.error({ err: error, method: req.method, path: url.pathname }, 'OCCI request failed');
      }
      sendError(exchange, error);
    });
  });
  // CONNECT has no meaning here; without a listener Node would drop the connection unanswered.
  server.on('connect', (_req: IncomingMessage, socket) => {
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\nServer: ${SERVER_HEADER}\r\nAllow: GET, POST, PUT, DELETE\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nCONNECT is not allowed here\n`);
  });
  return server;
}

/** http://host:port of a listening socket; a wildcard address is reached through loopback. */
export function listenUrl(address: AddressInfo): string {
  const host = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address;
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}

/**
 * The request target as a URL: origin-form ("/compute/x?y", where "//x" stays a path rather
 * than naming a host) or absolute-form (whose host is ignored); anything else is undefined.
 */
function requestTarget(target: string): URL | undefined {
  try {
    if (target.startsWith('/')) return new URL(`http://occi.invalid${target}`);
    const url = new URL(target);
    return /^https?:$/.test(url.protocol) ? url : undefined;
  } catch {
    return undefined;
  }
}

async function handle(x: Exchange, gateway: Gateway, authenticator: Authenticator): Promise<void> {
  x.res.setHeader('Server', SERVER_HEADER);
  const version = /OCCI\/(\d+)\.(\d+)/.exec(x.req.headers['user-agent'] ?? '');
  if (version && (Number(version[1]) > 1 || (Number(version[1]) === 1 && Number(version[2]) > 2))) {
    throw new OcciError(501, `this server speaks OCCI/1.2, the client asks for OCCI/${version[1]}.${version[2]}`);
  }
  const credentials = await authenticate(x.req, authenticator);
  const body = await readBody(x.req);
  const path = x.url.pathname;
  const method = x.req.method ?? 'GET';

  if (path === '/-/' || path === '/.well-known/org/ogf/occi/-/') {
    nameSpan(method, path);
    if (method === 'GET') {
      const filter = categoryFilter(x, body);
      const categories = (await gateway.categories(credentials)).filter((c) => !filter.length || filter.some((f) => f === c.scheme + c.term || f === c.term));
      return sendCategories(x, categories);
    }
    if (method === 'POST' || method === 'PUT') {
      await gateway.addMixins(credentials, parseRequest(x, body));
      return send(x, 200, []);
    }
    if (method === 'DELETE') {
      await gateway.removeMixins(credentials, parseRequest(x, body));
      return send(x, 200, []);
    }
    throw methodNotAllowed(method, 'GET, POST, PUT, DELETE');
  }

  if (path === '/') {
    nameSpan(method, path);
    if (method !== 'GET') throw methodNotAllowed(method, 'GET');
    return sendCollection(x, [], KINDS.map((k) => `${x.base}/${k}/`));
  }

  const match = /^\/([a-z]+)\/([^/]*)$/.exec(path);
  const kind = match?.[1] as EntityKind | undefined;
  if (!match || !kind || !KINDS.includes(kind)) {
    const mixin = path.endsWith('/') ? await gateway.mixinAt(credentials, path) : undefined;
    if (!mixin) throw new OcciError(404, `${path} is not an OCCI location of this server`);
    nameSpan(method, '/{mixin}/');
    return mixinCollection(x, gateway, credentials, mixin, method, body);
  }
  const id = match[2] ? decodeComponent(match[2], `${kind} id in the path`) : undefined;
  nameSpan(method, `/${kind}/${id ? '{id}' : ''}`);
  const action = x.url.searchParams.get('action');

  if (!id) {
    if (method === 'GET') {
      const entities = filterEntities(await gateway.list(credentials, kind), categoryFilter(x, body), attributeFilter(x));
      return sendCollection(x, page(x, entities), undefined);
    }
    if (method === 'POST' && action) {
      // An action on a collection applies to every entity in it.
      await gateway.invokeAll(credentials, kind, action, parseRequest(x, body));
      return send(x, 200, []);
    }
    if (method === 'POST') {
      const created = await gateway.create(credentials, kind, parseRequest(x, body), header(x.req, 'x-request-id'));
      x.res.setHeader('Location', `${x.base}${created.location}`);
      return sendEntity(x, created, 201);
    }
    if (method === 'DELETE') {
      for (const entity of await gateway.list(credentials, kind)) await gateway.delete(credentials, kind, entity.id);
      return send(x, 200, []);
    }
    throw methodNotAllowed(method, 'GET, POST, DELETE');
  }

  if (method === 'GET') return sendEntity(x, await gateway.get(credentials, kind, id), 200);
  if (method === 'POST' && action) {
    await gateway.invoke(credentials, kind, id, action, parseRequest(x, body));
    return sendEntity(x, await gateway.get(credentials, kind, id), 200);
  }
  if (method === 'DELETE') {
    await gateway.delete(credentials, kind, id);
    return send(x, 200, []);
  }
  if (method === 'PUT' || method === 'POST') {
    // GFD.223 4.4: POST updates what it names, PUT replaces the entity's mutable parts.
    const updated = await gateway.update(credentials, kind, id, parseRequest(x, body), method === 'PUT' ? 'full' : 'partial');
    return sendEntity(x, updated, 200);
  }
  throw methodNotAllowed(method, 'GET, POST, PUT, DELETE');
}

/** A user mixin's collection (GFD.223 4.3): the entities tagged with it, changed by location. */
async function mixinCollection(x: Exchange, gateway: Gateway, credentials: Credentials, mixin: Category, method: string, body: string): Promise<void> {
  if (method === 'GET') return sendCollection(x, page(x, await gateway.mixinMembers(credentials, mixin)), undefined);
  const mode = method === 'POST' ? 'add' : method === 'PUT' ? 'replace' : method === 'DELETE' ? 'remove' : undefined;
  if (!mode) throw methodNotAllowed(method, 'GET, POST, PUT, DELETE');
  await gateway.updateMixinMembers(credentials, mixin, requestLocations(x, body), mode);
  return send(x, 200, []);
}

/** The entity locations a request names: X-OCCI-Location (text), a uri-list, or a JSON collection. */
function requestLocations(x: Exchange, body: string): string[] {
  const type = (header(x.req, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'text/uri-list') return body.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (requestRendering(header(x.req, 'content-type'), body.trim() !== '') === 'application/occi+json') {
    return body.trim() ? collectionLocations(body) : [];
  }
  return parseRequest(x, body).locations;
}

/** The request's span (made by the HTTP instrumentation) named after its route, as tracing views group them. */
function nameSpan(method: string, route: string): void {
  const span = trace.getActiveSpan();
  span?.updateName(`${method} ${route}`);
  span?.setAttribute('http.route', route);
}

async function authenticate(req: IncomingMessage, authenticator: Authenticator): Promise<Credentials> {
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

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value || undefined;
}

/** A header gRPC metadata can carry (printable ASCII); anything else is the client's error, not ours. */
function asciiHeader(req: IncomingMessage, name: string): string | undefined {
  const value = header(req, name);
  if (value !== undefined && !/^[\x20-\x7e]*$/.test(value)) throw new OcciError(400, `${name} header: only printable ASCII characters are allowed`);
  return value;
}

/**
 * The body, at most MAX_BODY bytes. A larger one is refused with 413 at once, and the rest of
 * it is read and dropped (up to MAX_DRAINED) on a connection kept open: closing a socket with
 * unread data resets it, and the client would see the reset instead of the answer.
 */
function readBody(req: IncomingMessage): Promise<string> {
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
function parseRequest(x: Exchange, body: string): OcciRequest {
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
function categoryFilter(x: Exchange, body: string): string[] {
  const fromQuery = x.url.searchParams.getAll('category');
  const fromRequest = x.req.headers.category || (body.trim() && requestRendering(header(x.req, 'content-type'), true) === 'text/plain')
    ? parseRequest(x, body).categories.map((c) => c.scheme + c.term)
    : [];
  return [...fromQuery, ...fromRequest];
}

/** Filter by attribute: X-OCCI-Attribute headers; an entity matches when every value is equal. */
function attributeFilter(x: Exchange): Record<string, unknown> {
  return x.req.headers['x-occi-attribute'] ? parseHeaders([['X-OCCI-Attribute', header(x.req, 'x-occi-attribute')!]]).attributes : {};
}

function filterEntities(entities: Entity[], categories: string[], attributes: Record<string, unknown>): Entity[] {
  return entities.filter((e) => {
    const own = [`http://schemas.ogf.org/occi/infrastructure#${e.kind}`, e.kind, ...e.mixins.flatMap((m) => [m.scheme + m.term, m.term])];
    if (categories.length && !categories.some((c) => own.includes(c))) return false;
    return Object.entries(attributes).every(([name, value]) => e.attributes[name] === value);
  });
}

/** `?page_size=N&page_token=T` over the collection, with X-OCCI-Next-Page naming the next page. */
function page(x: Exchange, entities: Entity[]): Entity[] {
  const size = Number(x.url.searchParams.get('page_size') ?? 0);
  if (!Number.isInteger(size) || size < 0) throw new OcciError(400, 'page_size: must be a whole number');
  if (!size) return entities;
  const start = Number(x.url.searchParams.get('page_token') ?? 0);
  if (!Number.isInteger(start) || start < 0) throw new OcciError(400, 'page_token: not a token this server gave out');
  if (start + size < entities.length) {
    const query = new URLSearchParams(x.url.searchParams);
    query.set('page_token', String(start + size));
    x.res.setHeader('X-OCCI-Next-Page', `${x.base}${x.url.pathname}?${query}`);
  }
  return entities.slice(start, start + size);
}

function methodNotAllowed(method: string, allowed: string): OcciError {
  return new OcciError(405, `${method} is not allowed here; allowed: ${allowed}`);
}

function sendCategories(x: Exchange, categories: Category[]): void {
  const rendering = responseRendering(header(x.req, 'accept'), false);
  if (rendering === 'application/occi+json') return sendJson(x, 200, queryInterfaceJson(categories));
  send(x, 200, categoryHeaders(categories), rendering);
}

function sendEntity(x: Exchange, entity: Entity, status: number): void {
  const rendering = responseRendering(header(x.req, 'accept'), false);
  if (rendering === 'application/occi+json') return sendJson(x, status, entityJson(entity));
  send(x, status, entityHeaders(entity), rendering);
}

function sendCollection(x: Exchange, entities: Entity[], locations: string[] | undefined): void {
  const rendering = responseRendering(header(x.req, 'accept'), true);
  const uris = locations ?? entities.map((e) => `${x.base}${e.location}`);
  if (rendering === 'application/occi+json') return sendJson(x, 200, locations ? { locations: uris } : collectionJson(entities));
  if (rendering === 'text/uri-list') {
    x.res.writeHead(200, { 'Content-Type': 'text/uri-list' });
    return void x.res.end(uris.map((u) => `${u}\r\n`).join(''));
  }
  if (rendering === 'text/plain') {
    // An empty collection is no lines at all (GFD.229), not a word that reads as one.
    x.res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    return void x.res.end(toPlainText(locationHeaders(uris)));
  }
  send(x, 200, locationHeaders(uris), rendering);
}

function send(x: Exchange, status: number, headers: Header[], rendering: Rendering = responseRendering(header(x.req, 'accept'), true)): void {
  if (rendering === 'text/occi') {
    for (const name of new Set(headers.map(([n]) => n))) {
      // Header values are bytes: text beyond Latin-1 goes as its UTF-8 bytes (control characters are escaped by the rendering).
      x.res.setHeader(name, headers.filter(([n]) => n === name).map(([, v]) => Buffer.from(v, 'utf8').toString('latin1')));
    }
    x.res.writeHead(status, { 'Content-Type': 'text/occi' });
    return void x.res.end('OK\n');
  }
  if (rendering === 'application/occi+json') return sendJson(x, status, {});
  x.res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  x.res.end(headers.length ? toPlainText(headers) : 'OK\n');
}

function sendJson(x: Exchange, status: number, body: unknown): void {
  x.res.writeHead(status, { 'Content-Type': 'application/occi+json' });
  x.res.end(JSON.stringify(body));
}

function sendError(x: Exchange, error: unknown): void {
  let status: number;
  let message: string;
  if (error instanceof OcciError) ({ status, message } = error);
  else if (error instanceof LapisError) {
    status = HTTP_OF_GRPC[error.code] ?? 502;
    message = error.message;
  } else if (isServiceError(error)) {
    // A Lapis service said no: its code and words, or 502 for what has no HTTP meaning.
    status = HTTP_OF_GRPC[error.code] ?? 502;
    message = error.details || `a Lapis service answered ${grpcStatus[error.code]}`;
  } else {
    status = 500;
    message = 'internal error in the OCCI gateway (logged)';
  }
  if (x.res.headersSent) return void x.res.destroy();
  x.res.setHeader('Server', SERVER_HEADER);
  if (status === 401) x.res.setHeader('WWW-Authenticate', 'Bearer realm="lapis", error="invalid_token"');
  const rendering = errorRendering(header(x.req, 'accept'));
  if (rendering === 'application/occi+json') {
    x.res.writeHead(status, { 'Content-Type': 'application/occi+json' });
    return void x.res.end(JSON.stringify({ error: { status, message } }));
  }
  // text/occi: the message is the body, as with text/plain, under the type the client asked for.
  x.res.writeHead(status, { 'Content-Type': rendering === 'text/occi' ? 'text/occi' : 'text/plain; charset=utf-8' });
  x.res.end(`${message}\n`);
}

/** The rendering of an error: what the client asked for, text/plain when that cannot be told. */
function errorRendering(accept: string | undefined): Rendering {
  try {
    return responseRendering(accept, true);
  } catch {
    return /json/.test(accept ?? '') ? 'application/occi+json' : 'text/plain';
  }
}


function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as ServiceError).code === 'number' && 'metadata' in error;
}
