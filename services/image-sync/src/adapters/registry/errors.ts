// How a registry's refusal reaches the syncer: a RegistryError with a reason, final for the
// request that met it (the transport retries only what may pass on a second try).

/** A registry answered in a way that is final for this request (not retried). */
export class RegistryError extends Error {
  override name = 'RegistryError';
  constructor(
    message: string,
    /** UPPER_SNAKE_CASE: UNAUTHORIZED, NOT_FOUND, DIGEST_MISMATCH, UNAVAILABLE, ... */
    readonly reason: string,
    readonly status = 0,
  ) {
    super(message);
  }
}

/** The RegistryError behind an error the transport wrapped (a stream that failed its digest check). */
export function registryCause(error: unknown): RegistryError | undefined {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof RegistryError) return e;
  }
  return undefined;
}
