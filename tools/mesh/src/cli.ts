#!/usr/bin/env node
// `make up` / `make down`: the whole Lapis mesh on this machine, in the background.
//   up      starts it (a detached supervisor), shows progress, prints where everything is
//   down    stops it and removes what it made (instances, volumes, processes)
//   status  says whether it runs and where
// The supervisor (`serve`) keeps .lapis/mesh.json up to date; its log is .lapis/mesh.log.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_DOCKER_SOCKET, pingDocker } from '@lapis/testenv';
import { describeLeftovers, removeLeftovers } from './cleanup';
import { deployExample } from './example';
import { MESH_TOKENS, type Mesh, REPO_ROOT, startMesh } from './mesh';
import { alive, Supervisor } from './supervisor';
import { UP_CPU_ALLOCATION_RATIO, upServiceEnv } from './up-config';
import { startZipkin, type Zipkin } from './zipkin';

const DIR = join(REPO_ROOT, '.lapis');
/** The node name of the local run: its containers and networks carry it as a label. */
const LOCAL_NODE = 'local';

const supervisor = new Supervisor({
  name: 'Lapis',
  headline: 'Lapis is running on this machine',
  upCommand: 'make up',
  downCommand: 'make down',
  statusFile: join(DIR, 'mesh.json'),
  logFile: join(DIR, 'mesh.log'),
  script: __filename,
});

async function serve(): Promise<void> {
  const { status, progress } = supervisor.begin();
  let mesh: Mesh | undefined;
  let zipkin: Zipkin | undefined;
  const stop = async () => {
    status.phase = 'stopping';
    supervisor.write(status);
    await mesh?.stop();
    await zipkin?.stop();
    supervisor.forget();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  try {
    const tracing = process.env.LAPIS_TRACING !== '0';
    if (tracing) {
      progress('trace viewer (Zipkin; the first run fetches it with Maven)');
      zipkin = await startZipkin(join(DIR, 'zipkin.log'));
    }
    // Every run starts its registries empty, so NATS starts empty too: a catalogue (or
    // instances) recorded by an earlier run would name images and containers that are gone.
    rmSync(join(DIR, 'state', 'nats'), { recursive: true, force: true });
    mkdirSync(join(DIR, 'state'), { recursive: true });
    mesh = await startMesh({
      stateDir: join(DIR, 'state'),
      nodeName: LOCAL_NODE,
      defaultPorts: true,
      progress,
      serviceEnv: upServiceEnv(join(DIR, 'state')),
      env: zipkin ? { OTEL_TRACES_EXPORTER: 'zipkin', OTEL_EXPORTER_ZIPKIN_ENDPOINT: zipkin.spansEndpoint } : {},
    });
    status.pids = Object.fromEntries(Object.entries(mesh.processes).map(([name, p]) => [name, p!.pid]));
    supervisor.write(status);
    status.summary = {
      'OCCI (HTTP)': mesh.occiUrl ?? '(not started)',
      ...Object.fromEntries(Object.entries(mesh.addresses).map(([name, address]) => [`${name} (gRPC)`, address])),
      NATS: `${mesh.nats.url} (TLS with CA ${mesh.nats.caFile}; one user per service, passwords in ${join(mesh.stateDir, 'nats-users')}${mesh.nats.monitorUrl ? `; monitoring ${mesh.nats.monitorUrl}` : ''})`,
      'site registry': mesh.site.url,
      'trace viewer': zipkin ? `${zipkin.url}/zipkin/` : 'off (LAPIS_TRACING=0)',
      'user token': `${MESH_TOKENS.alice.token} (projects ${MESH_TOKENS.alice.projects.join(', ')}); admin: ${MESH_TOKENS.admin.token}`,
      logs: join(mesh.stateDir, 'logs'),
      overcommit: `CPU allocation ratio ${UP_CPU_ALLOCATION_RATIO} (lapisctl partition list; lapisctl partition set-ratios default --cpu N)`,
    };
    if (mesh.addresses['tosca-orchestrator']) {
      progress('deploying the example TOSCA template (examples/tosca/web-app.yaml)');
      status.outputs = await deployExample(mesh);
    }
    status.phase = 'ready';
    supervisor.write(status);
  } catch (error) {
    status.phase = 'failed';
    status.error = error instanceof Error ? error.message : String(error);
    supervisor.write(status);
    await mesh?.stop().catch(() => {});
    await zipkin?.stop().catch(() => {});
    process.exit(1);
  }
}

async function down(): Promise<number> {
  const status = supervisor.read();
  if (!status || !alive(status.pid)) {
    supervisor.forget();
    const left = await removeLeftoversOfLocalRun();
    process.stdout.write(left ? `Lapis is not running; removed what a run left: ${left}.\n` : 'Lapis is not running.\n');
    return 0;
  }
  process.stdout.write(`Stopping Lapis (pid ${status.pid}): instances, volumes, services, NATS, registries...\n`);
  // Each service gets its grace period (the supervisor kills one that overstays it); stop()'s
  // limit is for all of them together. What it said that a person should know: services
  // killed, leftovers.
  for (const line of await supervisor.stop(status, /did not exit within|removed what|could not remove/))
    process.stdout.write(`  ${line}\n`);
  supervisor.forget();
  const left = await removeLeftoversOfLocalRun();
  if (left) process.stdout.write(`  removed what was left: ${left}\n`);
  process.stdout.write('Stopped.\n');
  return 0;
}

/** Containers, networks, mounts and loop devices of the local run's node, through the engine and the kernel. */
async function removeLeftoversOfLocalRun(): Promise<string | undefined> {
  if (!(await pingDocker(DEFAULT_DOCKER_SOCKET))) return undefined; // no engine: no containers to remove
  return describeLeftovers(await removeLeftovers(LOCAL_NODE, join(DIR, 'state', 'runtime')));
}

supervisor.main({ serve, down }, 'lapis-mesh');
