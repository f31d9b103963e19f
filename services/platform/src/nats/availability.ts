// When NATS cannot take a write: the connection is down, or JetStream has no quorum (on a
// three-server cluster with replicas 3, two servers away). A write that fails so was never
// acknowledged; the caller hears UNAVAILABLE (try again later), never INTERNAL, and the
// service's readiness goes NOT_SERVING until a probe of the event stream answers again.
import { ErrorCode, type JetStreamManager, type NatsError } from 'nats';
import { Code, LapisError } from '../errors';
import { withRetries } from '../retry';

// nats.js codes of a request that no server answered, or that could not be sent.
const CLIENT_CODES = new Set<string>([
  ErrorCode.Timeout,
  ErrorCode.NoResponders,
  ErrorCode.Disconnect,
  ErrorCode.ConnectionClosed,
  ErrorCode.ConnectionDraining,
  ErrorCode.ConnectionRefused,
  ErrorCode.ConnectionTimeout,
  ErrorCode.JetStream408RequestTimeout,
]);

// nats-server's JetStream API errors (server/errors.json) that mean "no quorum, not now".
const SERVER_ERR_CODES = new Set([
  10005, // no suitable peers for placement
  10008, // JetStream system temporarily unavailable
  10009, // JetStream cluster can not handle request
  10118, // stream is offline
]);

/** True when `error` says NATS or JetStream is away, not that the request was wrong. */
export function isNatsUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const nats = error as NatsError;
  if (typeof nats.code === 'string' && CLIENT_CODES.has(nats.code)) return true;
  const api = nats.api_error;
  return api !== undefined && (api.code === 503 || SERVER_ERR_CODES.has(api.err_code ?? 0));
}

/** No server took the write (no responders, no quorum): trying again cannot write it twice. */
export function isNotDelivered(error: unknown): boolean {
  const nats = error as NatsError;
  if (nats?.code === ErrorCode.NoResponders) return true;
  const api = nats?.api_error;
  return api !== undefined && (api.code === 503 || SERVER_ERR_CODES.has(api.err_code ?? 0));
}

/** Away for now (a leader being elected, a reconnect), not for good (a closed connection). */
export function isNatsTransient(error: unknown): boolean {
  const code = (error as NatsError)?.code;
  const transient: string[] = [ErrorCode.Timeout, ErrorCode.JetStream408RequestTimeout, ErrorCode.Disconnect];
  return isNotDelivered(error) || transient.includes(code);
}

/**
 * Runs a NATS request again while `retryIf` says NATS is only away for now, for up to
 * `budgetMs`: when a cluster server goes, its streams elect a new leader within seconds, and
 * the write waits for it instead of failing (7 s: within the 10 s deadline Lapis clients
 * give a call, so that a quorum lost for good is still answered UNAVAILABLE). `retryIf` must fit the request: a write that
 * may have happened is tried again only when a second copy is harmless (an event with its
 * id, a plain put).
 */
export function throughFailover<T>(request: () => Promise<T>, retryIf: (error: unknown) => boolean, budgetMs = 7_000): Promise<T> {
  const deadline = Date.now() + budgetMs;
  return withRetries(request, {
    attempts: Number.MAX_SAFE_INTEGER,
    retryIf: (error) => Date.now() < deadline && retryIf(error),
    delayMs: (failed) => Math.min(1_000, 100 * failed),
  });
}

/** The UNAVAILABLE a caller gets for such an error. */
export function natsUnavailable(error: Error): LapisError {
  return new LapisError(
    Code.UNAVAILABLE,
    `the event store (NATS JetStream) is unavailable (${error.message}): nothing was acknowledged; try again`,
    'NATS_UNAVAILABLE',
  );
}

export interface JetStreamWatchOptions {
  /** The event stream: JetStream is up when it answers with a leader. */
  stream: string;
  /** Between probes, and how long one may take; default 2 s. */
  intervalMs?: number;
  /**
   * How long probes must keep failing before JetStream counts as down; default 10 s, longer
   * than a leader election takes (one server of three lost): readiness does not flap then,
   * which would take every replica of a service out of its load balancer at once.
   */
  downAfterMs?: number;
  onChange: (up: boolean) => void;
}

/**
 * Asks for the event stream's info every `intervalMs`: no answer in time, or no leader,
 * means no quorum. Reports changes only: up at once, down after `downAfterMs` of failures.
 */
export function watchJetStream(jsm: JetStreamManager, options: JetStreamWatchOptions): { stop(): void } {
  const intervalMs = options.intervalMs ?? 2_000;
  const downAfterMs = options.downAfterMs ?? 10_000;
  let last: boolean | undefined;
  let failingSince: number | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const probe = async () => {
    let up: boolean;
    try {
      const info = await jsm.streams.info(options.stream);
      up = !info.cluster || Boolean(info.cluster.leader);
    } catch {
      up = false;
    }
    if (stopped) return;
    if (up) failingSince = undefined;
    else failingSince ??= Date.now();
    const report = up || Date.now() - (failingSince ?? 0) >= downAfterMs;
    if (report && up !== last) {
      options.onChange(up);
      last = up;
    }
    timer = setTimeout(probe, intervalMs);
    timer.unref();
  };
  void probe();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
