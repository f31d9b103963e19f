// image-sync's configuration: the platform's variables plus its own, parsed once at start.
import { listenPort, loadConfig, platformSpecs, requireAuthSource } from '@lapis/platform';
import { num, str } from 'envalid';

export const imageSyncSpecs = {
  ...platformSpecs,
  LAPIS_GRPC_PORT: listenPort({ default: 50052, desc: 'port the gRPC server listens on (0 picks a free one)' }),
  LAPIS_METRICS_PORT: listenPort({ default: 9452, desc: 'port of the Prometheus endpoint, GET /metrics (0 picks a free one)' }),
  LAPIS_SITE_REGISTRY: str({ desc: 'the site registry images are synced into (URL)', example: 'http://127.0.0.1:5000' }),
  LAPIS_POLICY_FILE: str({ default: '', desc: 'YAML file of sync policies loaded at start' }),
  LAPIS_SITE_REGISTRY_SECRET: str({
    default: '',
    desc: 'credentials of the site registry: "file:/path" or "env:NAME" holding user:password or a token',
  }),
  LAPIS_SYNC_CONCURRENCY: num({ default: 8, desc: 'blob copies in flight at once' }),
};

export const loadImageSyncConfig = (env: NodeJS.ProcessEnv = process.env) => loadConfig(imageSyncSpecs, env, [requireAuthSource]);
export type ImageSyncConfig = ReturnType<typeof loadImageSyncConfig>;
