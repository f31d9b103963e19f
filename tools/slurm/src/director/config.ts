// The director's configuration, from the environment, parsed once at start (envalid, as the
// services do); a bad or missing variable stops it with a message naming the variable.
import { loadConfig, platformSpecs } from '@lapis/platform';
import { bool, num, str } from 'envalid';

export const directorSpecs = {
  LOG_LEVEL: platformSpecs.LOG_LEVEL,
  LAPIS_SCHEDULER_ADDRESS: str({ desc: "the scheduler's gRPC address", example: '127.0.0.1:50053' }),
  LAPIS_SERVICE_TOKEN: str({ desc: 'bearer token of an admin identity (MoveNode is admin-only)' }),
  LAPIS_DIRECTOR_CLOUD_PARTITION: str({
    default: '',
    desc: 'the Lapis partition shared with Slurm (empty: the one partition with batch_partition set)',
  }),
  LAPIS_DIRECTOR_SLURM_SIDE_PARTITION: str({
    default: '',
    desc: 'the Lapis partition holding the shared nodes Slurm has (empty: slurm-<batch partition>)',
  }),
  LAPIS_DIRECTOR_SLURM_MIN_NODES: num({ default: 0, desc: "fewest nodes Slurm's batch partition keeps in service" }),
  LAPIS_DIRECTOR_SLURM_MAX_NODES: num({ default: 0, desc: "most nodes Slurm's batch partition has in service (0: no limit)" }),
  LAPIS_DIRECTOR_MAX_IN_TRANSIT: num({ default: 1, desc: 'most nodes moving at once' }),
  LAPIS_DIRECTOR_INTERVAL_MS: num({ default: 10_000, desc: 'time between two rounds (look, decide, act)' }),
  LAPIS_DIRECTOR_PREEMPT: bool({ default: false, desc: 'preempt preemptible instances to give a node back to Slurm' }),
  LAPIS_DIRECTOR_PREEMPT_GRACE_MS: num({ default: 30_000, desc: 'grace period of the preemption notices it sends' }),
  LAPIS_NATS_URL: str({
    default: '',
    desc: 'NATS with the Lapis stream; needed for LAPIS_DIRECTOR_PREEMPT (the notices are events)',
    example: 'nats://127.0.0.1:4222',
  }),
  LAPIS_NATS_STREAM: platformSpecs.LAPIS_NATS_STREAM,
  // Its NATS user is platform nats/access.ts's directorAccess(): preemption notices only.
  LAPIS_NATS_USER: platformSpecs.LAPIS_NATS_USER,
  LAPIS_NATS_PASSWORD_FILE: platformSpecs.LAPIS_NATS_PASSWORD_FILE,
  LAPIS_NATS_CA_FILE: platformSpecs.LAPIS_NATS_CA_FILE,
  LAPIS_DIRECTOR_SCONTROL: str({ default: 'scontrol', desc: "Slurm's scontrol (SLURM_CONF is passed on)" }),
  LAPIS_DIRECTOR_SQUEUE: str({ default: 'squeue', desc: "Slurm's squeue" }),
};

export type DirectorConfig = ReturnType<typeof loadDirectorConfig>;

export const loadDirectorConfig = (env: NodeJS.ProcessEnv = process.env) =>
  loadConfig(directorSpecs, env, [
    (c) =>
      c.LAPIS_DIRECTOR_PREEMPT && !c.LAPIS_NATS_URL
        ? 'LAPIS_DIRECTOR_PREEMPT=true needs LAPIS_NATS_URL: preemption notices are events'
        : undefined,
    (c) => (c.LAPIS_DIRECTOR_MAX_IN_TRANSIT < 1 ? 'LAPIS_DIRECTOR_MAX_IN_TRANSIT must be at least 1' : undefined),
    (c) => (c.LAPIS_DIRECTOR_INTERVAL_MS < 100 ? 'LAPIS_DIRECTOR_INTERVAL_MS must be at least 100' : undefined),
    (c) =>
      c.LAPIS_DIRECTOR_SLURM_MAX_NODES > 0 && c.LAPIS_DIRECTOR_SLURM_MAX_NODES < c.LAPIS_DIRECTOR_SLURM_MIN_NODES
        ? 'LAPIS_DIRECTOR_SLURM_MAX_NODES must not be below LAPIS_DIRECTOR_SLURM_MIN_NODES'
        : undefined,
  ]);
