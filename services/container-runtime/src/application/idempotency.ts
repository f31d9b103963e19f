// Idempotency keys (AIP-155): a mutation that carries a request id is remembered in the KV
// bucket `runtime-requests` (24 h) under its method and the caller's project, so a retry
// answers what the first call did instead of doing it again.
import { createHash } from 'node:crypto';
import type { Store } from '../adapters/store';
import type { Scope } from '../domain/door';

export class RequestLog {
  constructor(private readonly store: Store) {}

  /** The id of the instance or volume an earlier call with this request id acted on. */
  async find(method: string, scope: Scope, requestId: string): Promise<string | undefined> {
    return (await this.store.requests.get(requestKey(method, scope, requestId)))?.value;
  }

  async remember(method: string, scope: Scope, requestId: string, id: string): Promise<void> {
    await this.store.requests.put(requestKey(method, scope, requestId), id);
  }
}

/** Request ids are the caller's text: hashed into a plain KV key, one namespace per project. */
function requestKey(method: string, scope: Scope, requestId: string): string {
  return `${method}.${createHash('sha256').update(`${scope.project}\0${requestId}`).digest('hex').slice(0, 40)}`;
}
