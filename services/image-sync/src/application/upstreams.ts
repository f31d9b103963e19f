// The upstream registries' clients: one per URL and credentials, kept (it remembers the auth
// scheme and its tokens), credentials read from the policy's secret at every use.
import type { SyncPolicy } from '@lapis/proto/lapis/images/v1/images';
import { RegistryClient } from '../adapters/registry/client';
import { readCredentials } from '../adapters/secrets';
import type { SyncerOptions } from './sync-context';

export class Upstreams {
  private readonly clients = new Map<string, RegistryClient>();

  constructor(private readonly options: SyncerOptions['upstream']) {}

  /** The policy's source; throws SyncFailure CREDENTIALS_UNAVAILABLE when its secret cannot be read. */
  clientFor(policy: SyncPolicy): RegistryClient {
    const credentials = readCredentials(policy.source?.credentialsSecret ?? '');
    const key = JSON.stringify([policy.source?.url, credentials]);
    let client = this.clients.get(key);
    if (!client) {
      client = new RegistryClient({ url: policy.source?.url ?? '', ...(credentials ? { credentials } : {}), ...this.options });
      this.clients.set(key, client);
    }
    return client;
  }

  /** Closes the clients' connections. */
  close(): void {
    for (const client of this.clients.values()) void client.close().catch(() => undefined);
    this.clients.clear();
  }
}
