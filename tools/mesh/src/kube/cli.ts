#!/usr/bin/env node
// `make kube-up` / `make kube-down`: Lapis installed with Helm on a real one-node Kubernetes
// cluster on this machine, with the example deployed through it.
//   up      starts it (a detached supervisor), shows progress, prints where everything is
//   down    stops it: the cluster goes with everything in it, the host is put back
//   status  says whether it runs and where
// The supervisor (`serve`) keeps .lapis/kube.json up to date; its log is .lapis/kube.log.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupStaleCluster, ensureDocker, type DockerEngine } from '@lapis/testenv';
import { MESH_TOKENS, REPO_ROOT } from '../mesh';
import { deployExampleInCluster } from './example';
import { NAMESPACE, RELEASE, startLapisOnKube, type LapisOnKube } from './install';

const DIR = join(REPO_ROOT, '.lapis');
const STATUS = join(DIR, 'kube.json');
const LOG = join(DIR, 'kube.log');

interface Status {
  pid: number;
  phase: 'starting' | 'ready' | 'failed' | 'stopping';
  progress: string[];
  error?: string;
  summary?: Record<string, string>;
  outputs?: Record<string, unknown>;
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
  process.stdout.write('\nLapis runs on a one-node Kubernetes cluster on this machine:\n\n');
  for (const [key, value] of rows) process.stdout.write(`  ${key.padEnd(width)}  ${value}\n`);
  if (status.outputs) {
    process.stdout.write('\nExample deployment outputs:\n');
    for (const [key, value] of Object.entries(status.outputs)) process.stdout.write(`  ${key}: ${JSON.stringify(value)}\n`);
  }
  process.stdout.write('\nStop it with: make kube-down\n');
}

async function up(): Promise<number> {
  mkdirSync(DIR, { recursive: true });
  const current = read();
  if (current && alive(current.pid) && current.phase !== 'failed') {
    process.stdout.write(`Lapis on Kubernetes already runs (pid ${current.pid}).\n`);
    if (current.phase === 'ready') printSummary(current);
    return 0;
  }
  const started = Date.now();
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
        process.stdout.write(`(up in ${Math.round((Date.now() - started) / 1000)} s)\n`);
        return 0;
      }
      if (status.phase === 'failed') {
        process.stderr.write(`\nLapis on Kubernetes did not start:\n${status.error}\nLog: ${LOG}\n`);
        return 1;
      }
    }
    if (!alive(child.pid!)) {
      process.stderr.write(`\nthe supervisor exited early; log: ${LOG}\n${readFileSync(LOG, 'utf8').slice(-3000)}\n`);
      return 1;
    }
  }
}

async function serve(): Promise<void> {
  const status: Status = { pid: process.pid, phase: 'starting', progress: [] };
  const progress = (line: string) => {
    const text = line.replace(/^@lapis\/testenv: /, '');
    status.progress.push(text);
    write(status);
    process.stdout.write(`${new Date().toISOString()} ${text}\n`);
  };
  write(status);
  let lapis: LapisOnKube | undefined;
  let engine: DockerEngine | undefined;
  const stopAll = async () => {
    await lapis?.stop().catch(() => {});
    if (lapis?.cluster.leftovers.length) process.stdout.write(`could not undo on the host: ${lapis.cluster.leftovers.join('; ')}\n`);
    await engine?.stop().catch(() => {});
  };
  const stop = async () => {
    status.phase = 'stopping';
    write(status);
    await stopAll();
    rmSync(STATUS, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  try {
    engine = await ensureDocker();
    lapis = await startLapisOnKube(engine, progress);
    const { cluster, registries, installed } = lapis;
    status.summary = {
      kubeconfig: `${cluster.kubeconfig} (export KUBECONFIG=${cluster.kubeconfig})`,
      release: `${RELEASE} in namespace ${NAMESPACE} (helm -n ${NAMESPACE} status ${RELEASE})`,
      ...Object.fromEntries(Object.entries(installed.addresses).map(([name, address]) => [`${name} (gRPC)`, address])),
      'OCCI (HTTP)': installed.occiUrl || '(none)',
      'site registry': registries.site.url,
      'user token': `${MESH_TOKENS.alice.token} (projects ${MESH_TOKENS.alice.projects.join(', ')}); admin: ${MESH_TOKENS.admin.token}`,
      logs: `kubectl -n ${NAMESPACE} logs deploy/${RELEASE}-<service>; the cluster's own in ${cluster.dir}`,
    };
    write(status);
    const example = await deployExampleInCluster(cluster, installed, progress);
    // An output over the mirrors it was not given (EXAMPLE_INPUTS) stays an unresolved expression.
    const outputs = Object.fromEntries(
      Object.entries(example.outputs).map(([k, v]) => [
        k,
        typeof v === 'string' ? v : '(none: deployed without mirrors on one 2-core node)',
      ]),
    );
    status.outputs = { ...outputs, deployment: example.deploymentId, 'web pod': example.pod, 'web claims': example.claims };
    status.phase = 'ready';
    write(status);
  } catch (error) {
    status.phase = 'failed';
    status.error = error instanceof Error ? error.message : String(error);
    write(status);
    await stopAll();
    process.exit(1);
  }
}

async function down(): Promise<number> {
  const status = read();
  if (!status || !alive(status.pid)) {
    rmSync(STATUS, { force: true });
    const cleaned = await cleanupStaleCluster((line) => process.stdout.write(`  ${line}\n`));
    process.stdout.write(
      cleaned ? 'Lapis on Kubernetes was not running; removed what its cluster left.\n' : 'Lapis on Kubernetes is not running.\n',
    );
    return 0;
  }
  process.stdout.write(
    `Stopping Lapis on Kubernetes (pid ${status.pid}): the cluster with every pod and claim, the registries; the host is put back...\n`,
  );
  const logFrom = statSync(LOG, { throwIfNoEntry: false })?.size ?? 0;
  process.kill(status.pid, 'SIGTERM');
  for (let waited = 0; alive(status.pid) && waited < 180_000; waited += 300) await sleep(300);
  if (alive(status.pid)) {
    process.stderr.write('the supervisor still runs after 3 minutes: killed (SIGKILL); cleaning up after it\n');
    process.kill(status.pid, 'SIGKILL');
    await sleep(500);
  }
  // Stopped while it was still starting, the supervisor had no cluster to stop yet: its state file says what to undo.
  await cleanupStaleCluster((line) => process.stdout.write(`  ${line}\n`));
  const said = readFileSync(LOG, 'utf8')
    .slice(logFrom)
    .split('\n')
    .filter((l) => /could not undo/.test(l));
  for (const line of said) process.stdout.write(`  ${line}\n`);
  rmSync(STATUS, { force: true });
  process.stdout.write('Stopped.\n');
  return 0;
}

function statusCommand(): number {
  const status = read();
  if (!status || !alive(status.pid)) {
    process.stdout.write('Lapis on Kubernetes is not running (make kube-up starts it).\n');
    return 1;
  }
  process.stdout.write(`Lapis on Kubernetes: ${status.phase} (pid ${status.pid})\n`);
  if (status.phase === 'ready') printSummary(status);
  return 0;
}

const command = process.argv[2];
if (command === 'serve') void serve();
else if (command === 'up') up().then((code) => process.exit(code));
else if (command === 'down') down().then((code) => process.exit(code));
else if (command === 'status') process.exit(statusCommand());
else {
  process.stderr.write('usage: lapis-kube up | down | status\n');
  process.exit(2);
}
