// tosca-orchestrator: TOSCA templates validated, translated and deployed through the scheduler
// and the runtime. Process entry only: config -> wiring (wiring.ts) -> serve; shutdown.
import { runMain, startService } from '@lapis/platform';
import { loadToscaConfig } from './config';
import { wireToscaOrchestrator } from './wiring';

runMain(async () => {
  const config = loadToscaConfig();
  return startService({
    name: 'tosca-orchestrator',
    domain: 'tosca.lapis.dev',
    config,
    serve: (context) => wireToscaOrchestrator(config, context),
  });
});
