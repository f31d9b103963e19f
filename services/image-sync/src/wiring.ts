// Builds image-sync's object graph from its configuration: the KV stores, the site registry
// client, the syncer (following the catalogue), the use cases with the policy file's policies
// and the interval scheduler, and the gRPC services over them; registers their shutdown.
import type { ServiceContext, ServiceRegistration } from '@lapis/platform';
import { readPolicyFile } from './adapters/policy-file';
import { RegistryClient } from './adapters/registry/client';
import { readCredentials } from './adapters/secrets';
import { openStores } from './adapters/store';
import { ImageSync } from './application/image-sync';
import { observeCatalogue, observeSyncResults } from './application/metrics';
import { Syncer } from './application/syncer';
import type { ImageSyncConfig } from './config';
import { registrations } from './server';

export async function wireImageSync(config: ImageSyncConfig, { bus, log, shutdown }: ServiceContext): Promise<ServiceRegistration[]> {
  const stores = await openStores(bus);
  const siteCredentials = readCredentials(config.LAPIS_SITE_REGISTRY_SECRET);
  const site = new RegistryClient({ url: config.LAPIS_SITE_REGISTRY, ...(siteCredentials ? { credentials: siteCredentials } : {}) });
  const syncer = new Syncer({ site, stores, bus, log, blobConcurrency: config.LAPIS_SYNC_CONCURRENCY });
  await syncer.catalogue();
  observeCatalogue(() => syncer.catalogue());
  observeSyncResults(async () => (await stores.statuses.list()).map((entry) => entry.value));
  const app = new ImageSync({ stores, syncer, log, siteHost: site.host });
  if (config.LAPIS_POLICY_FILE) await app.loadPolicies(readPolicyFile(config.LAPIS_POLICY_FILE), config.LAPIS_POLICY_FILE);
  app.startScheduler();
  shutdown.add('syncs', () => app.stop());
  shutdown.add('catalogue watch', async () => syncer.stop());
  return registrations(app);
}
