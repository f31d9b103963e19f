// The node of the real cluster: a private containerd (own root, state and socket; the Docker
// engine's containerd is left alone), the CNI bridge network, the kubelet and kube-proxy.
// Configured as RECIPES.md "A real one-node Kubernetes cluster" found works on this machine.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { CLUSTER_IMAGES, CNI_BIN_DIR } from './cluster-tools.js';
import type { ControlPlane } from './control-plane.js';
import { freePort, waitFor } from './ports.js';
import { run, type Supervised } from './proc.js';

/** The node's network: a bridge with pods on a private /24, apart from Docker's 172.16/12. */
export const NODE_NETWORK = Object.freeze({
  name: 'lapis-net',
  bridge: 'lapiscni0',
  subnet: '10.89.0.0/24',
  gateway: '10.89.0.1',
  serviceRange: '10.0.0.0/24',
  dns: '10.0.0.10',
  nodeName: 'localhost',
});

export interface NodeDirs {
  /** The cluster's run directory (config, kubelet root, logs). */
  dir: string;
  /** containerd's root (content store, snapshots): kept across runs so images stay imported. */
  containerdRoot: string;
  containerdState: string;
}

export function containerdSocket(d: NodeDirs): string {
  return path.join(d.containerdState, 'containerd.sock');
}

export function registryHostsDir(d: NodeDirs): string {
  return path.join(d.dir, 'certs.d');
}

/** Lets the node pull from host:port over plain HTTP (read at each pull: no restart). */
export async function allowInsecureRegistry(d: NodeDirs, host: string): Promise<void> {
  const dir = path.join(registryHostsDir(d), host);
  await fsp.mkdir(dir, { recursive: true });
  await fsp.writeFile(
    path.join(dir, 'hosts.toml'),
    `server = "http://${host}"\n\n[host."http://${host}"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n`,
  );
}

function containerdConfig(d: NodeDirs): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = "${d.containerdRoot}"
state = "${d.containerdState}"

[grpc]
  address = "${containerdSocket(d)}"
[ttrpc]
  address = "${containerdSocket(d)}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "${path.join(d.dir, 'containerd-opt')}"
  [${cri}]
    sandbox_image = "${CLUSTER_IMAGES.pause}"
    # root here lacks CAP_SYS_RESOURCE: without this every sandbox fails to start.
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [${cri}.containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [${cri}.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [${cri}.containerd.runtimes.runc.options]
          SystemdCgroup = false
    [${cri}.registry]
      # hosts.toml per registry (registryHostsDir): how the node pulls from plain-HTTP registries.
      config_path = "${registryHostsDir(d)}"
    [${cri}.cni]
      bin_dir = "${CNI_BIN_DIR}"
      conf_dir = "${path.join(d.dir, 'cni')}"
`;
}

/** Starts containerd and waits for its socket (ctr answers). */
export async function startContainerd(
  cp: ControlPlane,
  bins: { containerd: string; ctr: string },
  d: NodeDirs,
  timeoutMs: number,
): Promise<Supervised> {
  await fsp.mkdir(d.containerdRoot, { recursive: true });
  await fsp.mkdir(d.containerdState, { recursive: true });
  const config = path.join(d.dir, 'containerd.toml');
  await fsp.writeFile(config, containerdConfig(d));
  const proc = cp.launch('containerd', bins.containerd, ['--config', config], 15_000);
  await waitFor(
    async () => {
      proc.failIfExited();
      await run(bins.ctr, ['-a', containerdSocket(d), 'version'], { timeoutMs: 5000 });
      return true;
    },
    { timeoutMs, what: `containerd to answer on ${containerdSocket(d)} (log: ${proc.logFile})`, intervalMs: 200 },
  );
  return proc;
}

/** Images already in the node's containerd (k8s.io namespace). */
export async function nodeImages(ctr: string, d: NodeDirs): Promise<Set<string>> {
  const { stdout } = await run(ctr, ['-a', containerdSocket(d), '-n', 'k8s.io', 'images', 'ls', '-q']);
  return new Set(stdout.split('\n').filter(Boolean));
}

/** Imports a docker-archive tarball (a file, or '-' with `input`) into the node's containerd. */
export async function importImage(ctr: string, d: NodeDirs, file: string): Promise<void> {
  await run(ctr, ['-a', containerdSocket(d), '-n', 'k8s.io', 'images', 'import', file], { timeoutMs: 10 * 60_000 });
}

/**
 * Kills every container the node's containerd runs and deletes them with their snapshots
 * (the kubelet is already stopped): what is left in containerd's kept root is images only.
 */
export async function removeAllContainers(ctr: string, d: NodeDirs): Promise<void> {
  const base = ['-a', containerdSocket(d), '-n', 'k8s.io'];
  const list = async (what: string): Promise<string[]> =>
    (await run(ctr, [...base, what, 'ls', '-q'], { timeoutMs: 30_000 }).catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean);
  for (const id of await list('tasks')) {
    await run(ctr, [...base, 'tasks', 'kill', '-s', 'SIGKILL', id], { timeoutMs: 10_000 }).catch(() => undefined);
  }
  for (const id of await list('tasks')) {
    await run(ctr, [...base, 'tasks', 'delete', '-f', id], { timeoutMs: 30_000 }).catch(() => undefined);
  }
  for (const id of await list('containers'))
    await run(ctr, [...base, 'containers', 'delete', id], { timeoutMs: 30_000 }).catch(() => undefined);
}

export async function writeCniConfig(d: NodeDirs): Promise<void> {
  const n = NODE_NETWORK;
  const conf = {
    cniVersion: '1.0.0',
    name: n.name,
    plugins: [
      {
        type: 'bridge',
        bridge: n.bridge,
        isGateway: true,
        hairpinMode: true,
        ipMasq: false,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: n.subnet, gateway: n.gateway }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: path.join(d.dir, 'cni-ipam'),
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
      // Docker sets the FORWARD policy to DROP: this lets the pods' traffic through.
      { type: 'firewall' },
    ],
  };
  await fsp.mkdir(path.join(d.dir, 'cni'), { recursive: true });
  await fsp.writeFile(path.join(d.dir, 'cni', '10-lapis.conflist'), JSON.stringify(conf, null, 2));
}

/** The bridge with the gateway address, made before the API server binds to that address. */
export async function createBridge(): Promise<void> {
  const n = NODE_NETWORK;
  await run('ip', ['link', 'add', n.bridge, 'type', 'bridge']);
  await run('ip', ['addr', 'add', `${n.gateway}/24`, 'dev', n.bridge]);
  await run('ip', ['link', 'set', n.bridge, 'up']);
}

export function kubeconfigWithCa(server: string, token: string, caFile: string): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: lapis
  cluster: {server: "${server}", certificate-authority: "${caFile}"}
users:
- name: user
  user: {token: "${token}"}
contexts:
- name: lapis
  context: {cluster: lapis, user: user}
current-context: lapis
`;
}

export interface NodeOptions {
  kubelet: string;
  kubeProxy: string;
  caFile: string;
  server: string;
  nodeToken: string;
  proxyToken: string;
  timeoutMs: number;
}

/** Starts the kubelet and kube-proxy; resolves once the node is Ready. */
export async function startKubeletAndProxy(cp: ControlPlane, d: NodeDirs, o: NodeOptions): Promise<void> {
  const n = NODE_NETWORK;
  const [kubeletPort, healthzPort, proxyHealthz, proxyMetrics] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const kubeletDir = path.join(d.dir, 'kubelet');
  await fsp.mkdir(kubeletDir, { recursive: true });
  const resolv = path.join(d.dir, 'resolv.conf');
  // Pods with dnsPolicy Default get the host's resolvers (nothing outside answers here anyway).
  await fsp.writeFile(resolv, fs.existsSync('/etc/resolv.conf') ? await fsp.readFile('/etc/resolv.conf', 'utf8') : '');
  const kubeletKubeconfig = path.join(d.dir, 'kubelet.kubeconfig');
  await fsp.writeFile(kubeletKubeconfig, kubeconfigWithCa(o.server, o.nodeToken, o.caFile), { mode: 0o600 });
  const config = path.join(d.dir, 'kubelet.yaml');
  await fsp.writeFile(
    config,
    JSON.stringify({
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      address: '127.0.0.1',
      port: kubeletPort,
      healthzBindAddress: '127.0.0.1',
      healthzPort,
      readOnlyPort: 0,
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: o.caFile } },
      authorization: { mode: 'Webhook' },
      cgroupDriver: 'cgroupfs',
      failCgroupV1: false,
      failSwapOn: false,
      containerRuntimeEndpoint: `unix://${containerdSocket(d)}`,
      clusterDNS: [n.dns],
      clusterDomain: 'cluster.local',
      resolvConf: resolv,
      podLogsDir: path.join(d.dir, 'pod-logs'),
      volumePluginDir: path.join(d.dir, 'volume-plugins'),
      // A shared test machine: never evict for a full-ish disk, never collect our images.
      evictionHard: { 'memory.available': '50Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      serializeImagePulls: false,
      // Quick status: pods become Ready a second after their probe passes.
      nodeStatusUpdateFrequency: '5s',
      syncFrequency: '10s',
      maxPods: 60,
    }),
  );
  const kubelet = cp.launch(
    'kubelet',
    o.kubelet,
    [
      `--config=${config}`,
      `--kubeconfig=${kubeletKubeconfig}`,
      `--hostname-override=${n.nodeName}`,
      `--root-dir=${kubeletDir}`,
      `--cert-dir=${path.join(d.dir, 'kubelet-pki')}`,
      '--v=1',
    ],
    15_000,
  );
  const proxyKubeconfig = path.join(d.dir, 'kube-proxy.kubeconfig');
  await fsp.writeFile(proxyKubeconfig, kubeconfigWithCa(o.server, o.proxyToken, o.caFile), { mode: 0o600 });
  const proxyConfig = path.join(d.dir, 'kube-proxy.yaml');
  await fsp.writeFile(
    proxyConfig,
    JSON.stringify({
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      clientConnection: { kubeconfig: proxyKubeconfig },
      hostnameOverride: n.nodeName,
      mode: 'iptables',
      clusterCIDR: n.subnet,
      healthzBindAddress: `127.0.0.1:${proxyHealthz}`,
      metricsBindAddress: `127.0.0.1:${proxyMetrics}`,
      // No sysctl writes: no NodePorts on 127.0.0.1 (route_localnet), no conntrack tuning.
      iptables: { localhostNodePorts: false, syncPeriod: '30s', minSyncPeriod: '0s' },
      conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    }),
  );
  const proxy = cp.launch('kube-proxy', o.kubeProxy, [`--config=${proxyConfig}`, '--v=1'], 5000);
  await waitFor(
    async () => {
      kubelet.failIfExited();
      proxy.failIfExited();
      const res = await fetch(`http://127.0.0.1:${healthzPort}/healthz`, { signal: AbortSignal.timeout(2000) });
      return res.ok;
    },
    { timeoutMs: o.timeoutMs, what: `the kubelet to answer its healthz (log: ${kubelet.logFile})`, intervalMs: 250 },
  );
  await waitFor(
    async () => {
      kubelet.failIfExited();
      proxy.failIfExited();
      const res = await fetch(`http://127.0.0.1:${proxyHealthz}/healthz`, { signal: AbortSignal.timeout(2000) });
      return res.ok;
    },
    { timeoutMs: o.timeoutMs, what: `kube-proxy to answer its healthz (log: ${proxy.logFile})`, intervalMs: 250 },
  );
}
