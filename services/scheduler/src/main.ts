// The scheduler's process: configuration, the engine on NATS, the gRPC service.
import { loadFlavors, runMain, startService } from '@lapis/platform';
import { loadSchedulerConfig } from './config';
import { Scheduler } from './scheduler';
import { schedulerService } from './server';
import { loadSettings } from './settings';

runMain(async () => {
  const config = loadSchedulerConfig();
  const flavors = loadFlavors(config.LAPIS_FLAVORS_FILE);
  const settings = loadSettings(config.LAPIS_SCHEDULER_CONFIG_FILE);
  return startService({
    name: 'scheduler',
    domain: 'scheduler.lapis.dev',
    config,
    serve: async ({ bus, log, shutdown }) => {
      const scheduler = new Scheduler({
        bus,
        log,
        settings,
        flavors,
        bucketPrefix: config.LAPIS_SCHEDULER_BUCKET_PREFIX,
        consumerPrefix: config.LAPIS_SCHEDULER_CONSUMER_PREFIX,
        cycleMs: config.LAPIS_SCHEDULER_CYCLE_MS,
        leaseMs: config.LAPIS_SCHEDULER_LEASE_MS,
        heartbeatMs: config.LAPIS_HEARTBEAT_MS,
        maxPlacements: config.LAPIS_SCHEDULER_MAX_PLACEMENTS,
      });
      await scheduler.start();
      shutdown.add('scheduler', () => scheduler.stop());
      return [schedulerService(scheduler)];
    },
  });
});
