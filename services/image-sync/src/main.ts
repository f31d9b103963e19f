// image-sync: the site's trusted image catalogue. Process entry only: config -> wiring
// (wiring.ts) -> serve; shutdown. start() is exported for the tests, which run it in-process.
import { runMain, startService } from '@lapis/platform';
import { loadImageSyncConfig } from './config';
import { wireImageSync } from './wiring';

export async function start(env: NodeJS.ProcessEnv = process.env) {
  const config = loadImageSyncConfig(env);
  return startService({
    name: 'image-sync',
    domain: 'images.lapis.dev',
    config,
    serve: (context) => wireImageSync(config, context),
  });
}

if (require.main === module) runMain(start);
