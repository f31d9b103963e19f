// The start of every Lapis service, in one place: logger, NATS, gRPC server with health,
// reflection and auth, and the shutdown that undoes them in order. A service's main.ts
// parses its config and hands over what it serves.
import { Authenticator } from './auth';
import { readFileSync } from 'node:fs';
import { ConfigError, type platformSpecs, requireNatsCredentials, type ConfigOf } from './config';
import { GrpcServer, type ServiceRegistration } from './grpc/server';
import { createLogger, type Logger } from './logging';
import { defaultBusName, EventBus } from './nats/bus';
import { Shutdown } from './shutdown';
import { serveMetrics } from './telemetry/metrics-server';
import { shutdownTelemetry } from './telemetry/sdk';

type PlatformConfig = ConfigOf<typeof platformSpecs>;

export interface ServiceContext {
  log: Logger;
  bus: EventBus;
  shutdown: Shutdown;
}

export interface StartOptions {
  /** Service name, as in OTEL_SERVICE_NAME: "scheduler", "container-runtime"... */
  name: string;
  /** Error domain, for example "scheduler.lapis.dev". */
  domain: string;
  config: PlatformConfig;
  /** Stop on SIGTERM/SIGINT (default true); tests running services in-process turn it off. */
  handleSignals?: boolean;
  /** Builds what the server serves; runs after NATS is connected. */
  serve: (context: ServiceContext) => Promise<ServiceRegistration[]>;
}

export interface RunningService extends ServiceContext {
  server: GrpcServer;
  port: number;
  /** Port of the Prometheus endpoint; undefined when metrics are not exported through Prometheus. */
  metricsPort: number | undefined;
}

export function authenticatorFrom(config: PlatformConfig): Authenticator {
  return new Authenticator({
    issuer: config.LAPIS_OIDC_ISSUER || undefined,
    audience: config.LAPIS_OIDC_AUDIENCE || undefined,
    jwksUrl: config.LAPIS_OIDC_JWKS_URL || undefined,
    projectClaim: config.LAPIS_OIDC_PROJECT_CLAIM,
    rolesClaim: config.LAPIS_OIDC_ROLES_CLAIM,
    adminRole: config.LAPIS_ADMIN_ROLE,
    staticTokensFile: config.LAPIS_STATIC_TOKENS_FILE || undefined,
  });
}

/** The NATS user and password of the config; the password is read from its file, never logged. */
export function natsCredentialsFrom(
  config: Pick<PlatformConfig, 'LAPIS_NATS_USER' | 'LAPIS_NATS_PASSWORD_FILE'>,
): { user: string; password: string } | undefined {
  const problem = requireNatsCredentials(config);
  if (problem) throw new ConfigError(`invalid configuration:\n  ${problem}`);
  if (!config.LAPIS_NATS_USER) return undefined;
  let password: string;
  try {
    password = readFileSync(config.LAPIS_NATS_PASSWORD_FILE, 'utf8').trim();
  } catch (error) {
    throw new ConfigError(
      `invalid configuration:\n  LAPIS_NATS_PASSWORD_FILE cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  if (!password) throw new ConfigError('invalid configuration:\n  LAPIS_NATS_PASSWORD_FILE is empty');
  return { user: config.LAPIS_NATS_USER, password };
}

export async function startService(options: StartOptions): Promise<RunningService> {
  const { config } = options;
  const credentials = natsCredentialsFrom(config);
  const log = createLogger(options.name, config.LOG_LEVEL);
  const shutdown = new Shutdown(log);
  // From here on a SIGTERM stops whatever has started so far, in order.
  // The delay and the server's grace period, then as long again for NATS to drain and telemetry to flush.
  if (options.handleSignals !== false) shutdown.onSignals(undefined, config.LAPIS_SHUTDOWN_DELAY_MS + 2 * config.LAPIS_SHUTDOWN_GRACE_MS);
  let server: GrpcServer | undefined;
  let jetStreamUp = true;
  const bus = await EventBus.connect({
    url: config.LAPIS_NATS_URL,
    name: defaultBusName(options.name),
    stream: config.LAPIS_NATS_STREAM,
    log,
    replicas: config.LAPIS_NATS_REPLICAS,
    onConnectionChange: (up) => server?.setDependency('nats', up),
    // Connected is not enough: a cluster that lost its quorum takes no write.
    onJetStreamChange: (up) => {
      jetStreamUp = up;
      server?.setDependency('nats-jetstream', up);
    },
    ...(credentials ? { credentials } : {}),
    ...(config.LAPIS_NATS_CA_FILE ? { caFile: config.LAPIS_NATS_CA_FILE } : {}),
  });
  // The server stops taking calls first; what the service adds while building stops next;
  // NATS drains and telemetry flushes last.
  shutdown.add('grpc', async () => server?.shutdown(config.LAPIS_SHUTDOWN_GRACE_MS, config.LAPIS_SHUTDOWN_DELAY_MS));
  const services = await options.serve({ log, bus, shutdown });
  server = new GrpcServer({
    domain: options.domain,
    host: config.LAPIS_GRPC_HOST,
    port: config.LAPIS_GRPC_PORT,
    services,
    authenticator: authenticatorFrom(config),
    log,
    callerLimits: { streams: config.LAPIS_MAX_STREAMS_PER_CALLER, unary: config.LAPIS_MAX_CALLS_PER_CALLER },
  });
  server.setDependency('nats', !bus.nc.isClosed());
  server.setDependency('nats-jetstream', jetStreamUp);
  // Metrics first: a service that reports ready can be scraped.
  const metrics = await serveMetrics(config.LAPIS_GRPC_HOST, config.LAPIS_METRICS_PORT);
  if (metrics) log.info({ port: metrics.port, path: '/metrics' }, 'metrics endpoint listening');
  const port = await server.listen();
  // Scrapes go on while the service drains: the last figures before it stops are seen.
  shutdown
    .add('nats', () => bus.drain())
    .add('metrics', async () => metrics?.close())
    .add('telemetry', () => shutdownTelemetry());
  return { log, bus, shutdown, server, port, metricsPort: metrics?.port };
}

/**
 * The body of a service's main.ts: starts it (startService handles SIGTERM/SIGINT from its
 * first step on) and exits 1 with a plain message when it cannot start (a bad variable, NATS
 * unreachable).
 */
export function runMain(start: () => Promise<RunningService>): void {
  start().catch((error: unknown) => {
    const message = error instanceof ConfigError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`cannot start: ${message}\n`);
    process.exit(1);
  });
}
