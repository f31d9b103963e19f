// The runtime agent of one node: wiring only.
import { runMain, startService } from '@lapis/platform';
import { observeInstances } from './application/metrics';
import { loadRuntimeConfig } from './config';
import { runtimeService } from './server';
import { buildAgent } from './wiring';

runMain(async () => {
  const config = loadRuntimeConfig();
  return startService({
    name: 'container-runtime',
    domain: 'runtime.lapis.dev',
    config,
    serve: async ({ bus, log, shutdown }) => {
      const agent = await buildAgent(config, bus, log);
      await agent.start();
      observeInstances(agent.node, () => agent.allInstances());
      // Runs before NATS drains: consumers stop, instances keep running (the next start adopts them).
      shutdown.add('agent', () => agent.stop());
      return [runtimeService(agent)];
    },
  });
});
