// Who is calling: a bearer token is either an OIDC JWT (verified against the issuer's JWKS,
// keys cached and refetched when an unknown key id shows up) or a static token from a file
// for sites without an issuer. The caller's project comes from the token, narrowed by the
// optional `x-lapis-project` header when the caller belongs to several projects.
import { createHash } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import { createRemoteJWKSet, decodeProtectedHeader, errors as jose, jwtVerify, type JWTPayload } from 'jose';
import { LapisError, permissionDenied, unauthenticated, unavailable } from './errors';
import { PROJECT_HEADER } from './headers';
import { readYamlFile } from './yaml-file';

export interface Caller {
  user: string;
  /** The project this call acts in. */
  project: string;
  /** Every project the caller belongs to. */
  projects: readonly string[];
  roles: readonly string[];
  admin: boolean;
  /** How the caller was authenticated. */
  via: 'oidc' | 'static';
  /** The bearer token, for calls made on the caller's behalf. */
  token: string;
}

export interface AuthOptions {
  issuer?: string;
  audience?: string;
  jwksUrl?: string;
  projectClaim?: string;
  rolesClaim?: string;
  adminRole?: string;
  staticTokensFile?: string;
  /** Least time between two JWKS fetches caused by unknown key ids (jose's cooldown). */
  jwksCooldownMs?: number;
}

export { PROJECT_HEADER } from './headers';

interface StaticIdentity {
  user: string;
  projects: string[];
  roles: string[];
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Reads a static token file: `tokens: [{token | sha256, user, projects, roles}]`. */
export function loadStaticTokens(file: string): Map<string, StaticIdentity> {
  const doc = readYamlFile(file, 'static token file');
  const entries = (doc as { tokens?: unknown })?.tokens;
  if (!Array.isArray(entries)) throw new Error(`static token file ${file}: expected a "tokens" list`);
  const byHash = new Map<string, StaticIdentity>();
  entries.forEach((raw: Record<string, unknown>, i) => {
    const where = `static token file ${file}: tokens[${i}]`;
    const strings = (key: string) => {
      const value = raw?.[key] ?? [];
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
        throw new Error(`${where}.${key}: expected a list of strings`);
      }
      return value as string[];
    };
    const hash = typeof raw?.sha256 === 'string' ? raw.sha256.toLowerCase() : typeof raw?.token === 'string' ? sha256(raw.token) : '';
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error(`${where}: needs "token" or a hex "sha256" of it`);
    if (typeof raw.user !== 'string' || raw.user === '') throw new Error(`${where}.user: required`);
    byHash.set(hash, { user: raw.user, projects: strings('projects'), roles: strings('roles') });
  });
  return byHash;
}

export class Authenticator {
  private readonly staticTokens: Map<string, StaticIdentity>;
  private jwks?: Promise<ReturnType<typeof createRemoteJWKSet>>;

  constructor(private readonly options: AuthOptions) {
    this.staticTokens = options.staticTokensFile ? loadStaticTokens(options.staticTokensFile) : new Map();
  }

  async authenticate(metadata: Metadata): Promise<Caller> {
    const token = bearerToken(metadata);
    const requested = metadata.get(PROJECT_HEADER)[0]?.toString() || undefined;
    const known = this.staticTokens.get(sha256(token));
    if (known) return this.caller('static', token, known, requested);
    if (!this.options.issuer) throw unauthenticated('unknown bearer token', 'TOKEN_UNKNOWN');
    if (token.split('.').length !== 3) throw unauthenticated('bearer token is neither a known static token nor a JWT', 'TOKEN_MALFORMED');
    const payload = await this.verifyJwt(token);
    return this.caller('oidc', token, this.identityFromClaims(payload), requested);
  }

  private caller(via: Caller['via'], token: string, identity: StaticIdentity, requested?: string): Caller {
    const adminRole = this.options.adminRole ?? 'admin';
    const admin = identity.roles.includes(adminRole) || identity.projects.includes(adminRole);
    const projects = identity.projects.filter((p) => p !== adminRole);
    let project = requested ?? projects[0];
    if (requested && !projects.includes(requested) && !admin) {
      throw permissionDenied(`${identity.user} is not a member of project "${requested}"`, 'NOT_A_MEMBER');
    }
    if (!project) {
      if (!admin) throw permissionDenied(`${identity.user} belongs to no project`, 'NO_PROJECT');
      project = adminRole;
    }
    return { user: identity.user, project, projects, roles: identity.roles, admin, via, token };
  }

  private identityFromClaims(payload: JWTPayload): StaticIdentity {
    const list = (claim: string) => {
      const value = payload[claim];
      return typeof value === 'string' ? [value] : Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
    };
    const user = (payload.preferred_username as string | undefined) ?? payload.sub;
    if (!user) throw unauthenticated('token has no "sub" claim', 'TOKEN_INVALID');
    return { user, projects: list(this.options.projectClaim ?? 'groups'), roles: list(this.options.rolesClaim ?? 'roles') };
  }

  private async verifyJwt(token: string): Promise<JWTPayload> {
    const { issuer, audience } = this.options;
    try {
      const { payload } = await jwtVerify(token, await this.keySet(), {
        issuer,
        ...(audience ? { audience } : {}),
        algorithms: ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'],
        clockTolerance: 30,
      });
      return payload;
    } catch (error) {
      throw describeJwtError(error, token, this.options);
    }
  }

  /** The issuer's key set, found through OIDC discovery unless its URL is configured. */
  private keySet(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    this.jwks ??= (async () => {
      const url = this.options.jwksUrl || (await discoverJwksUrl(this.options.issuer!));
      return createRemoteJWKSet(new URL(url), {
        cooldownDuration: this.options.jwksCooldownMs ?? 30_000,
        cacheMaxAge: 10 * 60_000,
        timeoutDuration: 5_000,
      });
    })();
    // A failed discovery is retried by the next call rather than remembered.
    this.jwks.catch(() => (this.jwks = undefined));
    return this.jwks;
  }
}

async function discoverJwksUrl(issuer: string): Promise<string> {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  } catch (error) {
    throw unavailable(`cannot reach the OIDC issuer at ${url}: ${(error as Error).message}`, 'ISSUER_UNREACHABLE');
  }
  const body = (await response.json().catch(() => undefined)) as { jwks_uri?: unknown } | undefined;
  if (!response.ok || typeof body?.jwks_uri !== 'string') {
    throw unavailable(`OIDC discovery at ${url} gave no jwks_uri (HTTP ${response.status})`, 'ISSUER_UNREACHABLE');
  }
  return body.jwks_uri;
}

function bearerToken(metadata: Metadata): string {
  const header = metadata.get('authorization')[0]?.toString();
  if (!header) throw unauthenticated('missing bearer token: send the header "authorization: Bearer <token>"', 'TOKEN_MISSING');
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match?.[1]) throw unauthenticated('the authorization header must be "Bearer <token>"', 'TOKEN_MALFORMED');
  return match[1];
}

function describeJwtError(error: unknown, token: string, options: AuthOptions): LapisError {
  if (error instanceof LapisError) return error;
  if (error instanceof jose.JWTExpired) {
    const exp = error.payload.exp;
    return unauthenticated(`token expired${exp ? ` at ${new Date(exp * 1000).toISOString()}` : ''}`, 'TOKEN_EXPIRED');
  }
  if (error instanceof jose.JWTClaimValidationFailed) {
    if (error.claim === 'iss') {
      return unauthenticated(
        `token issuer "${String(error.payload.iss)}" is not the trusted issuer "${options.issuer}"`,
        'TOKEN_WRONG_ISSUER',
      );
    }
    if (error.claim === 'aud') {
      return unauthenticated(
        `token audience ${JSON.stringify(error.payload.aud ?? null)} does not include "${options.audience}"`,
        'TOKEN_WRONG_AUDIENCE',
      );
    }
    return unauthenticated(`token claim "${error.claim}" is invalid: ${error.reason}`, 'TOKEN_INVALID');
  }
  if (error instanceof jose.JWSSignatureVerificationFailed) return unauthenticated('token signature is invalid', 'TOKEN_BAD_SIGNATURE');
  if (error instanceof jose.JWKSNoMatchingKey) {
    let kid = '';
    try {
      kid = decodeProtectedHeader(token).kid ?? '';
    } catch {
      // the header was readable enough for jose to get this far
    }
    return unauthenticated(`no key of the issuer matches the token's key id "${kid}"`, 'TOKEN_UNKNOWN_KEY');
  }
  if (error instanceof jose.JWKSTimeout || error instanceof jose.JWKSInvalid) {
    return unavailable(`cannot fetch the issuer's keys: ${error.message}`, 'ISSUER_UNREACHABLE');
  }
  if (error instanceof jose.JOSEError) return unauthenticated(`token rejected: ${error.message}`, 'TOKEN_INVALID');
  return unavailable(`cannot verify the token: ${(error as Error).message}`, 'ISSUER_UNREACHABLE');
}
