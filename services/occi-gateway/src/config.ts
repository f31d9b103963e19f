// The OCCI gateway's configuration: the platform's variables plus its own, parsed once at start.
import { listenPort, loadConfig, platformSpecs, requireAuthSource } from '@lapis/platform';
import { str } from 'envalid';

export const occiSpecs = {
  ...platformSpecs,
  LAPIS_GRPC_PORT: listenPort({ default: 50055, desc: 'port of the gateway health endpoint (gRPC)' }),
  LAPIS_HTTP_PORT: listenPort({ default: 8787, desc: 'port of the OCCI HTTP interface' }),
  LAPIS_SCHEDULER_ADDRESS: str({ default: '127.0.0.1:50053', desc: 'scheduler gRPC address' }),
  LAPIS_RUNTIME_ADDRESS: str({ default: '127.0.0.1:50051', desc: 'container-runtime gRPC address' }),
  LAPIS_IMAGE_SYNC_ADDRESS: str({ default: '127.0.0.1:50052', desc: 'image-sync gRPC address' }),
};

export const loadOcciConfig = (env: NodeJS.ProcessEnv = process.env) => loadConfig(occiSpecs, env, [requireAuthSource]);
export type OcciConfig = ReturnType<typeof loadOcciConfig>;
