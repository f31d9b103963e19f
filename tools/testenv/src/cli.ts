#!/usr/bin/env node
// lapis-testenv: starts the real dependencies for a local run and keeps them up until Ctrl-C.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureDocker } from './docker.js';
import { prepareTestRun } from './prepare.js';
import { ensureBaseImage } from './image.js';
import { cleanupStaleCluster, startCluster } from './cluster.js';
import { startKube } from './kube.js';
import { startNats } from './nats.js';
import { startNatsCluster } from './nats-cluster.js';
import { startRegistry } from './registry.js';

const HELP = `usage: lapis-testenv up [--docker] [--image] [--registry] [--kube | --cluster] [--nats-port PORT | --nats-cluster]
       lapis-testenv prepare [--images]
       lapis-testenv cluster-down

Starts NATS with JetStream (and, when asked, a Docker engine, the local base image and an
OCI registry) on this machine, installing missing Debian packages with apt-get. Prints what
runs where, writes the same as \`export VAR=...\` lines to .lapis/testenv.env, and stays in
the foreground; Ctrl-C (or SIGTERM) stops everything it started and removes that file.

  --docker          use the running Docker engine, or start dockerd
  --image           also build the base image lapis/busybox:testenv (implies --docker)
  --registry        start a docker-registry on a free loopback port (no auth)
  --kube            start a Kubernetes control plane (etcd, kube-apiserver, controller
                    manager, scheduler) with 2 kwok nodes, built with Go on first use
                    (~10 min); uses the cluster of $KUBECONFIG instead when it is set
  --cluster         start a real one-node Kubernetes cluster instead (kubelet, containerd,
                    CNI bridge, kube-proxy, CoreDNS, local-path provisioner; root only);
                    stopping it puts the host back (iptables chains, bridge, sysctls, ...)
  --nats-port PORT  NATS client port (default: a free one)
  --nats-cluster    three routed NATS servers instead of one (LAPIS_NATS_URL lists them,
                    LAPIS_NATS_REPLICAS=3): kill one and Lapis goes on
  -h, --help        this text

\`prepare\` makes, before a test run, what takes long to make: it installs the missing
Debian packages, builds the base image and the Kubernetes tools (the first build takes 10-15
minutes on 2 cores; cached in $LAPIS_TESTENV_CACHE or /var/cache/lapis-testenv), and with
--images the service images (images/build.sh). \`make test\` runs it first.

\`cluster-down\` tears down a real cluster whose process died without doing so.
`;

interface UpOptions {
  docker: boolean;
  image: boolean;
  registry: boolean;
  kube: boolean;
  cluster: boolean;
  natsPort?: number;
  natsCluster?: boolean;
}

function parseArgs(argv: string[]): UpOptions | 'help' {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') return 'help';
  if (command !== 'up') throw new Error(`unknown command ${JSON.stringify(command)}`);
  const opts: UpOptions = { docker: false, image: false, registry: false, kube: false, cluster: false };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg === '--docker') opts.docker = true;
    else if (arg === '--image') opts.docker = opts.image = true;
    else if (arg === '--registry') opts.registry = true;
    else if (arg === '--kube') opts.kube = true;
    else if (arg === '--cluster') opts.cluster = true;
    else if (arg === '--nats-cluster') opts.natsCluster = true;
    else if (arg === '--nats-port') {
      const port = Number(rest[++i]);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error('--nats-port needs a port number');
      opts.natsPort = port;
    } else if (arg === '-h' || arg === '--help') return 'help';
    else throw new Error(`unknown option ${JSON.stringify(arg)}`);
  }
  if (opts.kube && opts.cluster) throw new Error('--kube and --cluster both start a cluster: choose one');
  if (opts.natsCluster && opts.natsPort !== undefined) throw new Error('--nats-cluster picks its own ports: leave out --nats-port');
  return opts;
}

interface Row {
  name: string;
  address: string;
  note: string;
}

async function up(opts: UpOptions): Promise<void> {
  // Stopped in reverse order on the way out.
  const stops: Array<() => Promise<void>> = [];
  const rows: Row[] = [];
  const env: Record<string, string> = {};
  const envFile = path.resolve('.lapis', 'testenv.env');
  let envWritten = false;

  const shutdown = async (): Promise<void> => {
    if (envWritten) fs.rmSync(envFile, { force: true });
    for (const stop of stops.reverse()) {
      try {
        await stop();
      } catch (e) {
        console.error(`lapis-testenv: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  };

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      console.error(`lapis-testenv: ${signal} again, exiting now`);
      process.exit(130); // the exit handler of proc.ts still signals every child
    }
    console.error(`lapis-testenv: ${signal}, stopping...`);
    void shutdown().then(() => process.exit(0));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    if (opts.natsCluster) {
      const cluster = await startNatsCluster();
      stops.push(() => cluster.stop());
      for (const [i, server] of cluster.servers.entries())
        rows.push({ name: `nats-${i}`, address: server.url, note: `monitoring ${server.monitorUrl}, log ${server.logFile}` });
      env.LAPIS_NATS_URL = env.LAPIS_TEST_NATS_URL = cluster.url;
      env.LAPIS_NATS_REPLICAS = '3';
    } else {
      const nats = await startNats({ monitor: true, ...(opts.natsPort !== undefined ? { port: opts.natsPort } : {}) });
      stops.push(() => nats.stop());
      rows.push({ name: 'nats', address: nats.url, note: `monitoring ${nats.monitorUrl}, log ${nats.logFile}` });
      env.LAPIS_NATS_URL = env.LAPIS_TEST_NATS_URL = nats.url;
    }

    if (opts.docker) {
      const engine = await ensureDocker();
      stops.push(() => engine.stop());
      rows.push({
        name: 'docker',
        address: `unix://${engine.socketPath}`,
        note: engine.startedByUs ? `dockerd started here, log ${engine.logFile}` : 'already running, left as it is',
      });
      env.DOCKER_HOST = `unix://${engine.socketPath}`;
      if (opts.image) {
        const image = await ensureBaseImage(undefined, { engine });
        rows.push({ name: 'image', address: image, note: 'local base image (kept)' });
        env.LAPIS_TEST_BASE_IMAGE = image;
      }
    }

    if (opts.registry) {
      const registry = await startRegistry();
      stops.push(() => registry.stop());
      rows.push({ name: 'registry', address: registry.url, note: `log ${registry.logFile}` });
      env.LAPIS_TEST_REGISTRY_URL = registry.url;
      env.LAPIS_TEST_REGISTRY_HOST = registry.host;
    }

    if (opts.kube) {
      const kube = await startKube({ progress: (line) => console.error(line) });
      stops.push(() => kube.stop());
      if (!kube.external) await kube.addNodes(2);
      rows.push({
        name: 'kube',
        address: kube.server,
        note: kube.external
          ? `the cluster of KUBECONFIG=${kube.kubeconfig}, left as it is`
          : `2 kwok nodes, kubeconfig ${kube.kubeconfig}, logs in ${kube.dir}`,
      });
      env.KUBECONFIG = kube.kubeconfig;
    }
    if (opts.cluster) {
      const cluster = await startCluster({ progress: (line) => console.error(line) });
      stops.push(() => cluster.stop());
      rows.push({
        name: 'cluster',
        address: cluster.server,
        note: `node ${cluster.nodeName}, kubeconfig ${cluster.kubeconfig}, logs in ${cluster.dir}`,
      });
      env.KUBECONFIG = cluster.kubeconfig;
    }
  } catch (e) {
    console.error(`lapis-testenv: ${e instanceof Error ? e.message : String(e)}`);
    await shutdown();
    process.exit(1);
  }

  fs.mkdirSync(path.dirname(envFile), { recursive: true });
  fs.writeFileSync(
    envFile,
    Object.entries(env)
      .map(([k, v]) => `export ${k}=${JSON.stringify(v)}\n`)
      .join(''),
  );
  envWritten = true;

  const width = Math.max(...rows.map((r) => r.address.length));
  console.log('lapis-testenv is up (Ctrl-C stops what it started):');
  for (const r of rows) console.log(`  ${r.name.padEnd(9)} ${r.address.padEnd(width)}  ${r.note}`);
  console.log(`environment: ${path.relative(process.cwd(), envFile)} (. ${path.relative(process.cwd(), envFile)})`);
  // Stay up until a signal, even if a child dies on its own (the env file must still go).
  setInterval(() => {}, 1 << 30);
}

async function prepare(argv: string[]): Promise<void> {
  const unknown = argv.filter((a) => a !== '--images');
  if (unknown.length > 0) throw new Error(`unknown option ${JSON.stringify(unknown[0])}`);
  await prepareTestRun({
    progress: (line) => console.error(line),
    images: argv.includes('--images'),
    root: path.resolve(__dirname, '../../../..'),
  });
}

function main(): void {
  if (process.argv[2] === 'cluster-down') {
    cleanupStaleCluster((line) => console.error(line)).then(
      (found) => console.error(found ? 'lapis-testenv: the cluster is gone' : 'lapis-testenv: no cluster state, nothing to do'),
      (e: unknown) => {
        console.error(`lapis-testenv cluster-down: ${e instanceof Error ? e.message : String(e)}`);
        process.exit(1);
      },
    );
    return;
  }
  if (process.argv[2] === 'prepare') {
    prepare(process.argv.slice(3)).catch((e: unknown) => {
      console.error(`lapis-testenv prepare: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(1);
    });
    return;
  }
  let parsed: UpOptions | 'help';
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`lapis-testenv: ${e instanceof Error ? e.message : String(e)}\n\n${HELP}`);
    process.exit(2);
  }
  if (parsed === 'help') {
    process.stdout.write(HELP);
    return;
  }
  void up(parsed);
}

main();
