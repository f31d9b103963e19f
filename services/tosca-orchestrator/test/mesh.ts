// The scheduler, a container runtime and the orchestrator as their own processes (as
// production runs them) on the run's NATS, the runtime on the shared Docker engine with real
// containers and loop-device volumes; an image whose command keeps running for the computes.
// Whatever a test leaves is removed when the mesh stops.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { call, createClient } from '@lapis/platform';
import { natsUrl, spawnService, staticTokenFile, TEST_TOKENS, unique, type ServiceProcess } from '@lapis/platform/testing';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { OperationsServiceClient } from '@lapis/proto/lapis/common/v1/operations_service';
import type {
  DeleteInstanceRequest,
  DeleteInstanceResponse,
  DeleteVolumeRequest,
  DeleteVolumeResponse,
  ListInstancesRequest,
  ListInstancesResponse,
  ListVolumesRequest,
  ListVolumesResponse,
} from '@lapis/proto/lapis/runtime/v1/runtime';
import { RuntimeServiceClient } from '@lapis/proto/lapis/runtime/v1/runtime_service';
import { ToscaServiceClient } from '@lapis/proto/lapis/tosca/v1/tosca_service';
import { docker, ensureBaseImage, sharedDocker } from '@lapis/testenv';
import { indigoMirror } from './helpers';

const repo = resolve(__dirname, '..', '..', '..', '..');
const mainOf = (service: string) => join(repo, 'services', service, 'dist', 'src', 'main.js');

/** A template of examples/tosca and the files beside it, as `lapisctl deployment create` sends them. */
export function exampleTemplate(folder: string, main: string, changes: Record<string, string> = {}) {
  const root = join(repo, 'examples', 'tosca', folder);
  const files: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (path !== join(root, main)) files[relative(root, path)] = readFileSync(path, 'utf8');
    }
  };
  walk(root);
  return {
    content: { $case: 'yaml' as const, yaml: readFileSync(join(root, main), 'utf8') },
    fileName: main,
    files: { ...files, ...changes },
  };
}

export class Mesh {
  readonly node = unique('tosca-node').toLowerCase().replace(/_/g, '-');
  /** Busybox, whose command sleeps: the computes' image. */
  readonly image = `lapis-tosca-test/sleeper:${this.node}`;
  readonly procs: ServiceProcess[] = [];
  /** Clients to the orchestrator as alice in physics (new ones after a restart), and to the runtime as root. */
  tosca!: ToscaServiceClient;
  ops!: OperationsServiceClient;
  runtime!: RuntimeServiceClient;
  private stateDir = '';
  private tokens = '';
  private orchestratorEnv: Record<string, string> = {};

  /** Starts the three services; `orchestratorEnv` adds to the orchestrator's environment (a trace collector). */
  async start(orchestratorEnv: Record<string, string> = {}): Promise<this> {
    const engine = await sharedDocker();
    const base = await ensureBaseImage();
    this.stateDir = mkdtempSync(join(tmpdir(), 'lapis-tosca-mesh-'));
    writeFileSync(join(this.stateDir, 'Dockerfile'), `FROM ${base}\nCMD ["sleep", "3600"]\n`);
    await docker(['build', '-q', '-t', this.image, this.stateDir]);
    this.tokens = staticTokenFile();
    const common = {
      LAPIS_NATS_URL: natsUrl(),
      LAPIS_STATIC_TOKENS_FILE: this.tokens,
      LAPIS_SERVICE_TOKEN: TEST_TOKENS.root.token,
      LAPIS_FLAVORS_FILE: join(repo, 'config', 'flavors.yaml'),
      LAPIS_HEARTBEAT_MS: '1000',
    };
    const scheduler = await spawnService('scheduler', mainOf('scheduler'), {
      ...common,
      LAPIS_SCHEDULER_BUCKET_PREFIX: `${this.node}-scheduler`,
      LAPIS_SCHEDULER_CONSUMER_PREFIX: `${this.node}-scheduler`,
      LAPIS_SCHEDULER_CYCLE_MS: '200',
    });
    this.procs.push(scheduler);
    const agent = await spawnService('container-runtime', mainOf('container-runtime'), {
      ...common,
      LAPIS_NODE_NAME: this.node,
      LAPIS_STATE_DIR: join(this.stateDir, 'runtime'),
      LAPIS_DOCKER_SOCKET: engine.socketPath,
      LAPIS_ALLOW_UNTRUSTED_IMAGES: 'true',
      LAPIS_STOP_TIMEOUT_S: '1',
      LAPIS_NODE_CPU_MILLIS: '8000',
    });
    this.procs.push(agent);
    this.orchestratorEnv = {
      ...common,
      LAPIS_SCHEDULER_ADDRESS: scheduler.address,
      LAPIS_RUNTIME_ADDRESS: agent.address,
      LAPIS_TOSCA_IMPORT_MIRROR: indigoMirror(),
      ...orchestratorEnv,
    };
    await this.startOrchestrator();
    this.runtime = createClient(RuntimeServiceClient, agent.address, { token: TEST_TOKENS.root.token, deadlineMs: 60_000 });
    return this;
  }

  /** The orchestrator (again, after stopOrchestrator), and new clients to it. */
  async startOrchestrator(): Promise<ServiceProcess> {
    const orchestrator = await spawnService('tosca-orchestrator', mainOf('tosca-orchestrator'), this.orchestratorEnv);
    this.procs.push(orchestrator);
    this.tosca?.close();
    this.ops?.close();
    // A deadline for a busy machine: a first template is read cold.
    this.tosca = createClient(ToscaServiceClient, orchestrator.address, {
      token: TEST_TOKENS.alice.token,
      project: 'physics',
      deadlineMs: 60_000,
    });
    this.ops = createClient(OperationsServiceClient, orchestrator.address, { token: TEST_TOKENS.alice.token, project: 'physics' });
    return orchestrator;
  }

  orchestrator(): ServiceProcess {
    return this.procs.find((p) => p.name === 'tosca-orchestrator')!;
  }

  /** Stops the orchestrator (SIGTERM; it flushes its spans). */
  async stopOrchestrator(): Promise<void> {
    const old = this.procs.splice(this.procs.indexOf(this.orchestrator()), 1)[0]!;
    await old.stop();
  }

  /** Whatever a failed test left, removed through the runtime; the processes stopped; the node's containers and mounts gone. */
  async stop(): Promise<void> {
    const { runtime, node, stateDir } = this;
    if (runtime) {
      const left = await call<ListInstancesRequest, ListInstancesResponse>(runtime.listInstances.bind(runtime), {
        pageSize: 1000,
        pageToken: '',
        project: '',
        state: 0,
        node,
      }).catch(() => undefined);
      for (const i of left?.instances ?? []) {
        if (i.state !== InstanceState.DELETED)
          await call<DeleteInstanceRequest, DeleteInstanceResponse>(runtime.deleteInstance.bind(runtime), {
            instanceId: i.id,
            timeout: undefined,
            requestId: '',
          }).catch(() => undefined);
      }
      const volumes = await call<ListVolumesRequest, ListVolumesResponse>(runtime.listVolumes.bind(runtime), {
        pageSize: 1000,
        pageToken: '',
        project: '',
        state: 0,
        instanceId: '',
      }).catch(() => undefined);
      for (const v of volumes?.volumes ?? [])
        await call<DeleteVolumeRequest, DeleteVolumeResponse>(runtime.deleteVolume.bind(runtime), { volumeId: v.id, requestId: '' }).catch(
          () => undefined,
        );
    }
    this.tosca?.close();
    this.ops?.close();
    runtime?.close();
    for (const p of this.procs.reverse()) await p.stop();
    // Last resort, if the runtime could not remove something: its containers and its mounts.
    const containers = (await docker(['ps', '-aq', '--filter', `label=lapis.node=${node}`]).catch(() => '')).split('\n').filter(Boolean);
    if (containers.length) await docker(['rm', '-f', ...containers]).catch(() => undefined);
    await docker(['rmi', '-f', this.image]).catch(() => undefined);
    if (stateDir) {
      const mounts = readFileSync('/proc/mounts', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[1] ?? '')
        .filter((m) => m.startsWith(stateDir))
        .reverse();
      for (const m of mounts) spawnSync('umount', ['-l', m]);
      const loops =
        spawnSync('losetup', ['-a'], { encoding: 'utf8' })
          .stdout?.split('\n')
          .filter((l) => l.includes(stateDir))
          .map((l) => l.split(':')[0]!) ?? [];
      for (const device of loops) spawnSync('losetup', ['-d', device]);
      rmSync(stateDir, { recursive: true, force: true });
    }
    if (this.tokens) rmSync(dirname(this.tokens), { recursive: true, force: true });
  }
}
