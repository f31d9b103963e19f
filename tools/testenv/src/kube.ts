// A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok (simulated nodes that report their pods running), plus helm and
// kubectl. Everything is built once per machine with the machine's Go from the Go module proxy
// (see ensureKubeTools) and cached; startKube runs it on free loopback ports in a temp dir.
// When KUBECONFIG is set, startKube uses that cluster instead and starts nothing.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { cacheRoot, findGo, goInstall, goLogged, isExecutable, withBuildLock, type GoEnv } from './gobuild.js';
import { freePort, GiveUp, waitFor } from './ports.js';
import { forgetOnExit, removeOnExit, run, spawnLogged, tailFile, type RunOptions, type RunResult, type Supervised } from './proc.js';

/** Versions built by ensureKubeTools. */
export const KUBE_VERSIONS = Object.freeze({
  kubernetes: 'v1.34.4',
  /** The k8s.io staging modules (k8s.io/api, client-go, ...) that match kubernetes. */
  staging: 'v0.34.4',
  etcd: 'v3.6.16',
  kwok: 'v0.8.0',
  helm: 'v3.22.0',
});

export interface KubeTools {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubectl: string;
  kwok: string;
  helm: string;
  /** kwok's Stage documents (node and pod lifecycles, node heartbeat), for `kwok -c`. */
  kwokStages: string;
  /** Where the build wrote its output (all go commands, appended). */
  buildLog: string;
}

// ---------------------------------------------------------------------------------------------
// Building the tools

/** The directory that holds this version set's binaries (bin/), build log and work dirs. */
export function kubeToolsDir(): string {
  const v = KUBE_VERSIONS;
  return path.join(cacheRoot(), 'kube', `k8s-${v.kubernetes}_etcd-${v.etcd}_kwok-${v.kwok}_helm-${v.helm}`);
}

const TOOLS_HEADER = '//go:build tools\n\n// Only here so that `go mod tidy` keeps these packages\' modules; built with `go build`.\npackage tools\n\n';

async function buildEtcd(g: GoEnv, binDir: string, work: string, log: string): Promise<void> {
  const dir = path.join(work, 'etcd');
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(dir, { recursive: true });
  await fsp.writeFile(path.join(dir, 'go.mod'), 'module lapis.dev/testenv/etcd\n\ngo 1.24\n');
  await fsp.writeFile(path.join(dir, 'tools.go'), `${TOOLS_HEADER}import _ "go.etcd.io/etcd/server/v3"\n`);
  await goLogged(g, ['get', `go.etcd.io/etcd/server/v3@${KUBE_VERSIONS.etcd}`], dir, log);
  await goLogged(g, ['build', '-ldflags=-s -w', '-o', path.join(dir, 'etcd'), 'go.etcd.io/etcd/server/v3'], dir, log);
  await fsp.rename(path.join(dir, 'etcd'), path.join(binDir, 'etcd'));
}

const KUBE_COMMANDS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl'] as const;

/**
 * kubernetes' go.mod replaces its staging modules (k8s.io/api, client-go, ...) with
 * ./staging/src/...; a module that requires k8s.io/kubernetes must replace them with the
 * published versions instead, or `go` cannot resolve them.
 */
export function stagingReplacements(kubernetesGoMod: string, stagingVersion: string): { goDirective: string; modules: string[] } {
  const modules = new Set<string>();
  for (const match of kubernetesGoMod.matchAll(/^\s*(?:replace\s+)?(k8s\.io\/[\w.\-/]+)\s+=>\s+\.\/staging\/src\/\S+\s*$/gm)) {
    modules.add(match[1] as string);
  }
  const goDirective = /^go\s+(\S+)\s*$/m.exec(kubernetesGoMod)?.[1] ?? '1.24.0';
  if (modules.size === 0) throw new Error(`found no staging replacements in kubernetes' go.mod (version ${stagingVersion})`);
  return { goDirective, modules: [...modules].sort() };
}

async function buildKubernetes(g: GoEnv, binDir: string, work: string, log: string, names: readonly string[]): Promise<void> {
  const v = KUBE_VERSIONS;
  const dir = path.join(work, 'kubernetes');
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(dir, { recursive: true });
  // kubernetes' own go.mod, from the module cache (downloaded through the proxy).
  const { stdout } = await run(g.go, ['mod', 'download', '-json', `k8s.io/kubernetes@${v.kubernetes}`], { env: g.env, cwd: dir }).catch((e: unknown) => {
    throw new Error(`could not download k8s.io/kubernetes@${v.kubernetes} through the Go module proxy: ${e instanceof Error ? e.message : String(e)}`);
  });
  const info = JSON.parse(stdout) as { GoMod?: string; Error?: string };
  if (info.Error || !info.GoMod) throw new Error(`go mod download k8s.io/kubernetes@${v.kubernetes}: ${info.Error ?? 'no go.mod'}`);
  const { goDirective, modules } = stagingReplacements(await fsp.readFile(info.GoMod, 'utf8'), v.staging);
  await fsp.appendFile(log, `\n### ${modules.length} staging modules of k8s.io/kubernetes@${v.kubernetes} pinned at ${v.staging}: ${modules.join(' ')}\n`);
  const goMod = [
    'module lapis.dev/testenv/kubernetes',
    '',
    `go ${goDirective}`,
    '',
    `require k8s.io/kubernetes ${v.kubernetes}`,
    '',
    'replace (',
    ...modules.map((m) => `\t${m} => ${m} ${v.staging}`),
    ')',
    '',
  ].join('\n');
  await fsp.writeFile(path.join(dir, 'go.mod'), goMod);
  await fsp.writeFile(path.join(dir, 'tools.go'), TOOLS_HEADER + KUBE_COMMANDS.map((c) => `import _ "k8s.io/kubernetes/cmd/${c}"\n`).join(''));
  await goLogged(g, ['mod', 'tidy'], dir, log);
  // What `make` in kubernetes stamps in, so that /version and version skew checks see 1.34.
  const [major, minor] = v.kubernetes.replace(/^v/, '').split('.');
  const pkg = 'k8s.io/component-base/version';
  const ldflags = [
    '-s',
    '-w',
    `-X ${pkg}.gitVersion=${v.kubernetes}`,
    `-X ${pkg}.gitMajor=${major}`,
    `-X ${pkg}.gitMinor=${minor}`,
    `-X ${pkg}.gitTreeState=clean`,
    `-X ${pkg}.buildDate=1970-01-01T00:00:00Z`,
    `-X k8s.io/client-go/pkg/version.gitVersion=${v.kubernetes}`,
    `-X k8s.io/client-go/pkg/version.gitMajor=${major}`,
    `-X k8s.io/client-go/pkg/version.gitMinor=${minor}`,
  ].join(' ');
  const out = path.join(dir, 'out');
  await fsp.mkdir(out, { recursive: true });
  await goLogged(g, ['build', `-ldflags=${ldflags}`, '-o', out + path.sep, ...names.map((n) => `k8s.io/kubernetes/cmd/${n}`)], dir, log);
  for (const name of names) await fsp.rename(path.join(out, name), path.join(binDir, name));
}

/** Concatenates kwok's Stage documents (fast node and pod lifecycles, node heartbeat). */
async function writeKwokStages(g: GoEnv, file: string): Promise<void> {
  const root = path.join(g.modCache, `sigs.k8s.io/kwok@${KUBE_VERSIONS.kwok}`, 'kustomize', 'stage');
  const docs: string[] = [];
  for (const sub of ['node/fast', 'node/heartbeat', 'pod/fast']) {
    const dir = path.join(root, sub);
    let names: string[];
    try {
      names = (await fsp.readdir(dir)).filter((n) => n.endsWith('.yaml') && n !== 'kustomization.yaml').sort();
    } catch (e) {
      throw new Error(`kwok's stages are not in the module cache (${dir}): ${(e as Error).message}`);
    }
    for (const name of names) {
      for (const doc of (await fsp.readFile(path.join(dir, name), 'utf8')).split(/^---\s*$/m)) {
        if (/^kind:\s*Stage\s*$/m.test(doc)) docs.push(`# ${sub}/${name}\n${doc.trim()}\n`);
      }
    }
  }
  if (docs.length === 0) throw new Error(`found no kwok Stage documents under ${root}`);
  await fsp.writeFile(`${file}.tmp`, docs.join('---\n'));
  await fsp.rename(`${file}.tmp`, file);
}

function toolPaths(dir: string): KubeTools {
  const bin = path.join(dir, 'bin');
  return {
    etcd: path.join(bin, 'etcd'),
    kubeApiserver: path.join(bin, 'kube-apiserver'),
    kubeControllerManager: path.join(bin, 'kube-controller-manager'),
    kubeScheduler: path.join(bin, 'kube-scheduler'),
    kubectl: path.join(bin, 'kubectl'),
    kwok: path.join(bin, 'kwok'),
    helm: path.join(bin, 'helm'),
    kwokStages: path.join(dir, 'kwok-stages.yaml'),
    buildLog: path.join(dir, 'build.log'),
  };
}

function missingTools(t: KubeTools): string[] {
  const bins = [t.etcd, t.kubeApiserver, t.kubeControllerManager, t.kubeScheduler, t.kubectl, t.kwok, t.helm].filter((f) => !isExecutable(f));
  return fs.existsSync(t.kwokStages) ? bins : [...bins, t.kwokStages];
}

export interface EnsureKubeToolsOptions {
  /** How long to wait for another process's build; default 60 min. */
  lockTimeoutMs?: number;
  /** Called with a line now and then (what is being built), e.g. console.error. */
  progress?: (line: string) => void;
}

let building: Promise<KubeTools> | undefined;

/**
 * The Kubernetes test binaries, built with the machine's Go from the Go module proxy on first
 * use and cached in kubeToolsDir() (later runs on this machine only check they are there).
 * One process builds at a time (a lock file); the build writes everything to a log file,
 * which any error names. The first build takes about 10 minutes on 2 cores.
 */
export function ensureKubeTools(opts: EnsureKubeToolsOptions = {}): Promise<KubeTools> {
  const dir = kubeToolsDir();
  const tools = toolPaths(dir);
  if (missingTools(tools).length === 0) return Promise.resolve(tools);
  building ??= (async () => {
    await fsp.mkdir(path.join(dir, 'bin'), { recursive: true });
    return withBuildLock(dir, opts.lockTimeoutMs ?? 60 * 60_000, 'the Kubernetes tools', async () => {
      if (missingTools(tools).length === 0) return tools; // another process built them meanwhile
      const progress = opts.progress ?? (() => {});
      const log = tools.buildLog;
      const work = path.join(dir, 'work');
      await fsp.mkdir(work, { recursive: true });
      const g = await findGo('the Kubernetes test tools');
      const bin = path.join(dir, 'bin');
      const started = Date.now();
      const step = async (what: string, needed: boolean, build: () => Promise<void>): Promise<void> => {
        if (!needed) return;
        progress(`@lapis/testenv: building ${what} with Go (log: ${log})`);
        await build();
      };
      await step(`helm ${KUBE_VERSIONS.helm}`, !isExecutable(tools.helm), () => goInstall(g, `helm.sh/helm/v3/cmd/helm@${KUBE_VERSIONS.helm}`, bin, 'helm', work, log));
      await step(`kwok ${KUBE_VERSIONS.kwok}`, !isExecutable(tools.kwok), () => goInstall(g, `sigs.k8s.io/kwok/cmd/kwok@${KUBE_VERSIONS.kwok}`, bin, 'kwok', work, log));
      await step('kwok stages', !fs.existsSync(tools.kwokStages), async () => {
        // Present after the kwok install; a cleaned module cache gets them back this way.
        await goLogged(g, ['mod', 'download', `sigs.k8s.io/kwok@${KUBE_VERSIONS.kwok}`], work, log);
        await writeKwokStages(g, tools.kwokStages);
      });
      await step(`etcd ${KUBE_VERSIONS.etcd}`, !isExecutable(tools.etcd), () => buildEtcd(g, bin, work, log));
      const kube = KUBE_COMMANDS.filter((c) => !isExecutable(path.join(bin, c)));
      await step(`${kube.join(', ')} ${KUBE_VERSIONS.kubernetes}`, kube.length > 0, () => buildKubernetes(g, bin, work, log, kube));
      const missing = missingTools(tools);
      if (missing.length > 0) throw new Error(`the Kubernetes tools build finished but ${missing.join(', ')} is missing (log: ${log})`);
      await fsp.rm(work, { recursive: true, force: true });
      progress(`@lapis/testenv: Kubernetes tools built in ${Math.round((Date.now() - started) / 1000)} s into ${bin}`);
      return tools;
    });
  })().finally(() => {
    building = undefined;
  });
  return building;
}

// ---------------------------------------------------------------------------------------------
// Talking to the API server (node:https, no client library)

/** How to reach an API server: its URL and credentials (a token, or a client certificate). */
export interface KubeConnection {
  server: string;
  token?: string;
  /** PEM; without it (and with insecure) the server's certificate is not checked. */
  ca?: string;
  clientCert?: string;
  clientKey?: string;
  insecure?: boolean;
}

/** An API call that got a status outside 2xx. */
export class KubeApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

const agents = new WeakMap<KubeConnection, https.Agent>();
function agentFor(c: KubeConnection): https.Agent {
  let agent = agents.get(c);
  if (!agent) {
    agent = new https.Agent({
      keepAlive: false,
      rejectUnauthorized: !c.insecure,
      ...(c.ca ? { ca: c.ca } : {}),
      ...(c.clientCert ? { cert: c.clientCert } : {}),
      ...(c.clientKey ? { key: c.clientKey } : {}),
    });
    agents.set(c, agent);
  }
  return agent;
}

export interface KubeRequestOptions {
  /** Sent as JSON (objects) or as is (strings). */
  body?: unknown;
  /** Default application/json; e.g. application/merge-patch+json for PATCH. */
  contentType?: string;
  timeoutMs?: number;
}

/**
 * One call to the API server; resolves to the parsed JSON response (or the text, when it is
 * not JSON). A non-2xx status rejects with a KubeApiError carrying the Status message.
 */
export function kubeRequest<T = unknown>(c: KubeConnection, method: string, apiPath: string, opts: KubeRequestOptions = {}): Promise<T> {
  const url = new URL(apiPath, c.server);
  const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (c.token) headers.authorization = `Bearer ${c.token}`;
  if (body !== undefined) {
    headers['content-type'] = opts.contentType ?? 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  return new Promise<T>((resolve, reject) => {
    const req = https.request(url, { method, headers, agent: agentFor(c), timeout: opts.timeoutMs ?? 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON (e.g. /readyz answers "ok")
        }
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return resolve(parsed as T);
        const message = (parsed as { message?: string } | undefined)?.message ?? text.trim();
        reject(new KubeApiError(`${method} ${url.pathname}${url.search}: HTTP ${status}${message ? `: ${message}` : ''}`, status, parsed));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

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

function kubeconfigYaml(server: string, token: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: lapis-test',
    '  cluster:',
    `    server: ${server}`,
    '    insecure-skip-tls-verify: true',
    'users:',
    '- name: lapis-admin',
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: lapis-test',
    '  context:',
    '    cluster: lapis-test',
    '    user: lapis-admin',
    '    namespace: default',
    'current-context: lapis-test',
    '',
  ].join('\n');
}

/** Reads the current context of a kubeconfig (any of the kubeconfig path list) with kubectl. */
async function connectionFromKubeconfig(kubeconfig: string, kubectl: string): Promise<KubeConnection & { token: string }> {
  const { stdout } = await run(kubectl, ['config', 'view', '--raw', '--minify', '--flatten', '-o', 'json'], {
    env: { ...process.env, KUBECONFIG: kubeconfig },
  });
  const cfg = JSON.parse(stdout) as {
    clusters?: Array<{ cluster: Record<string, unknown> }>;
    users?: Array<{ user: Record<string, unknown> }>;
  };
  const cluster = cfg.clusters?.[0]?.cluster ?? {};
  const user = cfg.users?.[0]?.user ?? {};
  const b64 = (v: unknown): string | undefined => (typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : undefined);
  const server = cluster.server;
  if (typeof server !== 'string') throw new Error(`KUBECONFIG=${kubeconfig}: the current context has no cluster server`);
  if (user.exec || user['auth-provider']) {
    throw new Error(`KUBECONFIG=${kubeconfig}: the current user authenticates with an exec plugin or auth provider, which testenv does not run; use a token or a client certificate`);
  }
  let token = typeof user.token === 'string' ? user.token : '';
  if (!token && typeof user.tokenFile === 'string') token = (await fsp.readFile(user.tokenFile, 'utf8')).trim();
  const ca = b64(cluster['certificate-authority-data']);
  const clientCert = b64(user['client-certificate-data']);
  const clientKey = b64(user['client-key-data']);
  return {
    server,
    token,
    insecure: cluster['insecure-skip-tls-verify'] === true,
    ...(ca ? { ca } : {}),
    ...(clientCert ? { clientCert } : {}),
    ...(clientKey ? { clientKey } : {}),
  };
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Polls an HTTPS health endpoint until it answers 200 "ok"; the process dying ends it at once. */
async function waitHealthy(component: string, proc: Supervised | undefined, c: KubeConnection, apiPath: string, timeoutMs: number): Promise<void> {
  try {
    await waitFor(
      async () => {
        proc?.failIfExited();
        await kubeRequest(c, 'GET', apiPath, { timeoutMs: 5000 });
        return true;
      },
      { timeoutMs, what: `${component} to answer ${c.server}${apiPath}`, intervalMs: 250 },
    );
  } catch (e) {
    const log = proc ? ` (log: ${proc.logFile})` : '';
    const tail = proc && !(e instanceof GiveUp) ? tailFile(proc.logFile) : '';
    throw new Error(`${component} did not become ready${log}: ${errorText(e)}` + (tail ? `\n--- last lines of the log ---\n${tail}` : ''));
  }
}

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
            list.items.filter((node) => node.status?.conditions?.some((cond) => cond.type === 'Ready' && cond.status === 'True')).map((node) => node.metadata.name),
          );
          notReady = [...wanted].filter((name) => !ready.has(name));
          return notReady.length === 0;
        },
        { timeoutMs, what: `kwok to make ${n} node(s) Ready`, intervalMs: 200 },
      );
    } catch (e) {
      const hint = external ? ` (is kwok running for the cluster of KUBECONFIG=${kubeconfig}?)` : '';
      throw new Error(`kwok nodes not Ready: ${notReady.slice(0, 5).join(', ')}${notReady.length > 5 ? ', ...' : ''}${hint}: ${errorText(e)}`);
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
  const procs: Array<{ name: string; proc: Supervised }> = [];
  const logs: Record<string, string> = {};
  const launch = (name: string, bin: string, args: string[]): Supervised => {
    const logFile = path.join(dir, `${name}.log`);
    logs[name] = logFile;
    const proc = spawnLogged(bin, args, { logFile, graceMs: 5000 });
    procs.push({ name, proc });
    return proc;
  };
  const stopAll = async (): Promise<void> => {
    // Clients first, etcd last.
    for (const { proc } of [...procs].reverse()) await proc.stop();
  };

  try {
    // etcd
    const [etcdPort, peerPort, apiPort, kcmPort, schedPort, kwokPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = launch('etcd', tools.etcd, [
      '--name=lapis-test',
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=lapis-test=http://127.0.0.1:${peerPort}`,
      '--initial-cluster-state=new',
      // Test data: no fsync, and no compaction of a few minutes' history.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await waitFor(
      async () => {
        etcd.failIfExited();
        const res = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(2000) });
        const body = (await res.json()) as { health?: string };
        if (body.health !== 'true') throw new Error(`etcd /health: ${JSON.stringify(body)}`);
        return true;
      },
      { timeoutMs, what: `etcd to answer ${etcdUrl}/health (log: ${etcd.logFile})`, intervalMs: 100 },
    ).catch((e: unknown) => {
      throw new Error(`etcd did not become ready (log: ${etcd.logFile}): ${errorText(e)}`);
    });

    // kube-apiserver: a static admin token, a service-account key pair, its own serving cert.
    const token = crypto.randomBytes(24).toString('hex');
    const tokenFile = path.join(dir, 'tokens.csv');
    await fsp.writeFile(tokenFile, `${token},lapis-admin,lapis-admin,"system:masters"\n`, { mode: 0o600 });
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const saKey = path.join(dir, 'sa.key');
    const saPub = path.join(dir, 'sa.pub');
    await fsp.writeFile(saKey, privateKey, { mode: 0o600 });
    await fsp.writeFile(saPub, publicKey);
    const certDir = path.join(dir, 'certs');
    await fsp.mkdir(certDir);
    const server = `https://127.0.0.1:${apiPort}`;
    const apiserver = launch('kube-apiserver', tools.kubeApiserver, [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${certDir}`,
      `--token-auth-file=${tokenFile}`,
      '--authorization-mode=RBAC',
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      '--profiling=false',
      '--endpoint-reconciler-type=none',
      ...(opts.apiserverArgs ?? []),
    ]);
    const conn: KubeConnection = { server, token, insecure: true };
    await waitHealthy('kube-apiserver', apiserver, conn, '/readyz', timeoutMs);

    const kubeconfig = path.join(dir, 'kubeconfig');
    await fsp.writeFile(kubeconfig, kubeconfigYaml(server, token), { mode: 0o600 });

    // kube-controller-manager: Deployments -> ReplicaSets -> Pods, namespaces, service accounts.
    const kcm = launch('kube-controller-manager', tools.kubeControllerManager, [
      `--kubeconfig=${kubeconfig}`,
      '--leader-elect=false',
      "--controllers=*,-serviceaccount-token",
      `--service-account-private-key-file=${saKey}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${kcmPort}`,
      `--cert-dir=${path.join(dir, 'kcm-certs')}`,
      '--kube-api-qps=200',
      '--kube-api-burst=400',
      '--concurrent-deployment-syncs=20',
      '--concurrent-replicaset-syncs=20',
      '--profiling=false',
    ]);
    // kube-scheduler: leader election off, a generous client rate limit.
    const schedConfig = path.join(dir, 'scheduler.yaml');
    await fsp.writeFile(
      schedConfig,
      [
        'apiVersion: kubescheduler.config.k8s.io/v1',
        'kind: KubeSchedulerConfiguration',
        'clientConnection:',
        `  kubeconfig: ${kubeconfig}`,
        '  qps: 500',
        '  burst: 1000',
        'leaderElection:',
        '  leaderElect: false',
        'enableProfiling: false',
        '',
      ].join('\n'),
    );
    const scheduler = launch('kube-scheduler', tools.kubeScheduler, [
      `--config=${schedConfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${schedPort}`,
      `--cert-dir=${path.join(dir, 'scheduler-certs')}`,
    ]);
    // kwok: every node is simulated; its stages make nodes Ready and pods Running.
    const kwok = launch('kwok', tools.kwok, [
      `--kubeconfig=${kubeconfig}`,
      '--manage-all-nodes=true',
      // Pod IPs apart from the service range (10.0.0.0/24).
      '--cidr=10.244.0.0/16',
      `--server-address=127.0.0.1:${kwokPort}`,
      `--config=${tools.kwokStages}`,
    ]);

    await Promise.all([
      waitHealthy('kube-controller-manager', kcm, { server: `https://127.0.0.1:${kcmPort}`, insecure: true }, '/healthz', timeoutMs),
      waitHealthy('kube-scheduler', scheduler, { server: `https://127.0.0.1:${schedPort}`, insecure: true }, '/healthz', timeoutMs),
      waitFor(
        async () => {
          kwok.failIfExited();
          const res = await fetch(`http://127.0.0.1:${kwokPort}/healthz`, { signal: AbortSignal.timeout(2000) });
          return res.ok;
        },
        { timeoutMs, what: `kwok to answer http://127.0.0.1:${kwokPort}/healthz`, intervalMs: 250 },
      ).catch((e: unknown) => {
        throw new Error(`kwok did not become ready (log: ${kwok.logFile}): ${errorText(e)}`);
      }),
    ]);
    // The controller manager's service-account controller makes `default` in every namespace;
    // wait for the first one so that a test's first pod is not refused for lack of it.
    await waitFor(
      async () => {
        kcm.failIfExited();
        await kubeRequest(conn, 'GET', '/api/v1/namespaces/default/serviceaccounts/default', { timeoutMs: 5000 });
        return true;
      },
      { timeoutMs, what: `kube-controller-manager to create the default ServiceAccount (log: ${kcm.logFile})`, intervalMs: 250 },
    );

    const guard = (): void => {
      for (const { proc } of procs) proc.failIfExited();
    };
    let stopped: Promise<void> | undefined;
    return {
      ...conn,
      server,
      token,
      kubeconfig,
      external: false,
      dir,
      logs,
      pids: procs.map(({ proc }) => proc.pid).filter((p): p is number => p !== undefined),
      request: (method, apiPath, o) => kubeRequest(conn, method, apiPath, o),
      addNodes: makeAddNodes(conn, false, kubeconfig, guard),
      stop() {
        stopped ??= (async () => {
          await stopAll();
          await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
          forgetOnExit(dir);
        })();
        return stopped;
      },
    };
  } catch (e) {
    await stopAll();
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
