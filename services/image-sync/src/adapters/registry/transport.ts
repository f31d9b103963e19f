// The HTTP side of a registry client, over undici's request API (the HTTP client behind Node's
// fetch, at a fraction of fetch's cost per request): a keep-alive Pool to the registry (also
// after HEADs), redirects followed without the registry's credentials on another host, auth
// (auth.ts), retries with backoff on 429/5xx/network errors, and a limit on requests in flight.
import type { Readable } from 'node:stream';
import { withRetries } from '@lapis/platform';
import { Agent, Pool, type Dispatcher } from 'undici';
import { header, type Answer } from './answer';
import { RegistryAuth, type Credentials } from './auth';
import { RegistryError, registryCause } from './errors';
import { Semaphore } from './semaphore';

const HEADERS_TIMEOUT_MS = 30_000;
const TRANSPORT = { headersTimeout: HEADERS_TIMEOUT_MS, keepAliveTimeout: 10_000 };
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export interface TransportOptions {
  /** Base URL, for example "http://127.0.0.1:5000". */
  url: string;
  credentials?: Credentials;
  /** Requests waiting for their response headers at once (default 16). */
  concurrency?: number;
  /** Attempts of a request that fails with 429, 5xx or a network error (default 4). */
  attempts?: number;
  /** First backoff in ms, doubled on each retry (default 200). */
  backoffMs?: number;
  /** Told of every answer (method, URL, status) once its headers are in; awaited before the caller sees it (tests count requests with it). */
  onResponse?: (answer: { method: string; url: string; status: number }) => void | Promise<void>;
}

export interface RequestOptions {
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

/**
 * How one try of a request ends when a later try may do better (429, 5xx, a network error):
 * never seen outside `request`, which retries it and throws the RegistryError it carries.
 */
class TryAgain extends Error {
  constructor(
    readonly error: RegistryError,
    readonly retryAfter?: string,
  ) {
    super(error.message);
  }
}

export class RegistryTransport {
  readonly url: string;
  /** host:port, as in image references. */
  readonly host: string;
  private readonly origin: string;
  /** Keep-alive connections to the registry. */
  private readonly pool: Pool;
  /** Connections elsewhere (the token realm, redirects), made when first needed. */
  private elsewhere: Agent | undefined;
  private readonly limit: Semaphore;
  private readonly auth: RegistryAuth;

  constructor(private readonly options: TransportOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.origin = new URL(this.url).origin;
    this.host = new URL(this.url).host;
    // Keep-alive connections, as many as the requests in flight need. A registry that accepts
    // the connection but never answers must not hold a sync forever: an answer's headers are
    // due within HEADERS_TIMEOUT_MS once the request is sent (a timeout is a network error,
    // retried like the others).
    this.pool = new Pool(this.origin, TRANSPORT);
    this.limit = new Semaphore(options.concurrency ?? 16);
    this.auth = new RegistryAuth(options.credentials, this.host, (target, method, headers) => this.dispatch(target, method, headers));
  }

  /** Closes the kept connections. */
  async close(): Promise<void> {
    await Promise.all([this.pool.close(), this.elsewhere?.close()]);
  }

  /** One request with auth, retries and the concurrency limit; resolves with an accepted status. */
  async request(pathOrUrl: string, options: RequestOptions): Promise<Answer> {
    const target = /^https?:\/\//.test(pathOrUrl) ? pathOrUrl : this.url + pathOrUrl;
    const method = options.method ?? 'GET';
    try {
      return await withRetries(() => this.requestOnce(target, method, options), {
        attempts: options.retry === false ? 1 : (this.options.attempts ?? 4),
        retryIf: (error) => error instanceof TryAgain,
        delayMs: (failed, error) => this.backoff(failed, (error as TryAgain).retryAfter),
      });
    } catch (error) {
      throw error instanceof TryAgain ? error.error : error;
    }
  }

  private async requestOnce(target: string, method: string, options: RequestOptions): Promise<Answer> {
    let response: Answer;
    try {
      response = await this.limit.run(async () => {
        const sentWith = this.auth.scheme;
        let answer = await this.send(target, method, options);
        if (answer.status === 401 && this.auth.authenticate(answer, options.scope, sentWith)) {
          await answer.body.dump();
          answer = await this.send(target, method, options);
        }
        return answer;
      });
    } catch (error) {
      // A body stream that failed its digest check (the error itself, or as a cause): final.
      const final = registryCause(error);
      if (final) throw final;
      throw new TryAgain(new RegistryError(`${method} ${target}: ${describe(error)}`, 'UNAVAILABLE'));
    }
    const ok = options.ok ?? [];
    if (ok.includes(response.status) || (ok.length === 0 && response.status >= 200 && response.status < 300)) return response;
    const text = method === 'HEAD' ? await response.body.dump().then(() => '') : await response.body.text().catch(() => '');
    const message = `${method} ${target} answered ${response.status}${text ? `: ${text.slice(0, 300).trim()}` : ''}`;
    if (response.status === 429 || response.status >= 500) {
      throw new TryAgain(new RegistryError(message, 'UNAVAILABLE', response.status), header(response, 'retry-after'));
    }
    const reason =
      response.status === 401 ? 'UNAUTHORIZED' : response.status === 403 ? 'DENIED' : response.status === 404 ? 'NOT_FOUND' : 'REJECTED';
    throw new RegistryError(message, reason, response.status);
  }

  /** An upload's Location, absolute (docker-registry answers absolute URLs; others may not). */
  location(response: Answer): string {
    const location = header(response, 'location');
    if (!location) throw new RegistryError(`${this.host}: upload answer without a Location`, 'PROTOCOL');
    return /^https?:\/\//.test(location) ? location : new URL(location, `${this.url}/`).toString();
  }

  private backoff(attempt: number, retryAfter?: string | null): number {
    const seconds = Number(retryAfter);
    if (retryAfter && Number.isFinite(seconds)) return Math.min(seconds * 1000, 30_000);
    const base = (this.options.backoffMs ?? 200) * 2 ** (attempt - 1);
    return base / 2 + Math.random() * base;
  }

  private async send(target: string, method: string, options: RequestOptions): Promise<Answer> {
    const headers: Record<string, string> = { ...options.headers };
    const authorization = await this.auth.authorization(options.scope);
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
}

function describe(error: unknown): string {
  const e = ((error as { cause?: unknown }).cause ?? error) as { code?: string; message?: string };
  const message = e.message ?? String(error);
  return e.code && !message.includes(e.code) ? `${e.code}: ${message}` : message;
}
