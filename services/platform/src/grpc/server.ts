// The gRPC server every service runs: its handlers are plain async functions of
// (request, context); authentication, error mapping and logging happen here, once.
// Health (grpc.health.v1, overall and per service, tied to the dependencies) and server
// reflection are served beside them without authentication.
import {
  Server,
  ServerCredentials,
  type Metadata,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { trace } from '@opentelemetry/api';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import type { Authenticator, Caller } from '../auth';
import { Code, codeName, LapisError, permissionDenied } from '../errors';
import { isNatsUnavailable, natsUnavailable } from '../nats/availability';
import type { Logger } from '../logging';
import { reflectionPackage } from './reflection';
import { recordServerCall } from './rpc-metrics';
import { toGrpcStatus } from './status';
import { CallerSlots, type CallerLimits } from './stream-limits';
import { EdgeValidation } from './validation';

/** One method of a ts-proto grpc-js service definition. */
interface MethodDefinition {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestDeserialize(value: Buffer): unknown;
  responseSerialize(value: never): Buffer;
}
type ServiceDefinition = Record<string, MethodDefinition>;

type RequestOf<M> = M extends { requestDeserialize(value: Buffer): infer R } ? R : never;
type ResponseOf<M> = M extends { responseSerialize(value: infer R): Buffer } ? R : never;

export interface CallContext {
  caller: Caller;
  metadata: Metadata;
  /** Aborted when the client cancels or the deadline passes. */
  signal: AbortSignal;
  log: Logger;
  /** Full method name, for example "/lapis.runtime.v1.RuntimeService/GetInstance". */
  method: string;
  /** Throws PERMISSION_DENIED unless the caller is an admin. */
  requireAdmin(): void;
}

/** Handlers for every method of a service: unary ones return, streaming ones send. */
export type Handlers<D> = {
  [K in keyof D]: D[K] extends { requestStream: false; responseStream: true }
    ? (request: RequestOf<D[K]>, context: CallContext, send: (response: ResponseOf<D[K]>) => Promise<void>) => Promise<void>
    : (request: RequestOf<D[K]>, context: CallContext) => Promise<ResponseOf<D[K]>>;
};

export interface ServiceRegistration {
  name: string;
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

/** Binds handlers to a generated service definition. */
export function service<D extends ServiceDefinition>(definition: D, handlers: Handlers<D>): ServiceRegistration {
  const first = Object.values(definition)[0];
  if (!first) throw new Error('a service needs at least one method');
  return {
    name: first.path.split('/')[1]!,
    definition,
    implementation: handlers as unknown as UntypedServiceImplementation,
  };
}

export interface GrpcServerOptions {
  /** The service's domain in error details, for example "scheduler.lapis.dev". */
  domain: string;
  host: string;
  port: number;
  services: ServiceRegistration[];
  authenticator: Authenticator;
  log: Logger;
  /** The buf-built descriptor set of the contracts and health (for reflection). */
  descriptorSetPath?: string;
  /** Calls one caller may have in progress at once (default DEFAULT_CALLER_LIMITS). */
  callerLimits?: CallerLimits;
}

export class GrpcServer {
  readonly server = new Server();
  readonly health: HealthImplementation;
  port = 0;
  private readonly dependencies = new Map<string, boolean>();
  private draining = false;
  private readonly inFlight = new Set<AbortController>();
  private readonly slots: CallerSlots;
  /** Every request is checked against its contract before a handler sees it. */
  private readonly edge: EdgeValidation;

  constructor(private readonly options: GrpcServerOptions) {
    this.slots = new CallerSlots(options.callerLimits);
    this.health = new HealthImplementation(this.statusMap('NOT_SERVING'));
    this.health.addToServer(this.server);
    this.edge = new EdgeValidation(options.descriptorSetPath ?? require.resolve('@lapis/proto/descriptor.binpb'));
    for (const registration of options.services) {
      this.server.addService(this.edge.guard(registration.definition) as never, this.wrap(registration));
    }
    // Reflection describes what this server serves, not every contract of the mesh.
    new ReflectionService(reflectionPackage(options.descriptorSetPath), {
      services: [...options.services.map((s) => s.name), 'grpc.health.v1.Health'],
    }).addToServer(this.server);
  }

  async listen(): Promise<number> {
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${this.options.host}:${this.options.port}`, ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(error) : resolve(port),
      ),
    );
    this.updateHealth();
    this.options.log.info({ port: this.port, services: this.options.services.map((s) => s.name) }, 'gRPC server listening');
    return this.port;
  }

  /** Readiness follows the dependencies: NOT_SERVING while any of them is down. */
  setDependency(name: string, up: boolean): void {
    if (this.dependencies.get(name) === up) return;
    this.dependencies.set(name, up);
    this.options.log[up ? 'info' : 'warn']({ dependency: name }, up ? 'dependency up' : 'dependency down');
    this.updateHealth();
  }

  /**
   * Graceful stop: health goes NOT_SERVING; calls are still served for `delayMs`, while load
   * balancers take the server out (a Kubernetes Service's endpoints follow the pod's
   * termination and readiness with a lag); then new calls are refused and in-flight calls get
   * up to `graceMs` to finish, then the rest are cancelled.
   */
  async shutdown(graceMs: number, delayMs = 0): Promise<void> {
    this.draining = true;
    this.updateHealth();
    if (delayMs > 0) {
      this.options.log.info({ delayMs }, 'NOT_SERVING; still taking calls while load balancers take this server out');
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.options.log.warn({ calls: this.inFlight.size }, 'grace period over, cancelling calls');
        for (const call of this.inFlight) call.abort();
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  private updateHealth(): void {
    const ready = this.port !== 0 && !this.draining && [...this.dependencies.values()].every(Boolean);
    for (const [name, value] of Object.entries(this.statusMap(ready ? 'SERVING' : 'NOT_SERVING'))) {
      this.health.setStatus(name, value);
    }
  }

  private statusMap(value: ServingStatus): Record<string, ServingStatus> {
    return Object.fromEntries(['', ...this.options.services.map((s) => s.name)].map((name) => [name, value]));
  }

  private wrap(registration: ServiceRegistration): UntypedServiceImplementation {
    const wrapped: UntypedServiceImplementation = {};
    for (const [key, method] of Object.entries(registration.definition)) {
      const handler = registration.implementation[key] as unknown as (...args: unknown[]) => Promise<unknown>;
      if (typeof handler !== 'function') throw new Error(`${method.path} has no handler`);
      wrapped[key] = method.responseStream
        ? (call: ServerWritableStream<unknown, unknown>) => {
            const send = (response: unknown) =>
              new Promise<void>((resolve) => {
                if (call.cancelled || call.write(response)) return resolve();
                // A cancelled call never drains: the handler goes on, sees ctx.signal and ends.
                const done = () => {
                  call.off('drain', done).off('cancelled', done);
                  resolve();
                };
                call.once('drain', done).once('cancelled', done);
              });
            this.run(method.path, call, (ctx) => handler(call.request, ctx, send), 'streams').then(
              () => call.end(),
              (error) => call.emit('error', error),
            );
          }
        : (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
            this.run(method.path, call, (ctx) => handler(call.request, ctx), 'unary').then(
              (response) => callback(null, response),
              (error) => callback(error),
            );
          };
    }
    return wrapped;
  }

  /** Authenticates, runs the handler and turns whatever it throws into a status. */
  private async run<T>(
    method: string,
    call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>,
    body: (ctx: CallContext) => Promise<T>,
    kind: 'streams' | 'unary',
  ): Promise<T> {
    const startedAt = performance.now();
    let code: number = Code.OK;
    const controller = new AbortController();
    call.once('cancelled', () => controller.abort());
    this.inFlight.add(controller);
    const log = this.options.log.child({ method });
    let release: (() => void) | undefined;
    try {
      const caller = await this.options.authenticator.authenticate(call.metadata);
      release = this.slots.take(caller, kind);
      const ctx: CallContext = {
        caller,
        metadata: call.metadata,
        signal: controller.signal,
        log: log.child({ user: caller.user, project: caller.project }),
        method,
        requireAdmin() {
          if (!caller.admin)
            throw permissionDenied(`${method.split('/')[2]} needs the admin role; ${caller.user} does not have it`, 'ADMIN_ONLY');
        },
      };
      this.edge.check(method, call.request);
      return await body(ctx);
    } catch (error) {
      const status = this.toStatus(error, method, log);
      code = status.code ?? Code.UNKNOWN;
      throw status;
    } finally {
      release?.();
      this.inFlight.delete(controller);
      recordServerCall(method, call.cancelled ? Code.CANCELLED : code, startedAt);
    }
  }

  private toStatus(error: unknown, method: string, log: Logger) {
    if (error instanceof LapisError) {
      log.info({ code: codeName(error.code), reason: error.reason }, error.message);
      return toGrpcStatus(error, this.options.domain);
    }
    if (isNatsUnavailable(error)) {
      const unavailable = natsUnavailable(error as Error);
      log.warn({ err: error }, unavailable.message);
      return toGrpcStatus(unavailable, this.options.domain);
    }
    // Anything else is a bug: log it whole, tell the client only where to look.
    const traceId = trace.getActiveSpan()?.spanContext().traceId;
    log.error({ err: error }, 'unexpected error');
    return toGrpcStatus(
      new LapisError(Code.INTERNAL, `internal error in ${method}${traceId ? ` (trace ${traceId})` : ''}`, 'INTERNAL'),
      this.options.domain,
    );
  }
}
