// A registry's authentication: the scheme it asked for once (a WWW-Authenticate challenge), then
// sent up front (no 401 round trip per request): basic with the credentials, or bearer tokens
// fetched per scope from the challenge's realm (Docker token auth) and kept until shortly
// before they expire.
import { header, type Answer } from './answer';
import { RegistryError } from './errors';

export type Credentials = { username: string; password: string } | { token: string };

/** Sends one request without auth or retries (the token realm is asked through it). */
export type Dispatch = (target: string, method: string, headers: Record<string, string>) => Promise<Answer>;

/** Parses `Bearer realm="...",service="...",scope="..."` (or Basic realm=...). */
export function parseChallenge(text: string): { scheme: string; params: Record<string, string> } {
  const space = text.indexOf(' ');
  const scheme = (space < 0 ? text : text.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  for (const match of text.slice(space + 1).matchAll(/([a-zA-Z_]+)="([^"]*)"/g)) params[match[1]!.toLowerCase()] = match[2]!;
  return { scheme, params };
}

export type Scheme = 'basic' | 'bearer' | undefined;

export class RegistryAuth {
  /** The scheme the registry asked for once; sent up front afterwards. */
  scheme: Scheme;
  private challenge: Record<string, string> = {};
  /** Bearer tokens by scope, with when to fetch a fresh one. */
  private readonly tokens = new Map<string, Promise<{ token: string; refreshAt: number }>>();

  constructor(
    private readonly credentials: Credentials | undefined,
    /** host:port of the registry, for messages. */
    private readonly host: string,
    private readonly dispatch: Dispatch,
  ) {}

  /** The Authorization header for a request in `scope`, once the scheme is known. */
  async authorization(scope: string): Promise<string | undefined> {
    const credentials = this.credentials;
    if (this.scheme === 'basic' && credentials && 'username' in credentials) {
      return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    }
    if (this.scheme === 'bearer') return `Bearer ${await this.token(scope)}`;
    return undefined;
  }

  /** Learns the scheme from a 401; true when a retry with credentials makes sense. */
  authenticate(response: Answer, scope: string, sentWith: Scheme): boolean {
    const challenge = header(response, 'www-authenticate');
    if (!challenge) return false;
    const { scheme, params } = parseChallenge(challenge);
    if (scheme === 'basic') {
      // Sent with our credentials and still refused: they are wrong.
      if (sentWith === 'basic' || !this.credentials || !('username' in this.credentials)) return false;
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
    const credentials = this.credentials;
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
        throw new RegistryError(
          `token from ${url.origin}${url.pathname} answered ${response.status}`,
          response.status === 401 ? 'UNAUTHORIZED' : 'DENIED',
          response.status,
        );
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
