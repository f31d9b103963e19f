// The runtime agent's configuration: the platform's variables plus its own, parsed once at start.
import { hostname } from 'node:os';
import { listenPort, loadConfig, platformSpecs, requireAuthSource } from '@lapis/platform';
import { bool, str } from 'envalid';

export const runtimeSpecs = {
  ...platformSpecs,
  LAPIS_GRPC_PORT: listenPort({ default: 50051, desc: 'port the gRPC server listens on (0 picks a free one)' }),
  LAPIS_NODE_NAME: str({ default: hostname(), desc: 'name of this node, as placements address it' }),
  LAPIS_FLAVORS_FILE: str({ desc: "YAML file of the site's flavors", example: 'config/flavors.yaml' }),
  LAPIS_DOCKER_SOCKET: str({ default: '/var/run/docker.sock', desc: 'Docker engine socket' }),
  LAPIS_IMAGE_SYNC_ADDRESS: str({ default: '', desc: 'image-sync gRPC address (host:port) for the trusted catalogue' }),
  LAPIS_ALLOW_UNTRUSTED_IMAGES: bool({ default: false, desc: 'run images image-sync does not list (a node setting for development)' }),
};

export const loadRuntimeConfig = (env: NodeJS.ProcessEnv = process.env) =>
  loadConfig(runtimeSpecs, env, [
    requireAuthSource,
    (c) =>
      !c.LAPIS_IMAGE_SYNC_ADDRESS && !c.LAPIS_ALLOW_UNTRUSTED_IMAGES
        ? 'LAPIS_IMAGE_SYNC_ADDRESS must be set (or LAPIS_ALLOW_UNTRUSTED_IMAGES=true): images are checked against the trusted catalogue'
        : undefined,
  ]);
export type RuntimeConfig = ReturnType<typeof loadRuntimeConfig>;
