// occi-gateway: the OGF OCCI 1.2 HTTP interface over the scheduler, the runtime and image-sync.
// Process entry only: config -> wiring (wiring.ts) -> serve; shutdown.
import { runMain, startService } from '@lapis/platform';
import { loadOcciConfig } from './config';
import { wireOcciGateway } from './wiring';

runMain(async () => {
  const config = loadOcciConfig();
  return startService({
    name: 'occi-gateway',
    domain: 'occi.lapis.dev',
    config,
    serve: (context) => wireOcciGateway(config, context),
  });
});
