// Retrying a piece of work, written once for the services and tools: one library (cockatiel,
// whose 3.x line is the one for CommonJS on Node 20) behind one vocabulary. `attempts` counts
// every try, the first included; `delayMs(n, error)` is the pause after the n-th failed try
// (so a caller can follow a server's Retry-After); `retryIf` says which errors another try
// may cure; once `signal` is aborted no try follows. Whatever ends the retrying (an error not
// worth another try, the last attempt, the signal) is thrown as the work threw it.
// No I/O and nothing heavy: tools that must start fast import it on its own.
import { DelegateBackoff, handleWhen, retry } from 'cockatiel';

export interface RetryOptions {
  /** Tries in all, the first included (1: no retry). */
  attempts: number;
  /** The pause after the `failed`-th failed try, in ms. */
  delayMs: (failed: number, error: unknown) => number;
  /** Whether another try may cure this error (default: any error). */
  retryIf?: (error: unknown) => boolean;
  /** Told of each failed try that is retried, before the pause. */
  onRetry?: (error: unknown, failed: number, delayMs: number) => void;
  /** Once aborted, a failed try is not retried. */
  signal?: AbortSignal;
}

const errorOf = (reason: { error: Error } | { value: unknown }): unknown => ('error' in reason ? reason.error : undefined);

/** Runs `work` (told its attempt, from 1) until it succeeds or the options say stop. */
export function withRetries<T>(work: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const { retryIf, onRetry } = options;
  const policy = retry(handleWhen(retryIf ? (error) => retryIf(error) : () => true), {
    maxAttempts: Math.max(0, options.attempts - 1),
    backoff: new DelegateBackoff((context) => options.delayMs(context.attempt, errorOf(context.result))),
  });
  if (onRetry) policy.onRetry((event) => onRetry(errorOf(event), event.attempt, event.delay));
  return policy.execute(({ attempt }) => work(attempt + 1), options.signal);
}
