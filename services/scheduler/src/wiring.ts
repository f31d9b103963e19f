// Wiring: the scheduler (application/scheduler.ts) on the service's NATS connection, with the
// flavors and the policy file the configuration names, and the gRPC service over it.
import { loadFlavors, parseHostPortRange, startService, type RunningService } from '@lapis/platform';
import { loadSettings, type SchedulerConfig } from './config';
import { Scheduler } from './application/scheduler';
import { schedulerService } from './server';

export interface RunningScheduler extends RunningService {
  scheduler: Scheduler;
}

export async function startScheduler(config: SchedulerConfig): Promise<RunningScheduler> {
  const flavors = loadFlavors(config.LAPIS_FLAVORS_FILE);
  const settings = loadSettings(config.LAPIS_SCHEDULER_CONFIG_FILE);
  let scheduler!: Scheduler;
  const running = await startService({
    name: 'scheduler',
    domain: 'scheduler.lapis.dev',
    config,
    serve: async ({ bus, log, shutdown }) => {
      scheduler = new Scheduler({
        bus,
        log,
        settings,
        flavors,
        hostPorts: parseHostPortRange(config.LAPIS_HOST_PORTS),
        bucketPrefix: config.LAPIS_SCHEDULER_BUCKET_PREFIX,
        consumerPrefix: config.LAPIS_SCHEDULER_CONSUMER_PREFIX,
        cycleMs: config.LAPIS_SCHEDULER_CYCLE_MS,
        leaseMs: config.LAPIS_SCHEDULER_LEASE_MS,
        heartbeatMs: config.LAPIS_HEARTBEAT_MS,
        nodeLostMs: config.LAPIS_SCHEDULER_NODE_LOST_MS,
        maxPlacements: config.LAPIS_SCHEDULER_MAX_PLACEMENTS,
      });
      await scheduler.start();
      shutdown.add('scheduler', () => scheduler.stop());
      return [schedulerService(scheduler)];
    },
  });
  return { ...running, scheduler };
}
