// Lapis installed with Helm on the real one-node cluster of @lapis/testenv, as a site admin
// would: the service images (built locally, imported into the node: nothing is pulled),
// `helm install` of charts/lapis with the bundled NATS (users and TLS as the chart makes them,
// JetStream on a claim), the runtime in its kubernetes backend, and every pod Ready through its
// own probes. The two registries of the example (upstream and the site's) run on the host, on
// the node bridge's address, where pods and the node's containerd reach them.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CLUSTER_IMAGES,
  docker,
  ensureBaseImage,
  ensureCommands,
  helm,
  kubectl,
  NODE_NETWORK,
  run,
  startCluster,
  startRegistry,
  waitPodsReady,
  type Cluster,
  type DockerEngine,
  type Registry,
} from '@lapis/testenv';
import { MESH_IMAGES, MESH_TOKENS, REPO_ROOT, SERVICES } from '../mesh';
import { startZipkin, type Zipkin } from '../zipkin';
import { isStale, rememberBuilt } from './image-freshness';

export const NAMESPACE = 'lapis';
export const RELEASE = 'lapis';
export const CHART = join(REPO_ROOT, 'charts/lapis');

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** The version images/build.sh tags the service images with (each service's package.json). */
function imageVersion(): string {
  return (JSON.parse(readFileSync(join(REPO_ROOT, 'services/scheduler/package.json'), 'utf8')) as { version: string }).version;
}

export { imageVersion };

/**
 * Builds the service images (images/build.sh: minutes) where Docker lacks one, or has one made
 * of another tree than the built one (a change since would otherwise run stale code).
 */
export async function ensureServiceImages(engine: DockerEngine, say: (line: string) => void): Promise<string[]> {
  const version = imageVersion();
  const ref = (service: string) => `lapis/${service}:${version}`;
  const stale: string[] = [];
  for (const service of SERVICES) if (await isStale(service, ref(service))) stale.push(service);
  if (stale.length > 0) {
    say(`building the service images (images/build.sh ${stale.join(' ')}: missing or made of another tree than the built one)`);
    await run(join(REPO_ROOT, 'images/build.sh'), stale, {
      cwd: REPO_ROOT,
      timeoutMs: 30 * 60_000,
      env: { ...process.env, DOCKER_HOST: `unix://${engine.socketPath}` },
    });
    for (const service of stale) await rememberBuilt(service, ref(service));
  }
  return SERVICES.map(ref);
}

export interface Registries {
  upstream: Registry;
  site: Registry;
  stop(): Promise<void>;
}

/**
 * The example's registries on the bridge's address, the example images (the busybox base and a
 * web server on it, as `make up` makes them) copied into the upstream one with skopeo (Docker
 * would not push to an address other than loopback without TLS).
 */
export async function startRegistries(cluster: Cluster, engine: DockerEngine): Promise<Registries> {
  const upstream = await startRegistry({ address: NODE_NETWORK.gateway });
  const site = await startRegistry({ address: NODE_NETWORK.gateway }).catch(async (e: unknown) => {
    await upstream.stop();
    throw e;
  });
  const stop = async (): Promise<void> => {
    await upstream.stop();
    await site.stop();
  };
  try {
    const { skopeo } = await ensureCommands({ skopeo: 'skopeo' });
    const base = await ensureBaseImage(undefined, { engine });
    for (const image of MESH_IMAGES) {
      const local = `${image.repository}:${image.tag}`;
      if (image.dockerfile) {
        const context = mkdtempSync(join(tmpdir(), 'lapis-image-'));
        writeFileSync(join(context, 'Dockerfile'), `FROM ${base}\n${image.dockerfile}\n`);
        await docker(['build', '-q', '-t', local, context]);
        rmSync(context, { recursive: true, force: true });
      } else {
        await docker(['tag', base, local]);
      }
      await run(
        skopeo,
        [
          'copy',
          '--quiet',
          '--src-daemon-host',
          `unix://${engine.socketPath}`,
          '--dest-tls-verify=false',
          `docker-daemon:${local}`,
          `docker://${upstream.host}/${local}`,
        ],
        { timeoutMs: 120_000 },
      );
    }
    // The node pulls the instances' images from the site registry over plain HTTP.
    await cluster.allowInsecureRegistry(site.host);
    return { upstream, site, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** The runtime's heartbeat period in the install: a node silent for 3 of them is down. */
export const HEARTBEAT_MS = 2000;

/** The values of the install: what differs from the chart's defaults, and why. */
export function installValues(registries: Registries, version: string, zipkin?: Zipkin): Record<string, unknown> {
  const tokens = Object.values(MESH_TOKENS).map(({ token, ...rest }) => ({ sha256: sha256(token), ...rest }));
  // One node with 2 cores runs everything: one replica each and small requests, so that the
  // example's instances (1 CPU each, requested and limited) still fit.
  const small = { replicas: 1, resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { memory: '512Mi' } } };
  return {
    image: { tag: version, pullPolicy: 'Never' },
    auth: { staticTokens: { tokens }, serviceToken: { value: MESH_TOKENS.service.token } },
    telemetry: zipkin ? { tracesExporter: 'zipkin', zipkinEndpoint: zipkin.spansEndpoint } : {},
    nats: {
      bundled: {
        image: { repository: CLUSTER_IMAGES.nats.split(':')[0], tag: CLUSTER_IMAGES.nats.split(':')[1], pullPolicy: 'Never' },
        resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { memory: '512Mi' } },
        persistence: { enabled: true, size: '1Gi', retainOnUninstall: false },
        jetstream: { maxFileStore: '512Mi' },
      },
    },
    imageSync: {
      ...small,
      siteRegistry: registries.site.url,
      policies: {
        policies: [
          {
            name: 'upstream',
            source: { url: registries.upstream.url, insecure: true },
            repositories: MESH_IMAGES.map((i) => i.repository),
            interval: '10m',
          },
        ],
      },
    },
    scheduler: { ...small, cycleMs: 500 },
    toscaOrchestrator: small,
    occiGateway: small,
    containerRuntime: { ...small, backend: 'kubernetes', heartbeatMs: HEARTBEAT_MS },
  };
}

export interface Installed {
  /** ClusterIP:port of each service's gRPC Service (the host reaches them through kube-proxy). */
  addresses: Record<string, string>;
  occiUrl: string;
}

/** helm install (or upgrade) and wait until every pod of the release is Ready, or say which is not and why. */
export async function installLapis(
  cluster: Cluster,
  values: Record<string, unknown>,
  say: (line: string) => void,
  timeoutMs = 300_000,
): Promise<Installed> {
  const dir = join(cluster.dir, 'lapis-install');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'values.json');
  writeFileSync(file, JSON.stringify(values, null, 2)); // JSON is YAML: helm reads it with -f
  await kubectl(['create', 'namespace', NAMESPACE], cluster).catch(() => undefined);
  say(`helm install ${RELEASE} charts/lapis (values: ${file})`);
  await helm(['upgrade', '--install', RELEASE, CHART, '-n', NAMESPACE, '-f', file], cluster, { timeoutMs: 120_000 });
  say('waiting for every pod to be Ready through its probes');
  await waitPodsReady(cluster, NAMESPACE, { min: 6, timeoutMs });
  const { stdout } = await kubectl(['get', 'svc', '-n', NAMESPACE, '-o', 'json'], cluster);
  const services = (
    JSON.parse(stdout) as {
      items: Array<{ metadata: { name: string }; spec: { clusterIP: string; ports: Array<{ name?: string; port: number }> } }>;
    }
  ).items;
  const addresses: Record<string, string> = {};
  let occiUrl = '';
  for (const svc of services) {
    const component = svc.metadata.name.replace(`${RELEASE}-`, '');
    const grpc = svc.spec.ports.find((p) => p.name === 'grpc');
    if (grpc && svc.spec.clusterIP && svc.spec.clusterIP !== 'None') addresses[component] = `${svc.spec.clusterIP}:${grpc.port}`;
    const http = svc.spec.ports.find((p) => p.name === 'http');
    if (component === 'occi-gateway' && http) occiUrl = `http://${svc.spec.clusterIP}:${http.port}`;
  }
  return { addresses, occiUrl };
}

/** Imports the service images from Docker into the node, and the bundled NATS's. */
export async function importImages(cluster: Cluster, engine: DockerEngine, refs: string[]): Promise<void> {
  await cluster.importFromDocker(refs, `unix://${engine.socketPath}`);
}

export interface LapisOnKube {
  cluster: Cluster;
  registries: Registries;
  engine: DockerEngine;
  installed: Installed;
  /** The trace viewer, on the node bridge's address: every pod sends its spans there. */
  zipkin: Zipkin;
  /** Everything stopped, the host put back; what could not be undone is in cluster.leftovers. */
  stop(): Promise<void>;
}

/**
 * The whole setup of `make kube-up` before the example: cluster, images, registries, release.
 * On failure, what was started is stopped again before the error is thrown.
 */
export async function startLapisOnKube(engine: DockerEngine, say: (line: string) => void): Promise<LapisOnKube> {
  let cluster: Cluster | undefined;
  let registries: Registries | undefined;
  let zipkin: Zipkin | undefined;
  const stop = async (): Promise<void> => {
    await registries?.stop().catch(() => {});
    await zipkin?.stop().catch(() => {});
    await cluster?.stop();
  };
  try {
    const images = await ensureServiceImages(engine, say);
    say('the cluster: control plane, containerd, kubelet, kube-proxy, CoreDNS, local-path provisioner');
    cluster = await startCluster({ progress: say, natsImage: true });
    say('the trace viewer (Zipkin) on the node bridge, where the pods send their spans');
    const starting = startZipkin(join(cluster.dir, 'zipkin.log'), NODE_NETWORK.gateway);
    starting.then((z) => (zipkin = z)).catch(() => {}); // stopped with the rest, even if a later step fails
    say(`importing the service images into the node (${images.join(', ')})`);
    await cluster.importFromDocker(images, `unix://${engine.socketPath}`);
    say('registries (upstream with the example images, and the site registry)');
    registries = await startRegistries(cluster, engine);
    zipkin = await starting;
    const installed = await installLapis(cluster, installValues(registries, imageVersion(), zipkin), say);
    return { cluster, registries, engine, installed, zipkin, stop };
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
}
