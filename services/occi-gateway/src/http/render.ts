// Rendering answers in what the client accepts (text/plain, text/occi, application/occi+json,
// text/uri-list for collections), and errors: always a clear 4xx/5xx with a body in the asked
// rendering, a Lapis service's refusal mapped to its HTTP meaning.
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { LapisError } from '@lapis/platform';
import { OcciError, type Entity } from '../domain/entity';
import { collectionJson, entityJson, queryInterfaceJson } from '../domain/json';
import type { Category } from '../domain/model';
import { responseRendering, type Rendering } from '../domain/negotiate';
import { categoryHeaders, entityHeaders, locationHeaders, toPlainText, type Header } from '../domain/text';
import { header, type Exchange } from './request';

export const SERVER_HEADER = 'lapis-occi/0.1 OCCI/1.2';

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

export function sendCategories(x: Exchange, categories: Category[]): void {
  const rendering = responseRendering(header(x.req, 'accept'), false);
  if (rendering === 'application/occi+json') return sendJson(x, 200, queryInterfaceJson(categories));
  send(x, 200, categoryHeaders(categories), rendering);
}

export function sendEntity(x: Exchange, entity: Entity, status: number): void {
  const rendering = responseRendering(header(x.req, 'accept'), false);
  if (rendering === 'application/occi+json') return sendJson(x, status, entityJson(entity));
  send(x, status, entityHeaders(entity), rendering);
}

/** A whole answer, made once and sent as often as it stays right (http/collections.ts keeps them). */
export interface Answer {
  headers: Record<string, string | string[]>;
  body: Buffer;
}

export function sendAnswer(x: Exchange, answer: Answer): void {
  x.res.writeHead(200, answer.headers);
  x.res.end(answer.body);
}

/**
 * A collection (its entities, or only `locations`) in the accepted rendering; `next` is the
 * next page's URL.
 */
export function collectionAnswer(
  accept: string | undefined,
  base: string,
  entities: Entity[],
  locations?: string[],
  next?: string,
): Answer {
  const rendering = responseRendering(accept, true);
  const uris = locations ?? entities.map((e) => `${base}${e.location}`);
  const headers: Answer['headers'] = next ? { 'X-OCCI-Next-Page': next } : {};
  let body: string;
  if (rendering === 'application/occi+json') {
    headers['Content-Type'] = 'application/occi+json';
    body = JSON.stringify(locations ? { locations: uris } : collectionJson(entities));
  } else if (rendering === 'text/uri-list') {
    headers['Content-Type'] = 'text/uri-list';
    body = uris.map((u) => `${u}\r\n`).join('');
  } else if (rendering === 'text/plain') {
    // An empty collection is no lines at all (GFD.229), not a word that reads as one.
    headers['Content-Type'] = 'text/plain; charset=utf-8';
    body = toPlainText(locationHeaders(uris));
  } else {
    Object.assign(headers, occiHeaders(locationHeaders(uris)));
    headers['Content-Type'] = 'text/occi';
    body = 'OK\n';
  }
  return { headers, body: Buffer.from(body) };
}

export function sendCollection(x: Exchange, entities: Entity[], locations: string[] | undefined): void {
  sendAnswer(x, collectionAnswer(header(x.req, 'accept'), x.base, entities, locations));
}

/** OCCI headers as HTTP headers: values are bytes, text beyond Latin-1 goes as its UTF-8 bytes (control characters are escaped by the rendering). */
function occiHeaders(headers: Header[]): Record<string, string[]> {
  const byName: Record<string, string[]> = {};
  for (const [name, value] of headers) (byName[name] ??= []).push(Buffer.from(value, 'utf8').toString('latin1'));
  return byName;
}

export function send(
  x: Exchange,
  status: number,
  headers: Header[],
  rendering: Rendering = responseRendering(header(x.req, 'accept'), true),
): void {
  if (rendering === 'text/occi') {
    for (const [name, values] of Object.entries(occiHeaders(headers))) x.res.setHeader(name, values);
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

export function sendError(x: Exchange, error: unknown): void {
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

export function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as ServiceError).code === 'number' && 'metadata' in error;
}
