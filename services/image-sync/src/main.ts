// image-sync: wiring only. Config -> site registry client, KV stores, syncer -> gRPC server.
import { runMain, startService } from '@lapis/platform';
import { ImageSyncApp } from './app';
import { RegistryClient } from './adapters/registry/client';
import { openStores } from './adapters/store';
import { loadImageSyncConfig } from './config';
import { registrations } from './server';
import { readCredentials, Syncer } from './sync';

export async function start(env: NodeJS.ProcessEnv = process.env) {
  const config = loadImageSyncConfig(env);
  return startService({
    name: 'image-sync',
    domain: 'images.lapis.dev',
    config,
    serve: async ({ log, bus, shutdown }) => {
      const stores = await openStores(bus);
      const siteCredentials = readCredentials(config.LAPIS_SITE_REGISTRY_SECRET);
      const site = new RegistryClient({ url: config.LAPIS_SITE_REGISTRY, ...(siteCredentials ? { credentials: siteCredentials } : {}) });
      const syncer = new Syncer({ site, stores, bus, log, blobConcurrency: config.LAPIS_SYNC_CONCURRENCY });
      await syncer.catalogue();
      const app = new ImageSyncApp({ stores, syncer, log });
      if (config.LAPIS_POLICY_FILE) await app.loadPolicyFile(config.LAPIS_POLICY_FILE);
      app.startScheduler();
      shutdown.add('syncs', () => app.stop());
      shutdown.add('catalogue watch', async () => syncer.stop());
      return registrations(app, site.host);
    },
  });
}

if (require.main === module) runMain(start);
