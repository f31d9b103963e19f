// One typed, frozen configuration object per service, parsed from the environment once at
// start. A bad or missing variable stops the service with a message that names it.
import { bool, cleanEnv, makeValidator, num, str, type ValidatorSpec } from 'envalid';
import { DEFAULT_CALLER_LIMITS } from './grpc/stream-limits';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Specs = { [name: string]: ValidatorSpec<unknown> };
export type ConfigOf<S extends Specs> = { readonly [K in keyof S]: S[K] extends ValidatorSpec<infer T> ? T : never };

/**
 * Parses `env` against `specs`; every problem is reported at once, one line each, naming
 * the variable. `checks` run on the parsed values for rules that span several variables.
 */
export function loadConfig<S extends Specs>(
  specs: S,
  env: NodeJS.ProcessEnv = process.env,
  checks: Array<(config: ConfigOf<S>) => string | undefined> = [],
): ConfigOf<S> {
  const problems: string[] = [];
  const parsed = cleanEnv(env, specs, {
    reporter: ({ errors }) => {
      for (const [name, error] of Object.entries(errors)) {
        const spec = specs[name];
        const raw = env[name];
        const hint = spec?.desc ? ` (${spec.desc}${spec.example ? `, e.g. ${spec.example}` : ''})` : '';
        problems.push(
          raw === undefined || raw === ''
            ? `${name} is required but not set${hint}`
            : `${name}=${JSON.stringify(raw)} is invalid: ${(error as Error).message}${hint}`,
        );
      }
    },
  }) as unknown as ConfigOf<S>;
  if (problems.length === 0) {
    for (const check of checks) {
      const problem = check(parsed);
      if (problem) problems.push(problem);
    }
  }
  if (problems.length > 0) {
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return Object.freeze({ ...parsed });
}

/** A TCP port; 0 asks the system for a free one (tests, several services on one machine). */
export const listenPort = makeValidator<number>((input) => {
  const value = Number(input);
  if (!/^\d+$/.test(String(input).trim()) || value > 65535) throw new Error('expected a port number from 0 to 65535');
  return value;
});

/** A whole number of at least 1 (a limit; 0 would refuse everything). */
export const positiveInt = makeValidator<number>((input) => {
  const value = Number(input);
  if (!/^\d+$/.test(String(input).trim()) || value < 1 || !Number.isSafeInteger(value))
    throw new Error('expected a whole number of at least 1');
  return value;
});

/**
 * One NATS URL, or several separated by commas (the servers of one cluster: the client
 * starts with any of them and follows the cluster's own list from then on).
 */
export const natsUrls = makeValidator<string>((input) => {
  const urls = String(input)
    .split(',')
    .map((u) => u.trim());
  for (const u of urls) {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      throw new Error(`${JSON.stringify(u)} is not a URL`);
    }
    if (!['nats:', 'tls:'].includes(parsed.protocol) || !parsed.hostname)
      throw new Error(`${JSON.stringify(u)} is not a nats:// or tls:// URL`);
  }
  return urls.join(',');
});

/** JetStream's replica counts: 1 (a single server) up to 5. */
export const natsReplicas = makeValidator<number>((input) => {
  const value = Number(input);
  if (!/^[1-5]$/.test(String(input).trim())) throw new Error('expected 1 to 5 (3 for a three-server cluster)');
  return value;
});

/** Variables every Lapis service reads. A service spreads these into its own specs. */
export const platformSpecs = {
  // Loopback unless told otherwise: a service run by hand is not open to the machine's networks
  // (the chart sets 0.0.0.0, as a pod must).
  LAPIS_GRPC_HOST: str({
    default: '127.0.0.1',
    desc: 'address the gRPC server (and the OCCI HTTP interface) listens on; the chart sets 0.0.0.0',
  }),
  LAPIS_GRPC_PORT: listenPort({ desc: 'port the gRPC server listens on (0 picks a free one)', example: '50051' }),
  LAPIS_METRICS_PORT: listenPort({
    default: 9464,
    desc: 'port of the Prometheus endpoint (GET /metrics) on LAPIS_GRPC_HOST, when OTEL_METRICS_EXPORTER is prometheus (the default); 0 picks a free one',
  }),
  LAPIS_NATS_URL: natsUrls({
    desc: 'NATS server with JetStream, or the servers of a cluster separated by commas',
    example: 'nats://127.0.0.1:4222',
  }),
  LAPIS_NATS_REPLICAS: natsReplicas({
    default: 1,
    desc: 'copies JetStream keeps of the event stream and of every key-value bucket this service opens (3 on a three-server cluster: a write is acknowledged once two hold it)',
  }),
  LAPIS_NATS_STREAM: str({ default: 'LAPIS', desc: 'JetStream stream holding every event' }),
  LAPIS_NATS_USER: str({ default: '', desc: "this service's NATS user (empty: connect without credentials)", example: 'scheduler' }),
  LAPIS_NATS_PASSWORD_FILE: str({
    default: '',
    desc: "file holding the NATS user's password (from a Secret; read once, never logged)",
    example: '/etc/lapis/nats/password',
  }),
  LAPIS_NATS_CA_FILE: str({
    default: '',
    desc: "CA certificate the NATS server's TLS certificate must chain to (set: TLS is required)",
    example: '/etc/lapis/nats-tls/ca.crt',
  }),
  LOG_LEVEL: str({
    default: 'info',
    choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    desc: 'pino log level',
  }),
  LAPIS_SHUTDOWN_GRACE_MS: num({ default: 10_000, desc: 'time in-flight calls get to finish on SIGTERM' }),
  LAPIS_SHUTDOWN_DELAY_MS: num({
    default: 0,
    desc: 'on SIGTERM, time the service goes on serving while NOT_SERVING, before it refuses new calls: load balancers (Kubernetes endpoints) stop sending it calls meanwhile',
  }),
  LAPIS_MAX_STREAMS_PER_CALLER: positiveInt({
    default: DEFAULT_CALLER_LIMITS.streams,
    desc: 'server streams (watches, log follows) one caller may have open at once; more get RESOURCE_EXHAUSTED',
  }),
  LAPIS_MAX_CALLS_PER_CALLER: positiveInt({
    default: DEFAULT_CALLER_LIMITS.unary,
    desc: 'unary calls one caller may have in progress at once; more get RESOURCE_EXHAUSTED',
  }),
  LAPIS_OIDC_ISSUER: str({ default: '', desc: 'OIDC issuer URL whose JWTs are accepted', example: 'https://iam.example.org/' }),
  LAPIS_OIDC_AUDIENCE: str({ default: '', desc: 'audience the JWTs must carry (empty: not checked)' }),
  LAPIS_OIDC_JWKS_URL: str({ default: '', desc: "issuer's JWKS URL (empty: found through OIDC discovery)" }),
  LAPIS_OIDC_PROJECT_CLAIM: str({ default: 'groups', desc: 'JWT claim listing the projects of the caller' }),
  LAPIS_OIDC_ROLES_CLAIM: str({ default: 'roles', desc: 'JWT claim listing the roles of the caller' }),
  LAPIS_ADMIN_ROLE: str({ default: 'admin', desc: 'role (or group) that makes a caller an admin' }),
  LAPIS_STATIC_TOKENS_FILE: str({ default: '', desc: 'YAML file of static bearer tokens, for sites without an issuer' }),
  LAPIS_SERVICE_TOKEN: str({ default: '', desc: 'bearer token this service sends when it calls another on its own behalf' }),
  LAPIS_ALLOW_INSECURE_ISSUER: bool({ default: false, desc: 'accept an http:// issuer (tests and local runs only)' }),
};

/** A NATS user comes with its password, and a password with its user. */
export function requireNatsCredentials(config: { LAPIS_NATS_USER: string; LAPIS_NATS_PASSWORD_FILE: string }): string | undefined {
  if (Boolean(config.LAPIS_NATS_USER) === Boolean(config.LAPIS_NATS_PASSWORD_FILE)) return undefined;
  return 'LAPIS_NATS_USER and LAPIS_NATS_PASSWORD_FILE must be set together (or neither, for a NATS without authentication)';
}

/** At least one way to authenticate callers must be configured. */
export function requireAuthSource(config: {
  LAPIS_OIDC_ISSUER: string;
  LAPIS_STATIC_TOKENS_FILE: string;
  LAPIS_ALLOW_INSECURE_ISSUER: boolean;
}): string | undefined {
  if (!config.LAPIS_OIDC_ISSUER && !config.LAPIS_STATIC_TOKENS_FILE) {
    return 'LAPIS_OIDC_ISSUER or LAPIS_STATIC_TOKENS_FILE must be set: callers need a way to authenticate';
  }
  if (config.LAPIS_OIDC_ISSUER) {
    let issuer: URL;
    try {
      issuer = new URL(config.LAPIS_OIDC_ISSUER);
    } catch {
      return `LAPIS_OIDC_ISSUER=${JSON.stringify(config.LAPIS_OIDC_ISSUER)} is invalid: not a URL`;
    }
    if (issuer.protocol !== 'https:' && !config.LAPIS_ALLOW_INSECURE_ISSUER) {
      return `LAPIS_OIDC_ISSUER=${JSON.stringify(config.LAPIS_OIDC_ISSUER)} is invalid: must be https (or set LAPIS_ALLOW_INSECURE_ISSUER=true for tests)`;
    }
  }
  return undefined;
}
