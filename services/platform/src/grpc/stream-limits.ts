// Per-caller limits on calls in progress, so that one caller cannot hold a server's streams
// (WatchDeployment, log follows) or its handlers without bound: past its limit a caller gets
// RESOURCE_EXHAUSTED naming the limit, and other callers are not affected. A slot is taken
// once the caller is authenticated and given back when the handler ends (it ends when the
// stream completes, fails or is cancelled: handlers follow ctx.signal).
import type { Caller } from '../auth';
import { resourceExhausted } from '../errors';

export interface CallerLimits {
  /** Server streams one caller may have open at once (LAPIS_MAX_STREAMS_PER_CALLER). */
  streams: number;
  /** Unary calls one caller may have in progress at once (LAPIS_MAX_CALLS_PER_CALLER). */
  unary: number;
}

export const DEFAULT_CALLER_LIMITS: Readonly<CallerLimits> = Object.freeze({ streams: 32, unary: 256 });

type Kind = keyof CallerLimits;

const refusal: Record<Kind, { what: string; variable: string; reason: string; advice: string }> = {
  streams: { what: 'streams open', variable: 'LAPIS_MAX_STREAMS_PER_CALLER', reason: 'TOO_MANY_STREAMS', advice: 'close one first' },
  unary: { what: 'calls in progress', variable: 'LAPIS_MAX_CALLS_PER_CALLER', reason: 'TOO_MANY_CALLS', advice: 'wait for one to finish' },
};

export class CallerSlots {
  private readonly open = new Map<string, Record<Kind, number>>();

  constructor(private readonly limits: CallerLimits = DEFAULT_CALLER_LIMITS) {}

  /** Takes a slot for this caller or throws RESOURCE_EXHAUSTED; returns what gives it back (once). */
  take(caller: Caller, kind: Kind): () => void {
    // Users of the issuer and of the static token file are different people, even with one name.
    const key = `${caller.via}:${caller.user}`;
    const counts = this.open.get(key) ?? { streams: 0, unary: 0 };
    const limit = this.limits[kind];
    if (counts[kind] >= limit) {
      const r = refusal[kind];
      throw resourceExhausted(
        `${caller.user} already has ${counts[kind]} ${r.what}, the limit per caller (${r.variable}=${limit}); ${r.advice}`,
        r.reason,
        { limit: String(limit) },
      );
    }
    counts[kind]++;
    this.open.set(key, counts);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      counts[kind]--;
      if (counts.streams === 0 && counts.unary === 0) this.open.delete(key);
    };
  }
}
