// What the runtime's tests share: a real agent (real NATS, Docker, loop devices, mounts)
// behind a real gRPC server, a stand-in for image-sync, and the checks that nothing is left.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Server, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import { authenticatorFrom, call, createClient, EventBus, GrpcServer, platformSpecs, loadConfig, type ConfigOf } from '@lapis/platform';
import { natsUrl, staticTokenFile, TEST_TOKENS, testLog, unique } from '@lapis/platform/testing';
import type { ResolveImageRequest, ResolveImageResponse } from '@lapis/proto/lapis/images/v1/images';
import { ImageSyncServiceService } from '@lapis/proto/lapis/images/v1/image_sync_service';
import { RuntimeServiceClient } from '@lapis/proto/lapis/runtime/v1/runtime_service';
import { Event as EventCodec, type Event } from '@lapis/proto/lapis/events/v1/events';
import Docker from 'dockerode';
import { ensureBaseImage, sharedDocker } from '@lapis/testenv';
import type { Agent } from '../src/application/agent';
import { ImageSyncResolver } from '../src/adapters/images';
import { loadRuntimeConfig, type RuntimeConfig } from '../src/config';
import { LABEL } from '../src/domain/container';
import { runtimeService } from '../src/server';
import { buildAgent } from '../src/wiring';

export const FLAVORS = resolve(__dirname, '../../../../config/flavors.yaml');
export const tokens = TEST_TOKENS;
const tokenFile = staticTokenFile();

export type Client = RuntimeServiceClient;

/** Where each test client calls and in which project it acts. */
const clientsProject = new WeakMap<Client, { address: string; project: string }>();
const adminClients = new Map<string, Client>();

/**
 * The admin acting in `client`'s project, on the same runtime. Only admins (and the services)
 * create instances directly; tenants submit claims, which these tests of one agent have no
 * scheduler for. The instance is the project's all the same (its user is root).
 */
export function adminOf(client: Client): Client {
  const where = clientsProject.get(client);
  if (!where) throw new Error('adminOf: not a client of the test runtime');
  const key = `${where.address}/${where.project}`;
  let admin = adminClients.get(key);
  if (!admin) {
    admin = createClient(RuntimeServiceClient, where.address, { token: tokens.root.token, project: where.project, deadlineMs: 60_000 });
    adminClients.set(key, admin);
  }
  return admin;
}
/** Promise form of a unary call of the runtime client. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const rpc = (client: Client, method: (...args: any[]) => unknown, request: object): Promise<any> =>
  call(method.bind(client) as never, request);

export async function expectCode(promise: Promise<unknown>, code: status, pattern?: RegExp): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    const e = error as ServiceError;
    if (e.code !== code) throw new Error(`expected ${status[code]}, got ${status[e.code]}: ${e.details ?? e.message}`);
    if (pattern && !pattern.test(e.details)) throw new Error(`message "${e.details}" does not match ${pattern}`);
    return e;
  }
  throw new Error(`expected ${status[code]}, but the call succeeded`);
}

/**
 * Stands in for image-sync until the mesh tests: a real gRPC server that implements only
 * ResolveImage, against a fixed catalogue (reference -> digest). Everything else answers
 * UNIMPLEMENTED; an unknown reference is NOT_FOUND, as image-sync answers it.
 */
export async function fakeImageSync(
  catalogue: Record<string, string>,
): Promise<{ address: string; calls: string[]; stop(): Promise<void> }> {
  const server = new Server();
  const calls: string[] = [];
  const unimplemented = (_: unknown, cb: (e: Partial<ServiceError>) => void) =>
    cb({ code: status.UNIMPLEMENTED, details: 'not in the stand-in' });
  const handlers = Object.fromEntries(Object.keys(ImageSyncServiceService).map((k) => [k, unimplemented]));
  handlers.resolveImage = ((
    callObj: { request: ResolveImageRequest },
    cb: (e: Partial<ServiceError> | null, r?: ResolveImageResponse) => void,
  ) => {
    const reference = callObj.request.reference;
    calls.push(reference);
    const digest = catalogue[reference];
    if (!digest) return cb({ code: status.NOT_FOUND, details: `image ${reference} is not trusted` });
    cb(null, { image: undefined, digest, pullReference: reference });
  }) as never;
  server.addService(ImageSyncServiceService, handlers as never);
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );
  return { address: `127.0.0.1:${port}`, calls, stop: () => new Promise((res) => server.tryShutdown(() => res())) };
}

export interface Runtime {
  agent: Agent;
  node: string;
  stateDir: string;
  bus: EventBus;
  address: string;
  client(who?: keyof typeof tokens, project?: string): Client;
  /** Stops the agent and its server; instances stay (as after a crash) unless `purge`. */
  stop(options?: { purge?: boolean }): Promise<void>;
  config: Partial<RuntimeConfig>;
}

export interface RuntimeOptions {
  node?: string;
  stateDir?: string;
  env?: Partial<Record<keyof RuntimeConfig, string>>;
  imageSync?: string;
  consume?: boolean;
  /** False where the backend is not Docker (the Kubernetes tests): no engine is started. */
  docker?: boolean;
}

export async function startRuntime(options: RuntimeOptions = {}): Promise<Runtime> {
  const engine = options.docker === false ? { socketPath: '/var/run/docker.sock' } : await sharedDocker();
  if (options.docker !== false) await ensureBaseImage();
  const node = options.node ?? unique('node').toLowerCase();
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), 'lapis-rt-'));
  const config = loadRuntimeConfig({
    LAPIS_NATS_URL: natsUrl(),
    LAPIS_GRPC_PORT: '0',
    LAPIS_STATIC_TOKENS_FILE: tokenFile,
    LAPIS_NODE_NAME: node,
    LAPIS_FLAVORS_FILE: FLAVORS,
    LAPIS_DOCKER_SOCKET: engine.socketPath,
    LAPIS_STATE_DIR: stateDir,
    LAPIS_HEARTBEAT_MS: '1000',
    LAPIS_STOP_TIMEOUT_S: '2',
    LAPIS_MAX_VOLUME_BYTES: String(256 * 2 ** 20),
    LAPIS_IMAGE_SYNC_ADDRESS: options.imageSync ?? '',
    LAPIS_ALLOW_UNTRUSTED_IMAGES: options.imageSync ? 'false' : 'true',
    LAPIS_INFINIBAND_DIR: join(stateDir, 'no-infiniband'),
    ...options.env,
  });
  const bus = await EventBus.connect({ url: natsUrl(), name: `runtime-test@${node}`, stream: 'LAPIS', log: testLog });
  const images = new ImageSyncResolver(config.LAPIS_IMAGE_SYNC_ADDRESS, 'runtime-token', config.LAPIS_ALLOW_UNTRUSTED_IMAGES);
  const agent = await buildAgent(config, bus, testLog, images);
  await agent.start({ consume: options.consume ?? true });
  const platform = loadConfig(platformSpecs, {
    LAPIS_NATS_URL: natsUrl(),
    LAPIS_GRPC_PORT: '0',
    LAPIS_STATIC_TOKENS_FILE: tokenFile,
  }) as ConfigOf<typeof platformSpecs>;
  const server = new GrpcServer({
    domain: 'runtime.lapis.dev',
    host: '127.0.0.1',
    port: 0,
    services: [runtimeService(agent)],
    authenticator: authenticatorFrom(platform),
    log: testLog,
  });
  server.setDependency('nats', true);
  const port = await server.listen();
  const address = `127.0.0.1:${port}`;
  const clients: Client[] = [];
  return {
    agent,
    node,
    stateDir,
    bus,
    address,
    config,
    client(who = 'alice', project) {
      const c = createClient(RuntimeServiceClient, address, {
        token: tokens[who].token,
        ...(project ? { project } : {}),
        deadlineMs: 60_000,
      });
      const identity: { token: string; projects?: readonly string[] } = tokens[who];
      const projects = identity.projects ?? [];
      clientsProject.set(c, { address, project: project ?? projects[0] ?? '' });
      clients.push(c);
      return c;
    },
    async stop({ purge = false } = {}) {
      const t = Date.now();
      const mark = (what: string) => process.env.TEST_TIMING && process.stderr.write(`[${node}] ${what} +${Date.now() - t}ms\n`);
      if (purge) await purgeNode(agent);
      mark('purged');
      await agent.stop();
      mark('agent stopped');
      await server.shutdown(1_000);
      for (const c of clients) c.close();
      for (const [key, c] of adminClients) {
        if (key.startsWith(`${address}/`)) {
          c.close();
          adminClients.delete(key);
        }
      }
      images.close();
      await bus.drain();
      if (purge) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** Deletes every instance and volume of the agent's node (test cleanup, through the agent itself). */
export async function purgeNode(agent: Agent): Promise<void> {
  const admin = { user: 'root', project: '', admin: true };
  const problems: string[] = [];
  for (const i of await agent.instances.list(admin, { project: '', state: 0, node: agent.node })) {
    await agent.instances.delete(i.id, 0, '', admin).catch((e: Error) => problems.push(`delete instance ${i.id}: ${e.message}`));
  }
  for (const v of await agent.volumes.list(admin, { project: '', state: 0, instanceId: '' })) {
    if (v.node !== agent.node) continue;
    if (v.attachment) await agent.attachments.detach(v.id, '', admin).catch((e: Error) => problems.push(`detach ${v.id}: ${e.message}`));
    await agent.volumes.delete(v.id, '', admin).catch((e: Error) => problems.push(`delete volume ${v.id}: ${e.message}`));
  }
  if (problems.length) throw new Error(`cleanup of node ${agent.node} failed:\n  ${problems.join('\n  ')}`);
}

export const dockerClient = () => new Docker({ socketPath: '/var/run/docker.sock' });

/** Containers, mounts and loop devices of a node: what must be empty after a failure or cleanup. */
export async function leftovers(node: string, stateDir: string) {
  const containers = await dockerClient().listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.node}=${node}`] }) });
  const mounts = execFileSync('cat', ['/proc/self/mountinfo'])
    .toString()
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(stateDir));
  const loops = (
    JSON.parse(execFileSync('losetup', ['--json', '--list']).toString() || '{"loopdevices":[]}') as {
      loopdevices: Array<{ name: string; 'back-file': string | null }>;
    }
  ).loopdevices
    .filter((l) => (l['back-file'] ?? '').startsWith(stateDir))
    .map((l) => l.name);
  return { containers: containers.map((c) => c.Names[0] ?? c.Id), mounts, loops };
}

export const nothingLeft = { containers: [], mounts: [], loops: [] };

/** Records the events published on `subject` from now on (core NATS sees JetStream publishes too). */
export function recordEvents(bus: EventBus, subject: string): { events: Event[]; stop(): void } {
  const events: Event[] = [];
  const sub = bus.nc.subscribe(subject, { callback: (_e, m) => events.push(EventCodec.decode(m.data)) });
  return { events, stop: () => sub.unsubscribe() };
}

export const baseSpec = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  flavor: 'm1.tiny',
  resources: undefined,
  image: 'lapis/busybox:testenv',
  command: ['sleep', '3600'],
  environment: {},
  userData: Buffer.alloc(0),
  sshPublicKeys: [],
  labels: {},
  ports: [],
  volumes: [],
  devices: [],
  networks: [],
  restartOnFailure: true,
  ...extra,
});

export const exec = async (containerId: string, cmd: string[]): Promise<{ code: number; out: string }> => {
  const container = dockerClient().getContainer(containerId);
  const e = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await e.start({});
  const chunks: Buffer[] = [];
  await new Promise<void>((res, rej) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => res());
    stream.on('error', rej);
  });
  // Strip the multiplexing headers.
  let buf = Buffer.concat(chunks);
  let out = '';
  while (buf.length >= 8) {
    const size = buf.readUInt32BE(4);
    out += buf.subarray(8, 8 + size).toString();
    buf = buf.subarray(8 + size);
  }
  const { ExitCode } = await e.inspect();
  return { code: ExitCode ?? -1, out };
};
