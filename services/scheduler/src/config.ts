// The scheduler's configuration: the platform's variables plus its own, parsed once at start.
import { listenPort, loadConfig, checkHostPortsVariable, platformSpecs, requireAuthSource } from '@lapis/platform';
import { num, str } from 'envalid';

export const schedulerSpecs = {
  ...platformSpecs,
  LAPIS_GRPC_PORT: listenPort({ default: 50053, desc: 'port the gRPC server listens on (0 picks a free one)' }),
  LAPIS_FLAVORS_FILE: str({ desc: "YAML file of the site's flavors", example: 'config/flavors.yaml' }),
  LAPIS_SCHEDULER_CONFIG_FILE: str({ default: '', desc: 'YAML file of partitions, weights, fair share, QOS, accounts and quotas (empty: defaults)' }),
  LAPIS_SCHEDULER_BUCKET_PREFIX: str({ default: 'scheduler', desc: 'prefix of the key-value buckets (<prefix>-claims, ...)' }),
  LAPIS_SCHEDULER_CONSUMER_PREFIX: str({ default: 'scheduler', desc: 'prefix of the durable consumer names' }),
  LAPIS_SCHEDULER_CYCLE_MS: num({ default: 1000, desc: 'time between scheduling cycles when no event triggers one' }),
  LAPIS_SCHEDULER_LEASE_MS: num({ default: 3000, desc: 'leader lease; a standby takes over this long after the leader stops renewing' }),
  LAPIS_SCHEDULER_MAX_PLACEMENTS: num({ default: 500, desc: 'most placements one cycle makes (a bounded cycle: the next one follows at once while the queue has work)' }),
  LAPIS_HOST_PORTS: str({
    default: '',
    desc: 'host ports instances may publish, "low-high" (the runtime agents\' range: set both from one value); empty: none',
  }),
  LAPIS_HEARTBEAT_MS: num({ default: 5000, desc: 'runtime heartbeat period; a node silent for 3 of them is down' }),
};

export const loadSchedulerConfig = (env: NodeJS.ProcessEnv = process.env) =>
  loadConfig(schedulerSpecs, env, [
    requireAuthSource,
    checkHostPortsVariable,
  ]);
export type SchedulerConfig = ReturnType<typeof loadSchedulerConfig>;
