// Content negotiation for OCCI: which rendering to answer with, and which one a request uses.
import Negotiator from 'negotiator';
import { OcciError } from './entity';

export type Rendering = 'text/plain' | 'text/occi' | 'text/uri-list' | 'application/occi+json';

const OFFERED: Rendering[] = ['text/plain', 'text/occi', 'application/occi+json', 'text/uri-list'];

/** The response rendering: text/plain when the client does not care; 406 for what Lapis does not render. */
export function responseRendering(accept: string | undefined, collection: boolean): Rendering {
  if (!accept || accept.trim() === '') return 'text/plain';
  const wanted = new Negotiator({ headers: { accept: accept.replace(/application\/json/g, 'application/occi+json') } }).mediaType(
    OFFERED.filter((r) => collection || r !== 'text/uri-list'),
  );
  if (wanted) return wanted as Rendering;
  if (!collection && /text\/uri-list/.test(accept)) throw new OcciError(400, 'text/uri-list renders collections only; this is an entity');
  throw new OcciError(406, `cannot render ${accept.slice(0, 200)}; offered: ${OFFERED.join(', ')}`);
}

/** The request rendering from Content-Type; OCCI headers alone (no body) count as text/occi. */
export function requestRendering(contentType: string | undefined, hasBody: boolean): Exclude<Rendering, 'text/uri-list'> {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === '' || type === 'text/occi') return hasBody && type === '' ? 'text/plain' : 'text/occi';
  if (type === 'text/plain') return 'text/plain';
  if (type === 'application/occi+json' || type === 'application/json') return 'application/occi+json';
  throw new OcciError(415, `Content-Type ${type.slice(0, 100)} is not supported; use text/plain, text/occi or application/occi+json`);
}

/** Whether the client takes a gzip body (Accept-Encoding, q-values and `*` as RFC 9110 says); without the header, no. */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  return new Negotiator({ headers: { 'accept-encoding': acceptEncoding } }).encoding(['gzip', 'identity']) === 'gzip';
}
