// The whole Lapis mesh on this machine, as a user runs it: NATS with JetStream, a Docker
// engine, an upstream registry holding locally built images and the site registry, then the
// services as their own processes with a local configuration (this machine is one node with
// the docker backend). `make up` and the end-to-end tests both start it from here.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import type { ListImagesResponse } from '@lapis/proto/lapis/images/v1/images';
import { ImageSyncServiceClient } from '@lapis/proto/lapis/images/v1/image_sync_service';
import type { ListInstancesResponse, ListNetworksResponse, ListVolumesResponse } from '@lapis/proto/lapis/runtime/v1/runtime';
import { RuntimeServiceClient } from '@lapis/proto/lapis/runtime/v1/runtime_service';
import { createClient, lapisAccess, natsAuthorization, type NatsAccess } from '@lapis/platform';
import { spawnService, staticTokenFile, until, type ServiceProcess } from '@lapis/platform/testing';
import { describeLeftovers, removeLeftovers } from './cleanup';
import {
  docker,
  ensureBaseImage,
  ensureDocker,
  makeTlsFiles,
  startNats,
  startNatsCluster,
  startRegistry,
  type DockerEngine,
  type NatsServer,
  type Registry,
} from '@lapis/testenv';

export const REPO_ROOT = resolve(__dirname, '../../../..');
export const SERVICES = ['image-sync', 'container-runtime', 'scheduler', 'tosca-orchestrator', 'occi-gateway'] as const;
export type ServiceName = (typeof SERVICES)[number];

/** Tokens of the local mesh: the services' own (admin) and two users in different projects. */
export const MESH_TOKENS = {
  service: { token: `service-${randomBytes(8).toString('hex')}`, user: 'lapis-service', roles: ['admin'] },
  alice: { token: 'alice-token', user: 'alice', projects: ['physics', 'chemistry'] },
  bob: { token: 'bob-token', user: 'bob', projects: ['biology'] },
  admin: { token: 'admin-token', user: 'admin', roles: ['admin'] },
};

/**
 * Images put in the upstream registry and synced into the site's trusted catalogue: the
 * busybox base, and a small web server built on it (the example deployment runs it).
 */
export const MESH_IMAGES = [
  { repository: 'lapis/busybox', tag: '1.36', dockerfile: undefined },
  { repository: 'lapis/httpd', tag: '1.36', dockerfile: 'CMD ["httpd", "-f", "-v", "-p", "8080", "-h", "/mnt"]' },
];

export interface MeshOptions {
  /** Where config files, volumes and the services' logs go (default: a new temp dir). */
  stateDir?: string;
  /** Services to start, in this order (default: all that are built). */
  services?: readonly ServiceName[];
  nodeName?: string;
  /** Progress lines for people watching (`make up`). */
  progress?: (line: string) => void;
  /** Extra environment for every service. */
  env?: Record<string, string>;
  /** Listen on the services' default ports (lapisctl's defaults) instead of free ones. */
  defaultPorts?: boolean;
  /** Extra environment for one service (for example a smaller node for the runtime). */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /**
   * High availability (issue 20); default one of each. `natsServers` > 1 runs a routed NATS
   * cluster with every stream and bucket in that many copies; `replicas` processes of every
   * service but the node agent; `nodes` node agents, one per node name, on the one Docker engine.
   */
  natsServers?: number;
  replicas?: number;
  nodes?: number;
}

export interface Mesh {
  stateDir: string;
  /** The first NATS server (the only one unless `natsServers` > 1). */
  nats: NatsServer;
  natsServers: NatsServer[];
  docker: DockerEngine;
  upstream: Registry;
  site: Registry;
  /** The first node's name; `nodeNames` has every node agent's, in replica order. */
  nodeName: string;
  nodeNames: string[];
  /** gRPC address of each started service (its first replica). */
  addresses: Partial<Record<ServiceName, string>>;
  /** A gRPC target reaching every replica of a service (the first one that answers). */
  targets: Partial<Record<ServiceName, string>>;
  /** Prometheus endpoint of each started service (http://127.0.0.1:PORT/metrics), first replica. */
  metricsUrls: Partial<Record<ServiceName, string>>;
  /** The first replica of each service. */
  processes: Partial<Record<ServiceName, ServiceProcess>>;
  /** Every replica of each service (node agents in `nodeNames` order). */
  replicas: Partial<Record<ServiceName, ServiceProcess[]>>;
  occiUrl?: string;
  tokens: typeof MESH_TOKENS;
  /** Site references of the synced images ("lapis/busybox:1.36"). */
  images: string[];
  env: Record<ServiceName, Record<string, string>>;
  /** Starts a service again (after kill -9, for example) with the same configuration. */
  start(name: ServiceName): Promise<ServiceProcess>;
  /** Starts one replica of a service (again), on the port and with the configuration it had. */
  startReplica(name: ServiceName, index: number): Promise<ServiceProcess>;
  stop(): Promise<void>;
}

/** The ports each service uses by default (its config.ts), which lapisctl expects. */
const DEFAULT_PORTS: Record<ServiceName, string> = {
  'container-runtime': '50051',
  'image-sync': '50052',
  scheduler: '50053',
  'tosca-orchestrator': '50054',
  'occi-gateway': '50055',
};

/** The metrics port of each service by default (its config.ts). */
const DEFAULT_METRICS_PORTS: Record<ServiceName, string> = {
  'container-runtime': '9451',
  'image-sync': '9452',
  scheduler: '9453',
  'tosca-orchestrator': '9454',
  'occi-gateway': '9455',
};

const mainOf = (name: ServiceName) => join(REPO_ROOT, 'services', name, 'dist/src/main.js');

export async function startMesh(options: MeshOptions = {}): Promise<Mesh> {
  const say = options.progress ?? (() => {});
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), 'lapis-mesh-'));
  mkdirSync(join(stateDir, 'logs'), { recursive: true });
  const logFileOf = (name: ServiceName) => join(stateDir, 'logs', `${name}.log`);
  const stops: Array<() => Promise<unknown>> = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  };
  try {
    say('NATS with JetStream (a user per service, TLS)');
    // One NATS user per service (each node agent's for its node only), with the permissions the
    // platform makes from what each service uses; passwords in files only the owner reads.
    const nodeName = options.nodeName ?? `node-${randomBytes(3).toString('hex')}`;
    const nodeNames = Array.from({ length: Math.max(1, options.nodes ?? 1) }, (_, i) => (i === 0 ? nodeName : `${nodeName}-${i + 1}`));
    const natsUsers = lapisAccess({ nodes: nodeNames });
    const credentialsDir = join(stateDir, 'nats-users');
    mkdirSync(credentialsDir, { recursive: true, mode: 0o700 });
    const natsEnv: Partial<Record<NatsAccess['service'], Record<string, string>>> = {};
    const agentNatsEnv = new Map<string, Record<string, string>>();
    const passwords = natsUsers.map((access) => {
      const password = randomBytes(18).toString('base64url');
      const file = join(credentialsDir, access.user);
      writeFileSync(file, password, { mode: 0o600 });
      const userEnv = { LAPIS_NATS_USER: access.user, LAPIS_NATS_PASSWORD_FILE: file };
      if (access.service === 'container-runtime') agentNatsEnv.set(access.user, userEnv);
      else natsEnv[access.service] = userEnv;
      return { access, password: { value: password } };
    });
    const natsConfig = natsAuthorization(passwords, options.env?.LAPIS_NATS_STREAM ?? 'LAPIS');
    const natsServers = await startNatsServers(stateDir, natsConfig, options.natsServers ?? 1);
    stops.push(() => Promise.all(natsServers.map((s) => s.stop())));
    const nats = natsServers[0]!;
    for (const env of [...Object.values(natsEnv), ...agentNatsEnv.values()]) env.LAPIS_NATS_CA_FILE = nats.caFile!;
    say('Docker engine');
    const engine = await ensureDocker();
    stops.push(() => engine.stop());
    // A node starts clean, and is left clean even when a service or NATS could not clean up.
    const runtimeDirOf = (index: number) => join(stateDir, index === 0 ? 'runtime' : `runtime-${index + 1}`);
    for (const [index, node] of nodeNames.entries()) {
      const left = describeLeftovers(await removeLeftovers(node, runtimeDirOf(index)));
      if (left) say(`removed what an earlier run of node ${node} left: ${left}`);
    }
    stops.push(async () => {
      for (const [index, node] of nodeNames.entries()) {
        const after = describeLeftovers(await removeLeftovers(node, runtimeDirOf(index)));
        if (after) say(`removed what the services left behind on node ${node}: ${after}`);
      }
    });
    say('registries (upstream and site)');
    const upstream = await startRegistry({ auth: { username: 'upstream', password: randomBytes(6).toString('hex') } });
    stops.push(() => upstream.stop());
    const site = await startRegistry();
    stops.push(() => site.stop());
    // The node's copies of the site's images: named after this registry's port, so no later
    // run would ever use them again.
    stops.push(async () => {
      const pulled = (await docker(['images', '-q', '--filter', `reference=${site.host}/*/*`])).split('\n').filter(Boolean);
      if (pulled.length) await docker(['rmi', '-f', ...new Set(pulled)]).catch(() => {});
    });
    say('images, built locally and pushed upstream');
    const base = await ensureBaseImage();
    await docker(['login', '-u', upstream.auth!.username, '--password-stdin', upstream.host], { input: upstream.auth!.password });
    for (const image of MESH_IMAGES) {
      const ref = `${upstream.host}/${image.repository}:${image.tag}`;
      if (image.dockerfile) {
        const context = mkdtempSync(join(tmpdir(), 'lapis-image-'));
        writeFileSync(join(context, 'Dockerfile'), `FROM ${base}\n${image.dockerfile}\n`);
        await docker(['build', '-q', '-t', ref, context]);
      } else {
        await docker(['tag', base, ref]);
      }
      await docker(['push', ref]);
      await docker(['rmi', ref]).catch(() => {});
    }

    const credentials = join(stateDir, 'upstream-credentials');
    writeFileSync(credentials, `${upstream.auth!.username}:${upstream.auth!.password}`, { mode: 0o600 });
    const policies = join(stateDir, 'policies.yaml');
    writeFileSync(
      policies,
      [
        'policies:',
        '  - name: upstream',
        `    source: { url: "${upstream.url}", credentials_secret: "file:${credentials}", insecure: true }`,
        `    repositories: [${MESH_IMAGES.map((i) => i.repository).join(', ')}]`,
        '    interval: 10m',
      ].join('\n'),
    );
    const tokens = staticTokenFile(Object.values(MESH_TOKENS));
    const common = {
      LAPIS_NATS_URL: nats.url,
      LAPIS_STATIC_TOKENS_FILE: tokens,
      LAPIS_SERVICE_TOKEN: MESH_TOKENS.service.token,
      LAPIS_FLAVORS_FILE: join(REPO_ROOT, 'config/flavors.yaml'),
      LAPIS_HEARTBEAT_MS: '1000',
      ...(natsServers.length > 1 ? { LAPIS_NATS_REPLICAS: String(natsServers.length) } : {}),
      ...options.env,
    };
    const addresses: Mesh['addresses'] = {};
    const metricsUrls: Mesh['metricsUrls'] = {};
    const largeYoungGeneration = { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-semi-space-size=64`.trim() };
    const env: Mesh['env'] = {
      'image-sync': {
        ...common,
        ...natsEnv['image-sync'],
        LAPIS_SITE_REGISTRY: site.url,
        LAPIS_POLICY_FILE: policies,
        ...options.serviceEnv?.['image-sync'],
      },
      'container-runtime': {
        ...common,
        ...agentNatsEnv.get(`container-runtime-${nodeName}`),
        LAPIS_NODE_NAME: nodeName,
        LAPIS_STATE_DIR: runtimeDirOf(0),
        LAPIS_DOCKER_SOCKET: engine.socketPath,
        ...options.serviceEnv?.['container-runtime'],
      },
      // A larger young generation, as their images run them (scavenges stalled the scheduler's
      // cycles and took a fifth of a template's parse).
      scheduler: { ...common, ...natsEnv.scheduler, ...largeYoungGeneration, ...options.serviceEnv?.scheduler },
      'tosca-orchestrator': {
        ...common,
        ...natsEnv['tosca-orchestrator'],
        ...largeYoungGeneration,
        ...options.serviceEnv?.['tosca-orchestrator'],
      },
      // Locations in OCCI answers start with the public URL (on free ports: the one it listens on).
      'occi-gateway': {
        ...common,
        ...natsEnv['occi-gateway'],
        LAPIS_HTTP_PORT: options.defaultPorts ? '8787' : '0',
        ...(options.defaultPorts ? { LAPIS_OCCI_PUBLIC_URL: 'http://127.0.0.1:8787' } : {}),
        ...options.serviceEnv?.['occi-gateway'],
      },
    };
    const processes: Mesh['processes'] = {};
    const replicas: Mesh['replicas'] = {};
    const targets: Mesh['targets'] = {};
    // Each replica's own address and metrics URL: a restarted one keeps its ports.
    const replicaAddresses: Partial<Record<ServiceName, string[]>> = {};
    const replicaMetrics: Partial<Record<ServiceName, string[]>> = {};
    const replicaCount = (name: ServiceName) => (name === 'container-runtime' ? nodeNames.length : Math.max(1, options.replicas ?? 1));
    // The node agents beyond the first: their own node name, NATS user and state directory.
    const envOf = (name: ServiceName, index: number) =>
      name === 'container-runtime' && index > 0
        ? {
            ...env[name],
            ...agentNatsEnv.get(`container-runtime-${nodeNames[index]}`),
            LAPIS_NODE_NAME: nodeNames[index]!,
            LAPIS_STATE_DIR: runtimeDirOf(index),
          }
        : env[name];
    const mesh: Mesh = {
      stateDir,
      nats,
      natsServers,
      docker: engine,
      upstream,
      site,
      nodeName,
      nodeNames,
      addresses,
      targets,
      metricsUrls,
      processes,
      replicas,
      tokens: MESH_TOKENS,
      images: MESH_IMAGES.map((i) => `${i.repository}:${i.tag}`),
      env,
      start: (name) => mesh.startReplica(name, 0),
      startReplica: async (name, index) => {
        const wiring: Record<string, string> = {};
        if (targets['image-sync']) wiring.LAPIS_IMAGE_SYNC_ADDRESS = targets['image-sync'];
        if (targets.scheduler) wiring.LAPIS_SCHEDULER_ADDRESS = targets.scheduler;
        if (targets['container-runtime']) wiring.LAPIS_RUNTIME_ADDRESS = targets['container-runtime'];
        const defaults = options.defaultPorts && index === 0;
        const port = replicaAddresses[name]?.[index]?.split(':')[1] ?? (defaults ? DEFAULT_PORTS[name] : '0');
        const metricsUrl = replicaMetrics[name]?.[index];
        const metricsPort = metricsUrl ? new URL(metricsUrl).port : defaults ? DEFAULT_METRICS_PORTS[name] : '0';
        const logFile = index === 0 ? logFileOf(name) : join(stateDir, 'logs', `${name}-${index + 1}.log`);
        const process = await spawnService(
          name,
          mainOf(name),
          { ...wiring, ...envOf(name, index), LAPIS_GRPC_PORT: port, LAPIS_METRICS_PORT: metricsPort },
          60_000,
          logFile,
        );
        (replicas[name] ??= [])[index] = process;
        (replicaAddresses[name] ??= [])[index] = process.address;
        if (process.metricsUrl) (replicaMetrics[name] ??= [])[index] = process.metricsUrl;
        const all = replicaAddresses[name]!;
        // grpc-js's ipv4 resolver with several addresses: the first that answers (pick_first).
        targets[name] = all.length === 1 ? all[0]! : `ipv4:${all.join(',')}`;
        if (index === 0) {
          processes[name] = process;
          addresses[name] = process.address;
          if (process.metricsUrl) metricsUrls[name] = process.metricsUrl;
          if (name === 'occi-gateway') {
            const line = await until(() => process.logs.find((l) => l.msg === 'OCCI HTTP interface listening'), 'the OCCI HTTP port');
            mesh.occiUrl = `http://127.0.0.1:${line.port}`;
          }
        }
        return process;
      },
      stop: stopAll,
    };
    stops.push(async () => {
      // Nothing is left behind: with nothing placing new instances any more (the scheduler and
      // the front ends stopped first), every instance and volume goes, then the node agents.
      const stopEvery = (name: ServiceName) => Promise.all((replicas[name] ?? []).map((p) => p.stop()));
      for (const name of ['occi-gateway', 'tosca-orchestrator', 'scheduler'] as const) await stopEvery(name);
      const agents = replicaAddresses['container-runtime'] ?? [];
      if (agents.length > 0) {
        await removeEverything(new Map(agents.map((address, i) => [nodeNames[i]!, address]))).catch((error: Error) => {
          say(`could not remove every instance: ${error.message}`);
          process.stderr.write(`lapis mesh: could not remove every instance: ${error.message}\n`);
        });
      }
      for (const name of ['container-runtime', 'image-sync'] as const) await stopEvery(name);
    });

    for (const name of options.services ?? SERVICES.filter((s) => existsSync(mainOf(s)))) {
      say(`${name}`);
      for (let index = 0; index < replicaCount(name); index++) await mesh.startReplica(name, index);
      if (name === 'image-sync') {
        say('syncing the example images into the trusted catalogue');
        await waitForCatalogue(addresses['image-sync']!, mesh.images).catch((error: Error) => {
          throw new Error(`${error.message}; image-sync's log: ${logFileOf('image-sync')}`);
        });
      }
    }
    return mesh;
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/**
 * Deletes every instance, volume and network the runtime has, in every project (as an admin), each
 * through the agent of its node (`agents`: node name to address; an agent acts on its node's).
 */
async function removeEverything(agents: Map<string, string>): Promise<void> {
  const clients = new Map(
    [...agents].map(([node, address]) => [
      node,
      createClient(RuntimeServiceClient, address, { token: MESH_TOKENS.service.token, deadlineMs: 60_000 }),
    ]),
  );
  const any = clients.values().next().value!;
  const of = (node: string) => clients.get(node) ?? any;
  const unary = <Res>(invoke: (metadata: Metadata, callback: (error: Error | null, response: Res) => void) => unknown) =>
    new Promise<Res>((resolve, reject) => invoke(new Metadata(), (error, response) => (error ? reject(error) : resolve(response))));
  try {
    const failures: string[] = [];
    const failed = (what: string) => (error: Error) => failures.push(`${what}: ${error.message}`);
    // Detach first: an instance is removed more simply without volumes in it.
    const { volumes } = await unary<ListVolumesResponse>((m, cb) =>
      any.listVolumes({ pageSize: 1000, pageToken: '', project: '', state: 0, instanceId: '' }, m, cb),
    );
    for (const volume of volumes.filter((v) => v.attachment)) {
      const client = of(volume.node);
      await unary((m, cb) => client.detachVolume({ volumeId: volume.id, requestId: '' }, m, cb)).catch(failed(volume.id));
    }
    const { instances } = await unary<ListInstancesResponse>((m, cb) =>
      any.listInstances({ pageSize: 1000, pageToken: '', project: '', state: 0, node: '' }, m, cb),
    );
    for (const instance of instances) {
      const client = of(instance.node);
      await unary((m, cb) =>
        client.deleteInstance({ instanceId: instance.id, timeout: { seconds: 1, nanos: 0 }, requestId: '' }, m, cb),
      ).catch(failed(instance.id));
    }
    for (const volume of volumes) {
      const client = of(volume.node);
      await unary((m, cb) => client.deleteVolume({ volumeId: volume.id, requestId: '' }, m, cb)).catch(failed(volume.id));
    }
    // The instances' connections went with them: each network is free to go, and its bridges are gone.
    const { networks } = await unary<ListNetworksResponse>((m, cb) =>
      any.listNetworks({ pageSize: 1000, pageToken: '', project: '' }, m, cb),
    );
    for (const network of networks) {
      await unary((m, cb) => any.deleteNetwork({ networkId: network.id, requestId: '' }, m, cb)).catch(failed(network.id));
    }
    if (failures.length > 0) throw new Error(failures.join('; '));
  } finally {
    for (const client of clients.values()) client.close();
  }
}

/**
 * The NATS of the mesh, TLS only: one server, or a routed cluster of `count` sharing one CA
 * (a client checks any of them against the same file).
 */
async function startNatsServers(stateDir: string, config: string, count: number): Promise<NatsServer[]> {
  if (count <= 1) return [await startNats({ dir: join(stateDir, 'nats'), monitor: true, config, tls: true })];
  const tls = await makeTlsFiles(join(stateDir, 'nats-tls'));
  const tlsBlock = `tls {\n  cert_file: ${JSON.stringify(tls.certFile)}\n  key_file: ${JSON.stringify(tls.keyFile)}\n  timeout: 5\n}\n`;
  const cluster = await startNatsCluster({ size: count, config: `${config}\n${tlsBlock}` });
  return cluster.servers.map((server) => ({ ...server, caFile: tls.caFile }));
}

/** Until every image is in image-sync's catalogue (the policy syncs at start). */
export async function waitForCatalogue(address: string, images: string[]): Promise<void> {
  const client = createClient(ImageSyncServiceClient, address, { token: MESH_TOKENS.service.token });
  try {
    await until(
      async () => {
        const response = await new Promise<ListImagesResponse>((resolve, reject) =>
          client.listImages({ pageSize: 1000, pageToken: '', repositoryPrefix: '', policy: '' }, new Metadata(), (e, r) =>
            e ? reject(e) : resolve(r),
          ),
        );
        const have = new Set(response.images.map((i) => `${i.repository}:${i.tag}`));
        return images.every((image) => [...have].some((h) => h.endsWith(image))) || undefined;
      },
      `the images ${images.join(', ')} in the catalogue`,
      120_000,
    );
  } finally {
    client.close();
  }
}
