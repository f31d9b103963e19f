// The scheduler's configuration: the platform's variables plus its own, parsed once at start.
import { listenPort, loadConfig, platformSpecs, requireAuthSource } from '@lapis/platform';
import { str } from 'envalid';

export const schedulerSpecs = {
  ...platformSpecs,
  LAPIS_GRPC_PORT: listenPort({ default: 50053, desc: 'port the gRPC server listens on (0 picks a free one)' }),
  LAPIS_FLAVORS_FILE: str({ desc: "YAML file of the site's flavors", example: 'config/flavors.yaml' }),
};

export const loadSchedulerConfig = (env: NodeJS.ProcessEnv = process.env) => loadConfig(schedulerSpecs, env, [requireAuthSource]);
export type SchedulerConfig = ReturnType<typeof loadSchedulerConfig>;
