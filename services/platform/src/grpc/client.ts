// Clients of other Lapis services: a deadline on every unary call, retries on UNAVAILABLE
// (grpc-js retry policy with backoff), the bearer token in the metadata, and each call's
// duration by method and status (rpc-metrics.ts). Trace context is propagated by the gRPC
// instrumentation.
import { credentials, InterceptingCall, Metadata, type ChannelOptions, type Interceptor } from '@grpc/grpc-js';
import { PROJECT_HEADER } from '../headers';
import { recordClientCall } from './rpc-metrics';

export interface ClientOptions {
  /** A token, or a function giving the current one (for example the caller's, forwarded). */
  token?: string | (() => string | undefined);
  /** Project to act in, for callers in several projects. */
  project?: string;
  /** Deadline of unary calls that set none; streaming calls get none by default. */
  deadlineMs?: number;
  /** Attempts (first included) for calls that fail with UNAVAILABLE. */
  maxAttempts?: number;
  /**
   * gRPC's wait-for-ready: a call made while the server cannot be reached waits (within its
   * deadline) for the channel to connect instead of failing at once.
   */
  waitForReady?: boolean;
}

type ClientConstructor<C> = new (address: string, creds: ReturnType<typeof credentials.createInsecure>, options?: ChannelOptions) => C;

export function createClient<C>(Client: ClientConstructor<C>, address: string, options: ClientOptions = {}): C {
  const maxAttempts = options.maxAttempts ?? 5;
  const retryPolicy = {
    maxAttempts,
    initialBackoff: '0.1s',
    maxBackoff: '2s',
    backoffMultiplier: 2,
    retryableStatusCodes: ['UNAVAILABLE'],
  };
  // grpc-js wants at least 2 attempts in a retry policy; 1 means no policy at all.
  const serviceConfig = { methodConfig: [{ name: [{}], ...(maxAttempts > 1 ? { retryPolicy } : {}) }] };
  return new Client(address, credentials.createInsecure(), {
    'grpc.service_config': JSON.stringify(serviceConfig),
    // A call sent on a connection to a peer that vanished without closing it (a pod whose
    // network went first) fails within 15 s and is retried, instead of waiting out its deadline.
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    // A peer that restarts (a pod replaced) is reached again within 2 s of its coming back,
    // not after grpc-js's default backoff of up to 2 minutes.
    'grpc.max_reconnect_backoff_ms': 2_000,
    interceptors: [callDefaults(options), callDuration],
  } as ChannelOptions);
}

function callDefaults(options: ClientOptions): Interceptor {
  const deadlineMs = options.deadlineMs ?? 10_000;
  return (callOptions, nextCall) => {
    const streaming = callOptions.method_definition.responseStream;
    if (!callOptions.deadline && !streaming) callOptions.deadline = Date.now() + deadlineMs;
    return new InterceptingCall(nextCall(callOptions), {
      start(metadata: Metadata, listener, next) {
        const token = typeof options.token === 'function' ? options.token() : options.token;
        if (token && !metadata.get('authorization').length) metadata.set('authorization', `Bearer ${token}`);
        if (options.project && !metadata.get(PROJECT_HEADER).length) metadata.set(PROJECT_HEADER, options.project);
        // grpc-js reads wait-for-ready from the call's metadata options, not from the service config.
        if (options.waitForReady) metadata.setOptions({ ...metadata.getOptions(), waitForReady: true });
        next(metadata, listener);
      },
    });
  };
}

/** Records every call's duration, from its start to its status (retries included). */
const callDuration: Interceptor = (callOptions, nextCall) => {
  const path = callOptions.method_definition.path;
  const startedAt = performance.now();
  return new InterceptingCall(nextCall(callOptions), {
    start(metadata, _listener, next) {
      next(metadata, {
        onReceiveStatus(status, nextStatus) {
          recordClientCall(path, status.code, startedAt);
          nextStatus(status);
        },
      });
    },
  });
};

/** Promise form of a unary call on a generated grpc-js client. */
export function call<Req, Res>(
  method: (request: Req, metadata: Metadata, callback: (error: Error | null, response: Res) => void) => unknown,
  request: Req,
  metadata = new Metadata(),
): Promise<Res> {
  return new Promise((resolve, reject) => method(request, metadata, (error, response) => (error ? reject(error) : resolve(response))));
}
