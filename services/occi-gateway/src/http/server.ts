// The OCCI 1.2 HTTP protocol (GFD.223) in front of the Gateway: routing, then for each request
// parse (request.ts) -> call the application (application/gateway.ts) -> render (render.ts).
// Locations in answers start with the configured public URL, never with the client's Host.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Authenticator, Logger } from '@lapis/platform';
import { LapisError } from '@lapis/platform';
import { trace } from '@opentelemetry/api';
import type { Credentials } from '../adapters/lapis';
import type { Gateway } from '../application/gateway';
import { decodeComponent, OcciError } from '../domain/entity';
import type { Category, EntityKind } from '../domain/model';
import { isServiceError, send, sendCategories, sendCollection, sendEntity, sendError, SERVER_HEADER } from './render';
import { sendEntityCollection } from './collections';
import { authenticate, categoryFilter, header, methodNotAllowed, parseRequest, readBody, requestLocations, type Exchange } from './request';

const KINDS: readonly EntityKind[] = ['compute', 'storage', 'storagelink', 'network', 'networkinterface'];

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
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\nServer: ${SERVER_HEADER}\r\nAllow: GET, POST, PUT, DELETE\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nCONNECT is not allowed here\n`,
    );
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
      const categories = (await gateway.categories(credentials)).filter(
        (c) => !filter.length || filter.some((f) => f === c.scheme + c.term || f === c.term),
      );
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
    return sendCollection(
      x,
      [],
      KINDS.map((k) => `${x.base}/${k}/`),
    );
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
    if (method === 'GET') return sendEntityCollection(x, await gateway.list(credentials, kind), body);
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
async function mixinCollection(
  x: Exchange,
  gateway: Gateway,
  credentials: Credentials,
  mixin: Category,
  method: string,
  body: string,
): Promise<void> {
  if (method === 'GET') return sendEntityCollection(x, await gateway.mixinMembers(credentials, mixin), body);
  const mode = method === 'POST' ? 'add' : method === 'PUT' ? 'replace' : method === 'DELETE' ? 'remove' : undefined;
  if (!mode) throw methodNotAllowed(method, 'GET, POST, PUT, DELETE');
  await gateway.updateMixinMembers(credentials, mixin, requestLocations(x, body), mode);
  return send(x, 200, []);
}

/** The request's span (made by the HTTP instrumentation) named after its route, as tracing views group them. */
function nameSpan(method: string, route: string): void {
  const span = trace.getActiveSpan();
  span?.updateName(`${method} ${route}`);
  span?.setAttribute('http.route', route);
}
