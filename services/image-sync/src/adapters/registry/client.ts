// A client of one registry speaking the OCI distribution spec over undici's request API (the
// HTTP client behind Node's fetch, at a fraction of fetch's cost per request): manifests
// (Docker schema 2, OCI manifest, OCI index, Docker manifest list), blobs verified against
// their digest while they stream, cross-repository mounts, monolithic and chunked uploads,
// basic and bearer-token auth (the WWW-Authenticate challenge), retries with backoff on
// 429/5xx/network errors, and a limit on requests in flight.
import { createHash } from 'node:crypto';
import { pipeline, Readable, Transform } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { Agent, Pool, type Dispatcher } from 'undici';

const HEADERS_TIMEOUT_MS = 30_000;
const TRANSPORT = { headersTimeout: HEADERS_TIMEOUT_MS, keepAliveTimeout: 10_000 };
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
} as const;
export const MANIFEST_ACCEPT = Object.values(MEDIA).join(', ');
export const isIndex = (mediaType: string) => mediaType === MEDIA.dockerList || mediaType === MEDIA.ociIndex;

export type Credentials = { username: string; password: string } | { token: string };

export interface RegistryClientOptions {
  /** Base URL, for example "http://127.0.0.1:5000". */
  url: string;
  credentials?: Credentials;
  /** Requests waiting for their response headers at once (default 16). */
  concurrency?: number;
  /** Attempts of a request that fails with 429, 5xx or a network error (default 4). */
  attempts?: number;
  /** First backoff in ms, doubled on each retry (default 200). */
  backoffMs?: number;
  /** Blobs above this size are uploaded in chunks of this size (default 64 MiB). */
  chunkSize?: number;
  /** Told of every answer (method, URL, status) once its headers are in; awaited before the caller sees it (tests count requests with it). */
  onResponse?: (answer: { method: string; url: string; status: number }) => void | Promise<void>;
}

/** An answer: status, headers (lower-case names) and a body that must be read or dumped. */
export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

/** A blob body: a Node stream, a web stream or bytes. */
export type BlobBody = Readable | ReadableStream<Uint8Array> | Buffer;

/** A registry answered in a way that is final for this request (not retried). */
export class RegistryError extends Error {
  override name = 'RegistryError';
  constructor(
    message: string,
    /** UPPER_SNAKE_CASE: UNAUTHORIZED, NOT_FOUND, DIGEST_MISMATCH, UNAVAILABLE, ... */
    readonly reason: string,
    readonly status = 0,
  ) {
    super(message);
  }
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface Manifest {
  schemaVersion: number;
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  annotations?: Record<string, string>;
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
  manifest: Manifest;
}

/** A counting semaphore: at most `limit` holders at once, the rest wait in order. */
export class Semaphore {
  private waiting: Array<() => void> = [];
  private active = 0;
  constructor(private readonly limit: number) {}
  async acquire(): Promise<() => void> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.waiting.shift()?.();
    };
  }
  async run<T>(work: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await work();
    } finally {
      release();
    }
  }
}

export const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Parses `Bearer realm="...",service="...",scope="..."` (or Basic realm=...). */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(' ');
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  for (const match of header.slice(space + 1).matchAll(/([a-zA-Z_]+)="([^"]*)"/g)) params[match[1]!.toLowerCase()] = match[2]!;
  return { scheme, params };
}

interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  /** Auth scope, for example "repository:lapis/ubuntu:pull,push". */
  scope: string;
  /** Statuses that are answers rather than errors (default 2xx). */
  ok?: number[];
  /** Retry on 429/5xx/network errors; off for streamed bodies, which cannot be sent twice. */
  retry?: boolean;
}

export class RegistryClient {
  readonly url: string;
  private readonly origin: string;
  /** Keep-alive connections to the registry. */
  private readonly pool: Pool;
  /** Connections elsewhere (the token realm, redirects), made when first needed. */
  private elsewhere: Agent | undefined;
  private readonly limit: Semaphore;
  /** Bearer tokens by scope, with when to fetch a fresh one. */
  private readonly tokens = new Map<string, Promise<{ token: string; refreshAt: number }>>();
  /** The scheme the registry asked for once; sent up front afterwards (no 401 round trip). */
  private scheme: 'basic' | 'bearer' | undefined;
  private challenge: Record<string, string> = {};

  constructor(private readonly options: RegistryClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.origin = new URL(this.url).origin;
    // Keep-alive connections, as many as the requests in flight need. A registry that accepts
    // the connection but never answers must not hold a sync forever: an answer's headers are
    // due within HEADERS_TIMEOUT_MS once the request is sent (a timeout is a network error,
    // retried like the others).
    this.pool = new Pool(this.origin, TRANSPORT);
    this.limit = new Semaphore(options.concurrency ?? 16);
  }

  /** host:port, as in image references. */
  get host(): string {
    return new URL(this.url).host;
  }

  /** Closes the kept connections. */
  async close(): Promise<void> {
    await Promise.all([this.pool.close(), this.elsewhere?.close()]);
  }

  // ---- manifests ----

  /** The digest a tag (or digest) points at, from a HEAD; undefined when absent. */
  async headManifest(repository: string, reference: string): Promise<{ digest: string; mediaType: string; size: number } | undefined> {
    const response = await this.request(`/v2/${repository}/manifests/${reference}`, {
      method: 'HEAD',
      headers: { accept: MANIFEST_ACCEPT },
      scope: `repository:${repository}:pull`,
      ok: [200, 404],
    });
    await response.body.dump();
    if (response.status === 404) return undefined;
    const digest = header(response, 'docker-content-digest');
    if (!digest) throw new RegistryError(`${this.host}/${repository}:${reference}: HEAD gave no Docker-Content-Digest`, 'PROTOCOL');
    return { digest, mediaType: contentType(response), size: Number(header(response, 'content-length') ?? 0) };
  }

  /** Fetches a manifest; when `expected` (or a digest reference) is given, its bytes must hash to it. */
  async getManifest(repository: string, reference: string, expected?: string): Promise<FetchedManifest | undefined> {
    const response = await this.request(`/v2/${repository}/manifests/${reference}`, {
      headers: { accept: MANIFEST_ACCEPT },
      scope: `repository:${repository}:pull`,
      ok: [200, 404],
    });
    if (response.status === 404) {
      await response.body.dump();
      return undefined;
    }
    const bytes = Buffer.from(await response.body.arrayBuffer());
    const digest = sha256(bytes);
    const want = expected ?? (reference.startsWith('sha256:') ? reference : header(response, 'docker-content-digest'));
    if (want && want !== digest) {
      throw new RegistryError(`${this.host}/${repository}@${want}: manifest content hashes to ${digest}`, 'DIGEST_MISMATCH');
    }
    let manifest: Manifest;
    try {
      manifest = JSON.parse(bytes.toString('utf8')) as Manifest;
    } catch {
      throw new RegistryError(`${this.host}/${repository}:${reference}: manifest is not JSON`, 'PROTOCOL');
    }
    return { digest, mediaType: manifest.mediaType ?? contentType(response), bytes, manifest };
  }

  /** Pushes a manifest by tag or digest; checks the digest the registry computed. */
  async putManifest(repository: string, reference: string, mediaType: string, bytes: Buffer): Promise<string> {
    const response = await this.request(`/v2/${repository}/manifests/${reference}`, {
      method: 'PUT',
      headers: { 'content-type': mediaType },
      body: bytes,
      scope: `repository:${repository}:pull,push`,
    });
    await response.body.dump();
    const digest = sha256(bytes);
    const stored = header(response, 'docker-content-digest');
    if (stored && stored !== digest) throw new RegistryError(`${this.host}/${repository}:${reference} stored as ${stored}, sent ${digest}`, 'DIGEST_MISMATCH');
    return digest;
  }

  async deleteManifest(repository: string, digest: string): Promise<void> {
    const response = await this.request(`/v2/${repository}/manifests/${digest}`, {
      method: 'DELETE',
      scope: `repository:${repository}:pull,push,delete`,
      ok: [202, 404],
    });
    await response.body.dump();
  }

  /** Every tag of a repository, following the Link header's pages. */
  async listTags(repository: string): Promise<string[]> {
    const tags: string[] = [];
    let path: string | undefined = `/v2/${repository}/tags/list?n=1000`;
    while (path) {
      const response = await this.request(path, { scope: `repository:${repository}:pull`, ok: [200, 404] });
      if (response.status === 404) {
        await response.body.dump();
        throw new RegistryError(`${this.host}/${repository}: no such repository`, 'NOT_FOUND', 404);
      }
      const body = (await response.body.json()) as { tags?: string[] | null };
      tags.push(...(body.tags ?? []));
      const link = header(response, 'link')?.match(/<([^>]+)>/)?.[1];
      path = link ? (link.startsWith('/') ? link : new URL(link).pathname + new URL(link).search) : undefined;
    }
    return tags;
  }

  // ---- blobs ----

  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const response = await this.request(`/v2/${repository}/blobs/${digest}`, {
      method: 'HEAD',
      scope: `repository:${repository}:pull`,
      ok: [200, 404],
    });
    await response.body.dump();
    return response.status === 200;
  }

  /**
   * The blob as a stream that errors (DIGEST_MISMATCH) at its end when the bytes do not hash
   * to `digest` or their count differs from `size`: nothing built on it can complete.
   */
  async getBlob(repository: string, digest: string, size?: number): Promise<Readable> {
    const response = await this.request(`/v2/${repository}/blobs/${digest}`, { scope: `repository:${repository}:pull` });
    const hash = createHash('sha256');
    let count = 0;
    const where = `${this.host}/${repository}@${digest}`;
    const verified = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        count += chunk.length;
        callback(null, chunk);
      },
      flush(callback) {
        const got = `sha256:${hash.digest('hex')}`;
        if (got !== digest) callback(new RegistryError(`${where}: content hashes to ${got} (blob corrupted or tampered with)`, 'DIGEST_MISMATCH'));
        else if (size !== undefined && count !== size) callback(new RegistryError(`${where}: ${count} bytes, descriptor says ${size}`, 'DIGEST_MISMATCH'));
        else callback();
      },
    });
    // A body that breaks off fails the stream; a reader that gives up releases the connection.
    return pipeline(response.body, verified, () => undefined);
  }

  async getBlobBytes(repository: string, digest: string, size?: number): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.getBlob(repository, digest, size)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /** Mounts a blob from another repository of this registry; false when the registry would not. */
  async mountBlob(repository: string, digest: string, from: string): Promise<boolean> {
    const started = await this.startUpload(repository, { digest, from });
    if (started.mounted) return true;
    // The registry opened an upload instead; abandon it.
    await this.cancelUpload(repository, started.location);
    return false;
  }

  /**
   * Opens an upload. With `mount`, asks first for the blob to be mounted from `from` (which
   * may be `repository` itself: a blob already there answers 201 at once), so a blob that
   * is there or can be mounted costs one request, and one that is not gets its upload.
   */
  async startUpload(repository: string, mount?: { digest: string; from: string }): Promise<{ mounted: true } | { mounted: false; location: string }> {
    const query = mount ? `?mount=${encodeURIComponent(mount.digest)}&from=${encodeURIComponent(mount.from)}` : '';
    const scope = `repository:${repository}:pull,push${mount && mount.from !== repository ? ` repository:${mount.from}:pull` : ''}`;
    const response = await this.request(`/v2/${repository}/blobs/uploads/${query}`, { method: 'POST', scope, ok: [201, 202] });
    await response.body.dump();
    if (response.status === 201) return { mounted: true };
    return { mounted: false, location: this.location(response) };
  }

  /**
   * Uploads a blob from a stream: monolithic (POST, then one streamed PUT) up to the chunk
   * size, else PATCH chunk by chunk and a closing PUT. The registry checks the digest too.
   */
  async pushBlob(repository: string, digest: string, size: number, blob: BlobBody, upload?: string): Promise<void> {
    const body = blob instanceof Buffer ? Readable.from([blob]) : blob instanceof Readable ? blob : Readable.fromWeb(blob as NodeReadableStream<Uint8Array>);
    const scope = `repository:${repository}:pull,push`;
    let location = upload;
    if (!location) {
      try {
        const start = await this.request(`/v2/${repository}/blobs/uploads/`, { method: 'POST', scope, ok: [202] });
        await start.body.dump();
        location = this.location(start);
      } catch (error) {
        body.destroy();
        throw error;
      }
    }
    const chunkSize = this.options.chunkSize ?? 64 * 1024 * 1024;
    try {
      if (size <= chunkSize) {
        const put = await this.request(withDigest(location, digest), {
          method: 'PUT',
          // No Content-Length: a stream that fails its digest check never sends its last
          // chunk, so the registry cannot complete the upload.
          headers: { 'content-type': 'application/octet-stream' },
          body,
          scope,
          retry: false,
          ok: [201],
        });
        await put.body.dump();
        return;
      }
      let offset = 0;
      for await (const chunk of chunks(body, chunkSize)) {
        const patch = await this.request(location, {
          method: 'PATCH',
          headers: {
            'content-type': 'application/octet-stream',
            'content-length': String(chunk.length),
            'content-range': `${offset}-${offset + chunk.length - 1}`,
          },
          body: chunk,
          scope,
          retry: false,
          ok: [202],
        });
        await patch.body.dump();
        location = this.location(patch);
        offset += chunk.length;
      }
      const put = await this.request(withDigest(location, digest), { method: 'PUT', headers: { 'content-length': '0' }, scope, ok: [201] });
      await put.body.dump();
    } catch (error) {
      body.destroy();
      await this.cancelUpload(repository, location);
      throw error;
    }
  }

  /** Abandons an upload session. */
  async cancelUpload(repository: string, location: string): Promise<void> {
    await this.request(location, { method: 'DELETE', scope: `repository:${repository}:pull,push`, ok: [204, 404] })
      .then((r) => r.body.dump())
      .catch(() => undefined);
  }

  private location(response: Answer): string {
    const location = header(response, 'location');
    if (!location) throw new RegistryError(`${this.host}: upload answer without a Location`, 'PROTOCOL');
    // Relative to the registry (docker-registry answers absolute URLs; others may not).
    return /^https?:\/\//.test(location) ? location : new URL(location, this.url + '/').toString();
  }

  // ---- transport ----

  /** One request with auth, retries and the concurrency limit; resolves with an accepted status. */
  async request(pathOrUrl: string, options: RequestOptions): Promise<Answer> {
    const target = /^https?:\/\//.test(pathOrUrl) ? pathOrUrl : this.url + pathOrUrl;
    const attempts = options.retry === false ? 1 : (this.options.attempts ?? 4);
    const method = options.method ?? 'GET';
    let lastError: Error | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let response: Answer;
      try {
        response = await this.limit.run(async () => {
          const sentWith = this.scheme;
          let answer = await this.send(target, method, options);
          if (answer.status === 401 && (await this.authenticate(answer, options.scope, sentWith))) {
            await answer.body.dump();
            answer = await this.send(target, method, options);
          }
          return answer;
        });
      } catch (error) {
        // A body stream that failed its digest check (the error itself, or as a cause): final.
        const final = registryCause(error);
        if (final) throw final;
        lastError = new RegistryError(`${method} ${target}: ${describe(error)}`, 'UNAVAILABLE');
        if (attempt < attempts) await sleep(this.backoff(attempt));
        continue;
      }
      const ok = options.ok ?? [];
      if (ok.includes(response.status) || (ok.length === 0 && response.status >= 200 && response.status < 300)) return response;
      const text = method === 'HEAD' ? await response.body.dump().then(() => '') : await response.body.text().catch(() => '');
      const message = `${method} ${target} answered ${response.status}${text ? `: ${text.slice(0, 300).trim()}` : ''}`;
      if (response.status === 429 || response.status >= 500) {
        lastError = new RegistryError(message, 'UNAVAILABLE', response.status);
        if (attempt < attempts) await sleep(this.backoff(attempt, header(response, 'retry-after')));
        continue;
      }
      const reason = response.status === 401 ? 'UNAUTHORIZED' : response.status === 403 ? 'DENIED' : response.status === 404 ? 'NOT_FOUND' : 'REJECTED';
      throw new RegistryError(message, reason, response.status);
    }
    throw lastError ?? new RegistryError(`${method} ${target} failed`, 'UNAVAILABLE');
  }

  private backoff(attempt: number, retryAfter?: string | null): number {
    const seconds = Number(retryAfter);
    if (retryAfter && Number.isFinite(seconds)) return Math.min(seconds * 1000, 30_000);
    const base = (this.options.backoffMs ?? 200) * 2 ** (attempt - 1);
    return base / 2 + Math.random() * base;
  }

  private async send(target: string, method: string, options: RequestOptions): Promise<Answer> {
    const headers: Record<string, string> = { ...options.headers };
    const authorization = await this.authorization(options.scope);
    if (authorization) headers.authorization = authorization;
    return this.dispatch(target, method, headers, options.body);
  }

  /** One HTTP exchange, told to onResponse; redirects of requests without a body are followed. */
  private async dispatch(target: string, method: string, headers: Record<string, string>, body?: Buffer | Readable): Promise<Answer> {
    let url = new URL(target);
    for (let hops = 0; ; hops++) {
      const answer = await this.exchange(url, method, headers, body);
      const location = REDIRECTS.has(answer.status) && !body && hops < 5 ? header(answer, 'location') : undefined;
      if (!location) return answer;
      await answer.body.dump();
      const next = new URL(location, url);
      // Credentials for this registry do not go to another host (a blob store, say).
      if (next.origin !== url.origin) {
        const { authorization: _dropped, ...rest } = headers;
        headers = rest;
      }
      url = next;
    }
  }

  private async exchange(url: URL, method: string, headers: Record<string, string>, body?: Buffer | Readable): Promise<Answer> {
    const dispatcher = url.origin === this.origin ? this.pool : (this.elsewhere ??= new Agent(TRANSPORT));
    const answer = await dispatcher.request({
      origin: url.origin,
      path: url.pathname + url.search,
      method: method as Dispatcher.HttpMethod,
      headers,
      ...(body ? { body } : {}),
      // Keep the connection after a HEAD too: undici closes it by default (for servers that
      // wrongly send a body), which costs a new connection for every HEAD; registries do not.
      reset: false,
    });
    const observe = this.options.onResponse;
    if (observe) {
      try {
        await observe({ method, url: url.toString(), status: answer.statusCode });
      } catch (error) {
        await answer.body.dump().catch(() => undefined);
        throw error;
      }
    }
    return { status: answer.statusCode, headers: answer.headers, body: answer.body };
  }

  private async authorization(scope: string): Promise<string | undefined> {
    const credentials = this.options.credentials;
    if (this.scheme === 'basic' && credentials && 'username' in credentials) {
      return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    }
    if (this.scheme === 'bearer') return `Bearer ${await this.token(scope)}`;
    return undefined;
  }

  /** Learns the scheme from a 401; true when a retry with credentials makes sense. */
  private async authenticate(response: Answer, scope: string, sentWith: 'basic' | 'bearer' | undefined): Promise<boolean> {
    const challenge = header(response, 'www-authenticate');
    if (!challenge) return false;
    const { scheme, params } = parseChallenge(challenge);
    if (scheme === 'basic') {
      // Sent with our credentials and still refused: they are wrong.
      if (sentWith === 'basic' || !this.options.credentials || !('username' in this.options.credentials)) return false;
      this.scheme = 'basic';
      return true;
    }
    if (scheme === 'bearer') {
      this.scheme = 'bearer';
      this.challenge = params;
      // A token we sent was refused (expired, or too narrow): fetch one for this scope once more.
      if (sentWith === 'bearer') this.tokens.delete(scope);
      return true;
    }
    return false;
  }

  /** A bearer token for a scope from the challenge's realm (Docker token auth), cached until shortly before it expires. */
  private async token(scope: string): Promise<string> {
    const credentials = this.options.credentials;
    if (credentials && 'token' in credentials) return credentials.token;
    const cached = this.tokens.get(scope);
    const held = await cached?.catch(() => undefined);
    if (held && held.refreshAt > Date.now()) return held.token;
    // Another caller may have started a fresh fetch while this one waited.
    const newer = this.tokens.get(scope);
    if (newer && newer !== cached) return (await newer).token;
    const fresh = (async () => {
      const realm = this.challenge.realm;
      if (!realm) throw new RegistryError(`${this.host}: bearer challenge without a realm`, 'PROTOCOL');
      const url = new URL(realm);
      if (this.challenge.service) url.searchParams.set('service', this.challenge.service);
      for (const part of scope.split(' ')) url.searchParams.append('scope', part);
      const headers: Record<string, string> = {};
      if (credentials && 'username' in credentials) {
        headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
      }
      const response = await this.dispatch(url.toString(), 'GET', headers);
      if (response.status < 200 || response.status >= 300) {
        await response.body.dump();
        throw new RegistryError(`token from ${url.origin}${url.pathname} answered ${response.status}`, response.status === 401 ? 'UNAUTHORIZED' : 'DENIED', response.status);
      }
      const body = (await response.body.json()) as { token?: string; access_token?: string; expires_in?: number };
      const token = body.token ?? body.access_token;
      if (!token) throw new RegistryError(`token from ${url.origin}${url.pathname} had no token`, 'PROTOCOL');
      // The token spec's default lifetime is 60 s; a fresh one is fetched when 80% of it is gone.
      const lifetimeS = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
      return { token, refreshAt: Date.now() + lifetimeS * 800 };
    })();
    this.tokens.set(scope, fresh);
    fresh.catch(() => this.tokens.get(scope) === fresh && this.tokens.delete(scope));
    return (await fresh).token;
  }
}

/** The RegistryError behind an error the transport wrapped (a stream that failed its digest check). */
export function registryCause(error: unknown): RegistryError | undefined {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof RegistryError) return e;
  }
  return undefined;
}

/** A header of an answer (repeated ones joined as HTTP allows). */
export function header(answer: Answer, name: string): string | undefined {
  const value = answer.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function contentType(response: Answer): string {
  return (header(response, 'content-type') ?? '').split(';')[0]!.trim();
}

function withDigest(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

function describe(error: unknown): string {
  const e = ((error as { cause?: unknown }).cause ?? error) as { code?: string; message?: string };
  const message = e.message ?? String(error);
  return e.code && !message.includes(e.code) ? `${e.code}: ${message}` : message;
}

/** Re-cuts a stream into buffers of `size` bytes (the last one shorter). */
async function* chunks(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let length = 0;
  for await (const piece of stream) {
    let buffer = Buffer.isBuffer(piece) ? piece : Buffer.from(piece as Uint8Array);
    while (buffer.length > 0) {
      const take = Math.min(size - length, buffer.length);
      parts.push(buffer.subarray(0, take));
      length += take;
      buffer = buffer.subarray(take);
      if (length === size) {
        yield Buffer.concat(parts);
        parts = [];
        length = 0;
      }
    }
  }
  if (length > 0) yield Buffer.concat(parts);
}
