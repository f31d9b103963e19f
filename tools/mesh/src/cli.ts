#!/usr/bin/env node
// `make up` / `make down`: the whole Lapis mesh on this machine, in the background.
//   up      starts it (a detached supervisor), shows progress, prints where everything is
//   down    stops it and removes what it made (instances, volumes, processes)
//   status  says whether it runs and where
// The supervisor (`serve`) keeps .lapis/mesh.json up to date; its log is .lapis/mesh.log.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_DOCKER_SOCKET, pingDocker } from '@lapis/testenv';
import { describeLeftovers, removeLeftovers } from './cleanup';
import { MESH_TOKENS, REPO_ROOT, startMesh, type Mesh } from './mesh';
import { deployExample } from './example';
import { startZipkin, type Zipkin } from './zipkin';

const DIR = join(REPO_ROOT, '.lapis');
const STATUS = join(DIR, 'mesh.json');
const LOG = join(DIR, 'mesh.log');
/** The node name of the local run: its containers and networks carry it as a label. */
const LOCAL_NODE = 'local';

interface Status {
  pid: number;
  phase: 'starting' | 'ready' | 'failed' | 'stopping';
  progress: string[];
  error?: string;
  summary?: Record<string, string>;
  outputs?: Record<string, unknown>;
  /** The services' processes, for `down` to kill if the supervisor cannot stop them. */
  pids?: Record<string, number>;
}

const read = (): Status | undefined => (existsSync(STATUS) ? (JSON.parse(readFileSync(STATUS, 'utf8')) as Status) : undefined);
const write = (status: Status) => writeFileSync(STATUS, JSON.stringify(status, null, 2));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function printSummary(status: Status): void {
  const rows = Object.entries(status.summary ?? {});
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write('\nLapis is running on this machine:\n\n');
  for (const [key, value] of rows) process.stdout.write(`  ${key.padEnd(width)}  ${value}\n`);
  if (status.outputs) {
    process.stdout.write('\nExample deployment outputs:\n');
    for (const [key, value] of Object.entries(status.outputs)) process.stdout.write(`  ${key}: ${JSON.stringify(value)}\n`);
  }
  process.stdout.write(`\nStop it with: make down\n`);
}

async function up(): Promise<number> {
  mkdirSync(DIR, { recursive: true });
  const current = read();
  if (current && alive(current.pid) && current.phase !== 'failed') {
    process.stdout.write(`Lapis already runs (pid ${current.pid}).\n`);
    if (current.phase === 'ready') printSummary(current);
    return 0;
  }
  const log = openSync(LOG, 'w');
  const child = spawn(process.execPath, [__filename, 'serve'], { detached: true, stdio: ['ignore', log, log], env: process.env });
  child.unref();
  let shown = 0;
  for (;;) {
    await sleep(300);
    const status = read();
    if (status && status.pid === child.pid) {
      for (const line of status.progress.slice(shown)) process.stdout.write(`  ... ${line}\n`);
      shown = status.progress.length;
      if (status.phase === 'ready') {
        printSummary(status);
        return 0;
      }
      if (status.phase === 'failed') {
        process.stderr.write(`\nLapis did not start: ${status.error}\nLog: ${LOG}\n`);
        return 1;
      }
    }
    if (!alive(child.pid!)) {
      process.stderr.write(`\nthe Lapis supervisor exited early; log: ${LOG}\n${readFileSync(LOG, 'utf8').slice(-2000)}\n`);
      return 1;
    }
  }
}

async function serve(): Promise<void> {
  const status: Status = { pid: process.pid, phase: 'starting', progress: [] };
  const progress = (line: string) => {
    status.progress.push(line);
    write(status);
    process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  };
  write(status);
  let mesh: Mesh | undefined;
  let zipkin: Zipkin | undefined;
  const stop = async () => {
    status.phase = 'stopping';
    write(status);
    await mesh?.stop();
    await zipkin?.stop();
    rmSync(STATUS, { force: true });
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
    mesh = await startMesh({
      stateDir: join(DIR, 'state'),
      nodeName: LOCAL_NODE,
      defaultPorts: true,
      progress,
      env: zipkin ? { OTEL_TRACES_EXPORTER: 'zipkin', OTEL_EXPORTER_ZIPKIN_ENDPOINT: zipkin.spansEndpoint } : {},
    });
    status.pids = Object.fromEntries(Object.entries(mesh.processes).map(([name, p]) => [name, p!.pid]));
    write(status);
    status.summary = {
      'OCCI (HTTP)': mesh.occiUrl ?? '(not started)',
      ...Object.fromEntries(Object.entries(mesh.addresses).map(([name, address]) => [`${name} (gRPC)`, address])),
      ...Object.fromEntries(Object.entries(mesh.metricsUrls).map(([name, url]) => [`${name} (metrics)`, url])),
      NATS: `${mesh.nats.url} (TLS with CA ${mesh.nats.caFile}; one user per service, passwords in ${join(mesh.stateDir, 'nats-users')}${mesh.nats.monitorUrl ? `; monitoring ${mesh.nats.monitorUrl}` : ''})`,
      'site registry': mesh.site.url,
      'trace viewer': zipkin ? `${zipkin.url}/zipkin/` : 'off (LAPIS_TRACING=0)',
      'user token': `${MESH_TOKENS.alice.token} (projects ${MESH_TOKENS.alice.projects.join(', ')}); admin: ${MESH_TOKENS.admin.token}`,
      logs: join(mesh.stateDir, 'logs'),
    };
    if (mesh.addresses['tosca-orchestrator']) {
      progress('deploying the example TOSCA template (examples/tosca/web-app.yaml)');
      status.outputs = await deployExample(mesh);
    }
    status.phase = 'ready';
    write(status);
  } catch (error) {
    status.phase = 'failed';
    status.error = error instanceof Error ? error.message : String(error);
    write(status);
    await mesh?.stop().catch(() => {});
    await zipkin?.stop().catch(() => {});
    process.exit(1);
  }
}

async function down(): Promise<number> {
  const status = read();
  if (!status || !alive(status.pid)) {
    rmSync(STATUS, { force: true });
    const left = await removeLeftoversOfLocalRun();
    process.stdout.write(left ? `Lapis is not running; removed what a run left: ${left}.\n` : 'Lapis is not running.\n');
    return 0;
  }
  process.stdout.write(`Stopping Lapis (pid ${status.pid}): instances, volumes, services, NATS, registries...\n`);
  const logFrom = statSync(LOG, { throwIfNoEntry: false })?.size ?? 0;
  process.kill(status.pid, 'SIGTERM');
  // Each service gets its grace period (the supervisor kills one that overstays it); this is
  // the limit for all of them together.
  for (let waited = 0; alive(status.pid) && waited < 180_000; waited += 300) await sleep(300);
  const killed = [status.pid, ...Object.values(status.pids ?? {})].filter(alive);
  if (killed.length > 0) {
    const names = Object.entries(status.pids ?? {})
      .filter(([, pid]) => alive(pid))
      .map(([name]) => name);
    process.stderr.write(`still running after 3 minutes, killed (SIGKILL): the supervisor${names.length ? `, ${names.join(', ')}` : ''}\n`);
    for (const pid of killed) process.kill(pid, 'SIGKILL');
  }
  // What the supervisor said while stopping that a person should know: services killed, leftovers.
  const said = readFileSync(LOG, 'utf8')
    .slice(logFrom)
    .split('\n')
    .filter((l) => /did not exit within|removed what|could not remove/.test(l));
  for (const line of said) process.stdout.write(`  ${line}\n`);
  rmSync(STATUS, { force: true });
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

function statusCommand(): number {
  const status = read();
  if (!status || !alive(status.pid)) {
    process.stdout.write('Lapis is not running (make up starts it).\n');
    return 1;
  }
  process.stdout.write(`Lapis: ${status.phase} (pid ${status.pid})\n`);
  if (status.phase === 'ready') printSummary(status);
  return 0;
}

const command = process.argv[2];
if (command === 'serve') void serve();
else if (command === 'up') up().then((code) => process.exit(code));
else if (command === 'down') down().then((code) => process.exit(code));
else if (command === 'status') process.exit(statusCommand());
else {
  process.stderr.write('usage: lapis-mesh up | down | status\n');
  process.exit(2);
}
