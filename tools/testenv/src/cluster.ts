// A real one-node Kubernetes cluster next to the kwok one (kube.ts): the same control plane,
// plus a node whose pods really run (containerd, CNI bridge, kubelet, kube-proxy), CoreDNS and
// a local-path provisioner for PersistentVolumeClaims. One per machine at a time: it changes the
// host (iptables chains, a bridge, cgroups, sysctls), so it records the host first in a state
// file and puts it back on stop(); a run that died is cleaned up by the next start or by
// `lapis-testenv cluster-down`.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureCommands } from './apt.js';
import { corednsManifest, localPathManifest } from './cluster-addons.js';
import { restoreHost, snapshotHost, type HostSnapshot } from './cluster-host.js';
import { waitRolloutReady } from './cluster-wait.js';
import {
  allowInsecureRegistry,
  createBridge,
  importImage,
  nodeImages,
  NODE_NETWORK,
  removeAllContainers,
  startContainerd,
  startKubeletAndProxy,
  writeCniConfig,
  type NodeDirs,
} from './cluster-node.js';
import { makeClusterPki } from './cluster-pki.js';
import { CLUSTER_IMAGES, ensureClusterTools, ensureNodePackages, type ClusterTools } from './cluster-tools.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { cacheRoot } from './gobuild.js';
import { errorText, kubeRequest } from './kube-api.js';
import { ensureKubeTools } from './kube-tools.js';
import { kubectl, type Kube } from './kube.js';
import { waitFor } from './ports.js';
import { forgetOnExit, run } from './proc.js';

/** Where the running cluster's state is kept (gone after a reboot, as is what it describes). */
export const CLUSTER_STATE_FILE = '/run/lapis-testenv/cluster.json';

interface ClusterState {
  pid: number;
  dirs: NodeDirs;
  before: HostSnapshot;
  ctr: string;
}

export interface Cluster extends Omit<Kube, 'addNodes'> {
  nodeName: string;
  /** The host path under which the local-path provisioner keeps volumes. */
  volumeDir: string;
  /** Imports a docker-archive tarball into the node. */
  importImage(file: string): Promise<void>;
  /** Lets the node pull from a plain-HTTP registry at host:port. */
  allowInsecureRegistry(host: string): Promise<void>;
  /** Imports images from the Docker engine (docker save | ctr import). */
  importFromDocker(refs: string[], dockerHost?: string): Promise<void>;
  /** Stops everything and puts the host back; what could not be undone is then in `leftovers`. */
  stop(): Promise<void>;
  /** What stop() could not undo (filled once stop() has run). */
  leftovers: string[];
  /**
   * The host as it was before this cluster touched it, taken after a dead run's leftovers were
   * cleaned up: what stop() puts back, and what a test compares the host with afterwards.
   */
  hostBefore: HostSnapshot;
}

export interface StartClusterOptions {
  timeoutMs?: number;
  progress?: (line: string) => void;
  /** How long to wait for another process's cluster to go; default 10 min. */
  waitForOtherMs?: number;
  /** Import the NATS image too (the chart's bundled NATS). */
  natsImage?: boolean;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readState(): Promise<ClusterState | undefined> {
  try {
    return JSON.parse(await fsp.readFile(CLUSTER_STATE_FILE, 'utf8')) as ClusterState;
  } catch {
    return undefined;
  }
}

/** Undoes what a cluster described by `state` changed (its processes are gone or are killed here). */
async function teardown(state: ClusterState): Promise<string[]> {
  if (fs.existsSync(path.join(state.dirs.containerdState, 'containerd.sock')))
    await removeAllContainers(state.ctr, state.dirs).catch(() => undefined);
  return restoreHost({
    before: state.before,
    dirs: [state.dirs.dir, state.dirs.containerdState],
    keepDirs: [state.dirs.containerdRoot],
    bridge: NODE_NETWORK.bridge,
    network: NODE_NETWORK.name,
  });
}

/**
 * Tears down a cluster whose process died without stopping it (kills what it left running,
 * found by its directories). Resolves to false when no cluster state is there.
 */
export async function cleanupStaleCluster(say: (line: string) => void = () => {}): Promise<boolean> {
  const state = await readState();
  if (!state) return false;
  if (pidAlive(state.pid) && state.pid !== process.pid) throw new Error(`a cluster of pid ${state.pid} is running (${CLUSTER_STATE_FILE})`);
  say(`@lapis/testenv: cleaning up the cluster pid ${state.pid} left (${state.dirs.dir})`);
  await killProcessesUnder(state.dirs.dir);
  const problems = await teardown(state);
  await killProcessesUnder(state.dirs.dir);
  await fsp.rm(CLUSTER_STATE_FILE, { force: true });
  await fsp.rmdir(path.dirname(CLUSTER_STATE_FILE)).catch(() => undefined);
  if (problems.length > 0) say(`@lapis/testenv: could not undo: ${problems.join('; ')}`);
  return true;
}

/** Kills (SIGKILL) the processes whose command line names dir: the components of a dead run. */
async function killProcessesUnder(dir: string): Promise<void> {
  for (const pid of await fsp.readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmd = await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(dir)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  await sleep(500);
}

/** Waits until no other live process holds the cluster state; cleans up a dead one's. */
async function takeTheMachine(waitMs: number, say: (line: string) => void): Promise<void> {
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    const state = await readState();
    if (state && pidAlive(state.pid)) {
      if (Date.now() > deadline)
        throw new Error(`another real cluster (pid ${state.pid}, ${CLUSTER_STATE_FILE}) still runs on this machine after ${waitMs} ms`);
      if (!told) say(`@lapis/testenv: waiting for the real cluster of pid ${state.pid} to stop (one per machine)`);
      told = true;
      await sleep(2000);
      continue;
    }
    if (state) await cleanupStaleCluster(say);
    return;
  }
}

/**
 * Starts the real one-node cluster (tools built on first use: see ensureClusterTools) and
 * waits until the node is Ready, CoreDNS answers and the provisioner runs. Always stop() it.
 */
export async function startCluster(opts: StartClusterOptions = {}): Promise<Cluster> {
  const say = opts.progress ?? (() => {});
  const timeoutMs = opts.timeoutMs ?? 180_000;
  const started = Date.now();
  if (process.getuid?.() !== 0) throw new Error('a real Kubernetes node needs root (containerd, iptables, a bridge)');
  const pkgs = await ensureNodePackages();
  const { openssl } = await ensureCommands({ openssl: 'openssl' });
  const tools = await ensureKubeTools({ progress: say });
  const node: ClusterTools = await ensureClusterTools({ progress: say });
  await takeTheMachine(opts.waitForOtherMs ?? 10 * 60_000, say);

  const before = await snapshotHost();
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lapis-cluster-'));
  const dirs: NodeDirs = {
    dir,
    containerdRoot: path.join(cacheRoot(), 'cluster-containerd'),
    containerdState: path.join(dir, 'containerd-state'),
  };
  const state: ClusterState = { pid: process.pid, dirs, before, ctr: pkgs.ctr };
  await fsp.mkdir(path.dirname(CLUSTER_STATE_FILE), { recursive: true });
  await fsp.writeFile(CLUSTER_STATE_FILE, JSON.stringify(state));

  let cp: ControlPlane | undefined;
  const leftovers: string[] = [];
  const stopAll = async (): Promise<string[]> => {
    // The kubelet first (stopped by stopAll in reverse order is too late: it would restart
    // the containers we kill), then every container, then the rest, then the host.
    await cp?.stopProcess('kube-proxy');
    await cp?.stopProcess('kubelet');
    if (cp) await removeAllContainers(pkgs.ctr, dirs).catch(() => undefined);
    await cp?.stopAll();
    const problems = await teardown(state);
    await fsp.rm(CLUSTER_STATE_FILE, { force: true });
    await fsp.rmdir(path.dirname(CLUSTER_STATE_FILE)).catch(() => undefined); // unless another user's files are there
    return problems;
  };
  try {
    await createBridge();
    const pki = await makeClusterPki(
      openssl,
      path.join(dir, 'pki'),
      [NODE_NETWORK.gateway, '10.0.0.1', '127.0.0.1'],
      ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', 'localhost'],
    );
    const nodeToken = crypto.randomBytes(24).toString('hex');
    const proxyToken = crypto.randomBytes(24).toString('hex');
    say('@lapis/testenv: starting the control plane');
    cp = await startControlPlane({
      tools,
      dir,
      timeoutMs,
      bindAddress: NODE_NETWORK.gateway,
      tls: pki,
      extraTokens: [
        `${nodeToken},system:node:${NODE_NETWORK.nodeName},node-${NODE_NETWORK.nodeName},"system:nodes"`,
        `${proxyToken},system:kube-proxy,kube-proxy`,
      ],
      authorizationMode: 'Node,RBAC',
      endpointReconciler: true,
      apiserverArgs: [
        '--kubelet-preferred-address-types=Hostname,InternalIP',
        `--kubelet-client-certificate=${pki.kubeletClientCert}`,
        `--kubelet-client-key=${pki.kubeletClientKey}`,
      ],
    });
    const conn = cp.conn;
    say('@lapis/testenv: starting containerd, the kubelet and kube-proxy');
    await startContainerd(cp, pkgs, dirs, timeoutMs);
    const have = await nodeImages(pkgs.ctr, dirs);
    const wanted: Array<keyof typeof CLUSTER_IMAGES> = [
      'pause',
      'busybox',
      'coredns',
      'localPath',
      ...(opts.natsImage ? (['nats'] as const) : []),
    ];
    for (const key of wanted) if (!have.has(CLUSTER_IMAGES[key])) await importImage(pkgs.ctr, dirs, node.images[key]);
    await writeCniConfig(dirs);
    await startKubeletAndProxy(cp, dirs, {
      kubelet: node.kubelet,
      kubeProxy: node.kubeProxy,
      caFile: pki.caFile,
      server: conn.server,
      nodeToken,
      proxyToken,
      timeoutMs,
    });
    const plane = cp;
    await waitFor(
      async () => {
        plane.guard();
        const n = await kubeRequest<{ status?: { conditions?: Array<{ type: string; status: string; message?: string }> } }>(
          conn,
          'GET',
          `/api/v1/nodes/${NODE_NETWORK.nodeName}`,
        ).catch(() => undefined);
        return n?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
      },
      { timeoutMs, what: `node ${NODE_NETWORK.nodeName} to be Ready (log: ${cp.logs.kubelet})`, intervalMs: 500 },
    );
    say('@lapis/testenv: node Ready; starting CoreDNS and the local-path provisioner');
    const volumeDir = path.join(dir, 'volumes');
    await fsp.mkdir(volumeDir, { recursive: true });
    const kube = { kubeconfig: cp.kubeconfig };
    await kubectl(['apply', '-f', '-'], kube, {
      input: `${corednsManifest()}---\n${await localPathManifest(node.localPathManifest, volumeDir)}`,
      timeoutMs: 60_000,
    });
    await waitRolloutReady(kube, 'kube-system', 'deployment/coredns', timeoutMs, () => plane.guard());
    await waitRolloutReady(kube, 'local-path-storage', 'deployment/local-path-provisioner', timeoutMs, () => plane.guard());
    say(`@lapis/testenv: real cluster up in ${Math.round((Date.now() - started) / 1000)} s (kubeconfig ${cp.kubeconfig})`);

    let stopped: Promise<void> | undefined;
    return {
      ...conn,
      kubeconfig: cp.kubeconfig,
      external: false,
      dir,
      logs: cp.logs,
      pids: cp.pids(),
      nodeName: NODE_NETWORK.nodeName,
      volumeDir,
      leftovers,
      hostBefore: before,
      request: (method, apiPath, o) => kubeRequest(conn, method, apiPath, o),
      importImage: (file) => importImage(pkgs.ctr, dirs, file),
      allowInsecureRegistry: (host) => allowInsecureRegistry(dirs, host),
      importFromDocker: async (refs, dockerHost) => {
        const tmp = path.join(dir, `docker-save-${crypto.randomBytes(4).toString('hex')}.tar`);
        const docker = await ensureCommands({ docker: 'docker.io' });
        await run(docker.docker, ['save', '-o', tmp, ...refs], {
          env: { ...process.env, ...(dockerHost ? { DOCKER_HOST: dockerHost } : {}) },
          timeoutMs: 10 * 60_000,
        });
        await importImage(pkgs.ctr, dirs, tmp);
        await fsp.rm(tmp, { force: true });
      },
      stop() {
        stopped ??= (async () => {
          leftovers.push(...(await stopAll()));
          forgetOnExit(dir);
        })();
        return stopped;
      },
    };
  } catch (e) {
    const kept = path.join(os.tmpdir(), `lapis-cluster-failed-logs-${process.pid}`);
    await fsp.mkdir(kept, { recursive: true }).catch(() => undefined);
    for (const [name, log] of Object.entries(cp?.logs ?? {}))
      await fsp.copyFile(log, path.join(kept, `${name}.log`)).catch(() => undefined);
    const problems = await stopAll().catch((err: unknown) => [errorText(err)]);
    const undo = problems.length > 0 ? `\n(could not undo on the host: ${problems.join('; ')})` : '';
    throw new Error(`the real cluster did not start: ${errorText(e)}\n(its logs are kept in ${kept})${undo}`);
  }
}
