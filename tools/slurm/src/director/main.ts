#!/usr/bin/env node
// lapis-director: the partition director's process. Configuration from the environment
// (config.ts), JSON logs (pino), a round every LAPIS_DIRECTOR_INTERVAL_MS, and on SIGTERM or
// SIGINT it finishes the round in progress and exits 0.
import { ConfigError, createLogger, EventBus, natsCredentialsFrom, Shutdown } from '@lapis/platform';
import { loadDirectorConfig } from './config.js';
import { Director } from './director.js';
import { LapisAdapter } from './lapis.js';
import { SlurmAdapter } from './slurm.js';

async function main(): Promise<void> {
  const config = loadDirectorConfig();
  const log = createLogger('lapis-director', config.LOG_LEVEL);
  const shutdown = new Shutdown(log);
  shutdown.onSignals();
  const credentials = natsCredentialsFrom(config);
  const bus = config.LAPIS_DIRECTOR_PREEMPT
    ? await EventBus.connect({
        url: config.LAPIS_NATS_URL,
        name: 'lapis-director',
        stream: config.LAPIS_NATS_STREAM,
        log,
        ...(credentials ? { credentials } : {}),
        ...(config.LAPIS_NATS_CA_FILE ? { caFile: config.LAPIS_NATS_CA_FILE } : {}),
      })
    : undefined;
  const lapis = new LapisAdapter(config.LAPIS_SCHEDULER_ADDRESS, config.LAPIS_SERVICE_TOKEN, bus);
  const slurm = new SlurmAdapter({ scontrol: config.LAPIS_DIRECTOR_SCONTROL, squeue: config.LAPIS_DIRECTOR_SQUEUE });
  const director = new Director({
    slurm,
    lapis,
    log,
    cloudPartition: config.LAPIS_DIRECTOR_CLOUD_PARTITION,
    slurmSidePartition: config.LAPIS_DIRECTOR_SLURM_SIDE_PARTITION,
    slurmMin: config.LAPIS_DIRECTOR_SLURM_MIN_NODES,
    slurmMax: config.LAPIS_DIRECTOR_SLURM_MAX_NODES,
    maxInTransit: config.LAPIS_DIRECTOR_MAX_IN_TRANSIT,
    preempt: config.LAPIS_DIRECTOR_PREEMPT,
    preemptGraceMs: config.LAPIS_DIRECTOR_PREEMPT_GRACE_MS,
  });
  shutdown.add('director', () => director.stop());
  shutdown.add('scheduler client', async () => lapis.close());
  if (bus) shutdown.add('nats', () => bus.drain());
  director.start(config.LAPIS_DIRECTOR_INTERVAL_MS);
  log.info(
    {
      scheduler: config.LAPIS_SCHEDULER_ADDRESS,
      cloudPartition: config.LAPIS_DIRECTOR_CLOUD_PARTITION || '(the one with batch_partition)',
      intervalMs: config.LAPIS_DIRECTOR_INTERVAL_MS,
      preempt: config.LAPIS_DIRECTOR_PREEMPT,
    },
    'partition director started',
  );
}

main().catch((error: unknown) => {
  const message = error instanceof ConfigError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`cannot start: ${message}\n`);
  process.exit(1);
});
