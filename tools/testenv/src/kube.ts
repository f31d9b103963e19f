// A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler (control-plane.ts) and kwok (simulated nodes that report their pods running),
// plus helm and kubectl. Everything is built once per machine with the machine's Go from the Go
// module proxy (kube-tools.ts) and cached; startKube runs it on free loopback ports in a temp
// dir. When KUBECONFIG is set, startKube uses that cluster instead and starts nothing.
// cluster.ts runs a real node instead of kwok.
import * as crypto from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { connectionFromKubeconfig, errorText, kubeRequest, waitHealthy, type KubeConnection, type KubeRequestOptions } from './kube-api.js';
import { ensureKubeTools } from './kube-tools.js';
import { freePort, waitFor } from './ports.js';
import { forgetOnExit, removeOnExit, run, type RunOptions, type RunResult } from './proc.js';

export { KubeApiError, kubeRequest, type KubeConnection, type KubeRequestOptions } from './kube-api.js';
export {
  ensureKubeTools,
  kubeToolsDir,
  KUBE_VERSIONS,
  stagingReplacements,
  type EnsureKubeToolsOptions,
  type KubeTools,
} from './kube-tools.js';

// ---------------------------------------------------------------------------------------------
// The control plane

export interface KubeNodeOptions {
  /** Extra labels on every node. */
  labels?: Record<string, string>;
  /** Allocatable (and capacity) of each node; default 32 CPUs, 256Gi, 110 pods. */
  allocatable?: Record<string, string>;
  /** How long to wait for the nodes to be Ready; default 60 s. */
  timeoutMs?: number;
}

export interface Kube extends KubeConnection {
  /** A kubeconfig file for this cluster (for helm, kubectl, client libraries). */
  kubeconfig: string;
  /** https://127.0.0.1:PORT */
  server: string;
  /** A bearer token of a cluster admin (group system:masters); '' for a KUBECONFIG without one. */
  token: string;
  /** True when this is the cluster of $KUBECONFIG (startKube started nothing). */
  external: boolean;
  /** Temp dir with the logs, etcd data and certificates ('' is never returned; removed by stop()). */
  dir: string;
  /** Log file of each process started, by component name. */
  logs: Record<string, string>;
  /** Pids of the processes started (none for an external cluster). */
  pids: number[];
  /** One API call (see kubeRequest). */
  request<T = unknown>(method: string, apiPath: string, opts?: KubeRequestOptions): Promise<T>;
  /**
   * Creates n kwok nodes (annotation kwok.x-k8s.io/node: fake, tainted kwok.x-k8s.io/node=fake:NoSchedule)
   * and waits until they are Ready; resolves to their names. Pods need a toleration for the taint.
   */
  addNodes(n: number, labels?: Record<string, string>, opts?: Omit<KubeNodeOptions, 'labels'>): Promise<string[]>;
  /** Stops every process (kwok, scheduler, controller manager, API server, etcd) and removes the temp dir. */
  stop(): Promise<void>;
}

export interface StartKubeOptions {
  /** Use this kubeconfig (an existing cluster) instead of starting one; default $KUBECONFIG. Pass null to always start one. */
  kubeconfig?: string | null;
  /** How long to wait for each component; default 120 s. */
  timeoutMs?: number;
  /** Extra kube-apiserver flags (e.g. --feature-gates=...). */
  apiserverArgs?: string[];
  /** Called with progress lines (e.g. console.error) while tools are built. */
  progress?: (line: string) => void;
}

/** The taint and annotation kwok's docs give its fake nodes. */
export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';
export const KWOK_TOLERATION = Object.freeze({ key: KWOK_NODE_ANNOTATION, operator: 'Exists', effect: 'NoSchedule' });

function nodeManifest(name: string, labels: Record<string, string>, allocatable: Record<string, string>): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      annotations: { 'node.alpha.kubernetes.io/ttl': '0', [KWOK_NODE_ANNOTATION]: 'fake' },
      labels: {
        'beta.kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/role': 'agent',
        'node-role.kubernetes.io/agent': '',
        type: 'kwok',
        ...labels,
      },
    },
    spec: { taints: [{ key: KWOK_NODE_ANNOTATION, value: 'fake', effect: 'NoSchedule' }] },
    status: {
      allocatable,
      capacity: allocatable,
      nodeInfo: {
        architecture: 'amd64',
        bootID: '',
        containerRuntimeVersion: '',
        kernelVersion: '',
        kubeProxyVersion: 'fake',
        kubeletVersion: 'fake',
        machineID: '',
        operatingSystem: 'linux',
        osImage: '',
        systemUUID: '',
      },
      phase: 'Running',
    },
  };
}

interface NodeStatus {
  items: Array<{ metadata: { name: string }; status?: { conditions?: Array<{ type: string; status: string }> } }>;
}

function makeAddNodes(c: KubeConnection, external: boolean, kubeconfig: string, guard: () => void) {
  let counter = 0;
  const prefix = `kwok-${crypto.randomBytes(3).toString('hex')}`;
  return async (n: number, labels: Record<string, string> = {}, opts: Omit<KubeNodeOptions, 'labels'> = {}): Promise<string[]> => {
    const allocatable = opts.allocatable ?? { cpu: '32', memory: '256Gi', pods: '110' };
    const names: string[] = [];
    for (let i = 0; i < n; i++) names.push(`${prefix}-${counter++}`);
    for (const name of names) await kubeRequest(c, 'POST', '/api/v1/nodes', { body: nodeManifest(name, labels, allocatable) });
    const wanted = new Set(names);
    const timeoutMs = opts.timeoutMs ?? 60_000;
    let notReady: string[] = names;
    try {
      await waitFor(
        async () => {
          guard();
          const list = await kubeRequest<NodeStatus>(c, 'GET', `/api/v1/nodes?labelSelector=type%3Dkwok`);
          const ready = new Set(
            list.items
              .filter((node) => node.status?.conditions?.some((cond) => cond.type === 'Ready' && cond.status === 'True'))
              .map((node) => node.metadata.name),
          );
          notReady = [...wanted].filter((name) => !ready.has(name));
          return notReady.length === 0;
        },
        { timeoutMs, what: `kwok to make ${n} node(s) Ready`, intervalMs: 200 },
      );
    } catch (e) {
      const hint = external ? ` (is kwok running for the cluster of KUBECONFIG=${kubeconfig}?)` : '';
      throw new Error(
        `kwok nodes not Ready: ${notReady.slice(0, 5).join(', ')}${notReady.length > 5 ? ', ...' : ''}${hint}: ${errorText(e)}`,
      );
    }
    return names;
  };
}

async function useExistingCluster(kubeconfig: string, opts: StartKubeOptions): Promise<Kube> {
  const tools = await ensureKubeTools({ ...(opts.progress ? { progress: opts.progress } : {}) });
  const c = await connectionFromKubeconfig(kubeconfig, tools.kubectl);
  await waitHealthy(`the API server of KUBECONFIG=${kubeconfig}`, undefined, c, '/readyz', opts.timeoutMs ?? 30_000);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lapis-kube-'));
  removeOnExit(dir);
  let stopped: Promise<void> | undefined;
  return {
    ...c,
    kubeconfig,
    external: true,
    dir,
    logs: {},
    pids: [],
    request: (method, apiPath, o) => kubeRequest(c, method, apiPath, o),
    addNodes: makeAddNodes(c, true, kubeconfig, () => {}),
    stop() {
      // The cluster is not ours: nothing to stop, only our scratch dir (helm's caches).
      stopped ??= (async () => {
        await fsp.rm(dir, { recursive: true, force: true });
        forgetOnExit(dir);
      })();
      return stopped;
    },
  };
}

/**
 * Starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on free
 * loopback ports with everything in a temp dir, and waits until each is healthy. With
 * KUBECONFIG set (or opts.kubeconfig), uses that cluster instead and starts nothing.
 */
export async function startKube(opts: StartKubeOptions = {}): Promise<Kube> {
  const existing = opts.kubeconfig === undefined ? process.env.KUBECONFIG : opts.kubeconfig;
  if (existing) return useExistingCluster(existing, opts);

  const tools = await ensureKubeTools({ ...(opts.progress ? { progress: opts.progress } : {}) });
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lapis-kube-'));
  removeOnExit(dir);
  let cp: ControlPlane | undefined;
  try {
    cp = await startControlPlane({ tools, dir, timeoutMs, ...(opts.apiserverArgs ? { apiserverArgs: opts.apiserverArgs } : {}) });
    const plane = cp;
    // kwok: every node is simulated; its stages make nodes Ready and pods Running.
    const kwokPort = await freePort();
    const kwok = cp.launch('kwok', tools.kwok, [
      `--kubeconfig=${cp.kubeconfig}`,
      '--manage-all-nodes=true',
      // Pod IPs apart from the service range (10.0.0.0/24).
      '--cidr=10.244.0.0/16',
      `--server-address=127.0.0.1:${kwokPort}`,
      `--config=${tools.kwokStages}`,
    ]);
    await waitFor(
      async () => {
        kwok.failIfExited();
        const res = await fetch(`http://127.0.0.1:${kwokPort}/healthz`, { signal: AbortSignal.timeout(2000) });
        return res.ok;
      },
      { timeoutMs, what: `kwok to answer http://127.0.0.1:${kwokPort}/healthz`, intervalMs: 250 },
    ).catch((e: unknown) => {
      throw new Error(`kwok did not become ready (log: ${kwok.logFile}): ${errorText(e)}`);
    });

    const conn = cp.conn;
    let stopped: Promise<void> | undefined;
    return {
      ...conn,
      kubeconfig: cp.kubeconfig,
      external: false,
      dir,
      logs: cp.logs,
      pids: cp.pids(),
      request: (method, apiPath, o) => kubeRequest(conn, method, apiPath, o),
      addNodes: makeAddNodes(conn, false, cp.kubeconfig, () => plane.guard()),
      stop() {
        stopped ??= (async () => {
          await plane.stopAll();
          await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
          forgetOnExit(dir);
        })();
        return stopped;
      },
    };
  } catch (e) {
    await cp?.stopAll();
    // Keep the logs the error names (etcd data and all) for a look afterwards.
    forgetOnExit(dir);
    throw new Error(`${errorText(e)}\n(the control plane's files and logs are kept in ${dir})`);
  }
}

// ---------------------------------------------------------------------------------------------
// helm and kubectl against a Kube

/** Runs the built helm against kube (--kubeconfig; helm's caches and config in kube.dir). */
export async function helm(args: readonly string[], kube: Pick<Kube, 'kubeconfig' | 'dir'>, opts: RunOptions = {}): Promise<RunResult> {
  const tools = await ensureKubeTools();
  const home = path.join(kube.dir, 'helm');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...opts.env,
    KUBECONFIG: kube.kubeconfig,
    HELM_CACHE_HOME: path.join(home, 'cache'),
    HELM_CONFIG_HOME: path.join(home, 'config'),
    HELM_DATA_HOME: path.join(home, 'data'),
  };
  return run(tools.helm, ['--kubeconfig', kube.kubeconfig, ...args], { ...opts, env });
}

/** Runs the built kubectl against kube (--kubeconfig). */
export async function kubectl(args: readonly string[], kube: Pick<Kube, 'kubeconfig'>, opts: RunOptions = {}): Promise<RunResult> {
  const tools = await ensureKubeTools();
  return run(tools.kubectl, ['--kubeconfig', kube.kubeconfig, ...args], { ...opts, env: { ...process.env, ...opts.env } });
}
