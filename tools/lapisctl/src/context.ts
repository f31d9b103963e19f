// What every command shares: the global options (addresses, token, project, output), the
// config file, gRPC clients made on first use, and turning failures into one clear line.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { CallOptions, ClientReadableStream, Metadata, ServiceError } from '@grpc/grpc-js';
// The client and error parts only: the @lapis/platform barrel (telemetry, NATS, logging)
// would add seconds to every command. Even these (gRPC, protobuf) are loaded by the first call
// that needs them: the offline `lapisctl tosca validate` never does.
import type * as PlatformClient from '@lapis/platform/client';
import type * as PlatformErrors from '@lapis/platform/errors';
import { UsageError, type OptionDef, type OptionValues } from './cli';

export type Output = 'table' | 'json' | 'yaml';
export type ServiceKey = 'scheduler' | 'runtime' | 'images' | 'tosca';

export const DEFAULT_ADDRESSES: Record<ServiceKey, string> = {
  runtime: '127.0.0.1:50051',
  images: '127.0.0.1:50052',
  scheduler: '127.0.0.1:50053',
  tosca: '127.0.0.1:50054',
};

const ENV: Record<ServiceKey, string> = {
  scheduler: 'LAPIS_SCHEDULER_ADDRESS',
  runtime: 'LAPIS_RUNTIME_ADDRESS',
  images: 'LAPIS_IMAGES_ADDRESS',
  tosca: 'LAPIS_TOSCA_ADDRESS',
};

const SERVICE_NAMES: Record<ServiceKey, string> = {
  scheduler: 'the scheduler',
  runtime: 'the container runtime',
  images: 'image-sync',
  tosca: 'the tosca-orchestrator',
};

export const GLOBAL_OPTIONS: OptionDef[] = [
  {
    long: 'scheduler',
    value: 'ADDR',
    description: 'scheduler gRPC address (env LAPIS_SCHEDULER_ADDRESS)',
    defaultText: DEFAULT_ADDRESSES.scheduler,
  },
  {
    long: 'runtime',
    value: 'ADDR',
    description: 'container-runtime gRPC address (env LAPIS_RUNTIME_ADDRESS)',
    defaultText: DEFAULT_ADDRESSES.runtime,
  },
  {
    long: 'images',
    value: 'ADDR',
    description: 'image-sync gRPC address (env LAPIS_IMAGES_ADDRESS)',
    defaultText: DEFAULT_ADDRESSES.images,
  },
  {
    long: 'tosca',
    value: 'ADDR',
    description: 'tosca-orchestrator gRPC address (env LAPIS_TOSCA_ADDRESS)',
    defaultText: DEFAULT_ADDRESSES.tosca,
  },
  { long: 'token', value: 'TOKEN', description: 'bearer token (else env LAPIS_TOKEN, else token: in ~/.config/lapis/config.yaml)' },
  { long: 'project', value: 'NAME', description: 'project to act in, for members of several (env LAPIS_PROJECT)' },
  { long: 'output', short: 'o', value: 'FORMAT', description: 'output format', choices: ['table', 'json', 'yaml'], defaultText: 'table' },
  { long: 'timeout', value: 'SECONDS', description: 'deadline of each call', defaultText: '30' },
];

interface ConfigFile {
  token?: string;
  project?: string;
  scheduler?: string;
  runtime?: string;
  images?: string;
  tosca?: string;
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'lapis', 'config.yaml');
}

function readConfig(file: string): ConfigFile {
  if (!existsSync(file)) return {};
  let parsed: unknown;
  try {
    // The YAML library on demand (most runs have no config file).
    parsed = (require('yaml') as typeof import('yaml')).parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError(`${file} must be a YAML map (token: ..., project: ...)`);
  const config: ConfigFile = {};
  for (const key of ['token', 'project', 'scheduler', 'runtime', 'images', 'tosca'] as const) {
    const value = (parsed as Record<string, unknown>)[key];
    if (value !== undefined && value !== null) config[key] = String(value);
  }
  return config;
}

const grpc = () => require('@grpc/grpc-js') as typeof import('@grpc/grpc-js');
const platformClient = () => require('@lapis/platform/client') as typeof PlatformClient;
const platformErrors = () => require('@lapis/platform/errors') as typeof PlatformErrors;

type Constructor<C> = Parameters<typeof PlatformClient.createClient<C>>[0];

export class Context {
  readonly output: Output;
  // Keyed by service and constructor: generated constructors share one class name.
  private readonly clients = new Map<ServiceKey, Map<unknown, { close(): void }>>();
  private config?: ConfigFile;
  readonly timeoutMs: number;

  constructor(
    readonly options: OptionValues,
    readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.output = ((options.output as string | undefined) ?? 'table') as Output;
    const timeout = options.timeout === undefined ? 30 : Number(options.timeout);
    if (!Number.isFinite(timeout) || timeout <= 0)
      throw new UsageError(`--timeout must be a number of seconds (got "${String(options.timeout)}")`);
    this.timeoutMs = timeout * 1000;
  }

  private file(): ConfigFile {
    this.config ??= readConfig(configPath(this.env));
    return this.config;
  }

  address(service: ServiceKey): string {
    return (this.options[service] as string | undefined) || this.env[ENV[service]] || this.file()[service] || DEFAULT_ADDRESSES[service];
  }

  token(): string {
    const token = (this.options.token as string | undefined) || this.env.LAPIS_TOKEN || this.file().token;
    if (!token) {
      throw new UsageError(`no token: pass --token, set LAPIS_TOKEN, or put "token: ..." in ${configPath(this.env)}`);
    }
    return token;
  }

  project(): string | undefined {
    return (this.options.project as string | undefined) || this.env.LAPIS_PROJECT || this.file().project || undefined;
  }

  client<C extends { close(): void }>(service: ServiceKey, Client: Constructor<C>): C {
    const forService = this.clients.get(service) ?? new Map<unknown, { close(): void }>();
    this.clients.set(service, forService);
    let client = forService.get(Client) as C | undefined;
    if (!client) {
      const project = this.project();
      client = platformClient().createClient(Client, this.address(service), {
        token: this.token(),
        ...(project ? { project } : {}),
        deadlineMs: this.timeoutMs,
        maxAttempts: 3,
      });
      forService.set(Client, client);
    }
    return client;
  }

  /** A unary call, its failure labelled with the service it went to. */
  async call<Req, Res>(
    service: ServiceKey,
    method: (
      request: Req,
      metadata: Metadata,
      options: Partial<CallOptions>,
      callback: (error: ServiceError | null, response: Res) => void,
    ) => unknown,
    request: Req,
  ): Promise<Res> {
    try {
      return await new Promise<Res>((resolve, reject) =>
        method(request, new (grpc().Metadata)(), {}, (error, response) => (error ? reject(error) : resolve(response))),
      );
    } catch (error) {
      throw new CallError(service, this.address(service), error as ServiceError);
    }
  }

  /** Reads a server stream until it ends; `onMessage` returning true stops it early. */
  async stream<Res>(
    service: ServiceKey,
    open: () => ClientReadableStream<Res>,
    onMessage: (message: Res) => boolean | void | Promise<boolean | void>,
  ): Promise<void> {
    const call = open();
    const stop = () => call.cancel();
    process.once('SIGINT', stop);
    try {
      await new Promise<void>((resolve, reject) => {
        let done = false;
        let chain = Promise.resolve();
        call.on('data', (message: Res) => {
          chain = chain
            .then(async () => {
              if (done) return;
              if ((await onMessage(message)) === true) {
                done = true;
                call.cancel();
                resolve();
              }
            })
            .catch((error: unknown) => {
              done = true;
              call.cancel();
              reject(error);
            });
        });
        call.on('error', (error: ServiceError) => {
          if (done) return;
          done = true;
          if (error.code === platformErrors().Code.CANCELLED) chain.then(() => resolve(), reject);
          else reject(new CallError(service, this.address(service), error));
        });
        call.on('end', () => {
          if (done) return;
          done = true;
          chain.then(() => resolve(), reject);
        });
      });
    } finally {
      process.removeListener('SIGINT', stop);
    }
  }

  close(): void {
    for (const forService of this.clients.values()) for (const client of forService.values()) client.close();
    this.clients.clear();
  }
}

/** A failed gRPC call, with the service and address it went to. */
export class CallError extends Error {
  override name = 'CallError';
  constructor(
    readonly service: ServiceKey,
    readonly address: string,
    override readonly cause: ServiceError,
  ) {
    super(cause.details || cause.message);
  }

  /** One line (plus one per field violation): the message, the status and the reason. */
  describe(): string {
    const { Code, codeName, errorDetails } = platformErrors();
    const code = codeName(this.cause.code);
    if (this.cause.code === Code.UNAVAILABLE || this.cause.code === Code.DEADLINE_EXCEEDED) {
      const why = (this.cause.details || this.cause.message).replace(/\s*Resolution note:.*$/s, '').trim();
      return `error: cannot reach ${SERVICE_NAMES[this.service]} at ${this.address} (${code}): ${why}`;
    }
    let reason: string | undefined;
    let violations: { field: string; description: string }[] = [];
    try {
      const details = errorDetails(this.cause);
      reason = details.errorInfo?.reason;
      violations = details.violations;
    } catch {
      // Undecodable details: the status and message still say enough.
    }
    const label = reason && reason !== code ? `${code}, ${reason}` : code;
    const lines = [`error: ${this.cause.details || this.cause.message} (${label})`];
    // The message of an INVALID_ARGUMENT already lists the violations; others get them below.
    if (!(this.cause.details ?? '').includes(violations[0]?.description ?? '\0')) {
      for (const v of violations) lines.push(`  ${v.field}: ${v.description}`);
    }
    return lines.join('\n');
  }
}

/** A command's failure that is not the server's (exit code 1). */
export class CommandError extends Error {
  override name = 'CommandError';
}
