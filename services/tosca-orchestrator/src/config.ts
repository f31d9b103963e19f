// The orchestrator's configuration: the platform's variables plus its own, parsed once at start.
import { listenPort, loadConfig, platformSpecs, requireAuthSource } from '@lapis/platform';
import { num, str } from 'envalid';

export const toscaSpecs = {
  ...platformSpecs,
  LAPIS_GRPC_PORT: listenPort({ default: 50054, desc: 'port the gRPC server listens on (0 picks a free one)' }),
  LAPIS_METRICS_PORT: listenPort({ default: 9454, desc: 'port of the Prometheus endpoint, GET /metrics (0 picks a free one)' }),
  LAPIS_SCHEDULER_ADDRESS: str({ default: '127.0.0.1:50053', desc: 'scheduler gRPC address' }),
  LAPIS_RUNTIME_ADDRESS: str({ default: '127.0.0.1:50051', desc: 'container-runtime gRPC address' }),
  LAPIS_TOSCA_IMPORT_MIRROR: str({ default: '', desc: 'directory mirroring URL imports (host/path), so templates never need the network' }),
  LAPIS_TOSCA_TWO_THREADS_FROM_KIB: num({
    default: 1024,
    desc: 'templates of this many KiB or more are read by two threads, the caller and a helper (0: one thread always)',
  }),
  LAPIS_TOSCA_MAX_TEMPLATE_KIB: num({
    default: 3072,
    desc: 'the most KiB a template file (the template, each import) may have, and a CSAR unpacked; keep it under the 4 MiB gRPC message so this limit answers, with its position',
  }),
  LAPIS_TOSCA_TEMPLATE_THREADS: num({ default: 2, desc: "threads that read and check callers' templates off the event loop (at least 1)" }),
  LAPIS_TOSCA_TEMPLATE_BUDGET_MS: num({
    default: 10_000,
    desc: "the longest one template's reading and checking may take before it is stopped (RESOURCE_EXHAUSTED)",
  }),
  LAPIS_TOSCA_DELETED_RETENTION_S: num({
    default: 86_400,
    desc: 'seconds a DELETED deployment and its operations stay readable before their records are removed',
  }),
  LAPIS_TOSCA_PEER_WAIT_MS: num({
    default: 15_000,
    desc: 'how long a deployment step waits for a scheduler or runtime that cannot be reached (restarting) before the deployment fails',
  }),
  LAPIS_TOSCA_LEASE_MS: num({
    default: 3_000,
    desc: "lease on a deployment being driven: another replica takes a crashed replica's deployments over this long after its last renewal",
  }),
};

export const loadToscaConfig = (env: NodeJS.ProcessEnv = process.env) => loadConfig(toscaSpecs, env, [requireAuthSource]);
export type ToscaConfig = ReturnType<typeof loadToscaConfig>;
