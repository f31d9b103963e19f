// The OCCI gateway's configuration: the platform's variables plus its own, parsed once at start.
import { listenPort, loadConfig, platformSpecs, requireAuthSource } from '@lapis/platform';
import { makeValidator, num, str } from 'envalid';

/** An absolute http(s) URL without query or fragment; empty means "derive it from the listen address". */
const publicUrl = makeValidator<string>((input) => {
  if (input === '') return '';
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new Error(`not a URL: ${input}`);
  }
  if (!/^https?:$/.test(url.protocol) || url.search || url.hash || url.username || url.password) {
    throw new Error(`must be an http(s) URL without credentials, query or fragment: ${input}`);
  }
  return url.href.replace(/\/+$/, '');
});

export const occiSpecs = {
  ...platformSpecs,
  LAPIS_GRPC_PORT: listenPort({ default: 50055, desc: 'port of the gateway health endpoint (gRPC)' }),
  LAPIS_HTTP_PORT: listenPort({ default: 8787, desc: 'port of the OCCI HTTP interface' }),
  LAPIS_SCHEDULER_ADDRESS: str({ default: '127.0.0.1:50053', desc: 'scheduler gRPC address' }),
  LAPIS_RUNTIME_ADDRESS: str({ default: '127.0.0.1:50051', desc: 'container-runtime gRPC address' }),
  LAPIS_IMAGE_SYNC_ADDRESS: str({ default: '127.0.0.1:50052', desc: 'image-sync gRPC address' }),
  LAPIS_OCCI_PUBLIC_URL: publicUrl({
    default: '',
    desc: 'base URL clients reach the OCCI interface at (locations in answers start with it); empty: http://<listen host>:<port>, never the Host header',
    example: 'https://cloud.example.org/occi',
  }),
  LAPIS_OCCI_VIEW_MAX_AGE_MS: num({
    default: 5_000,
    desc: 'the oldest a collection or compute is served (what no event announces, such as a claim queued by another client, shows within it); listed again in the background at half of it',
  }),
};

export const loadOcciConfig = (env: NodeJS.ProcessEnv = process.env) => loadConfig(occiSpecs, env, [requireAuthSource]);
export type OcciConfig = ReturnType<typeof loadOcciConfig>;
