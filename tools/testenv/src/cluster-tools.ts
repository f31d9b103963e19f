// What a real node needs on top of the control plane's binaries (kube-tools.ts): kubelet and
// kube-proxy (the same wrapper module as kube-apiserver), CoreDNS, rancher's local-path
// provisioner and nats-server (`go install` from the Go module proxy), the pause binary (C, from
// the kubernetes module), and the images the cluster runs, as docker-archive tarballs that
// `ctr images import` takes: nothing can be pulled here. All cached in clusterToolsDir().
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ensureCommands } from './apt.js';
import { cacheRoot, findGo, goInstall, isExecutable, withBuildLock, type GoEnv } from './gobuild.js';
import { buildKubernetes, KUBE_VERSIONS } from './kube-tools.js';
import { run } from './proc.js';
import { writeImageArchive } from './image-archive.js';

export const CLUSTER_VERSIONS = Object.freeze({
  kubernetes: KUBE_VERSIONS.kubernetes,
  coredns: 'v1.13.1',
  localPath: 'v0.0.30',
  nats: 'v2.10.29',
});

/** Image references as the pods name them (imported into the node's containerd, never pulled). */
export const CLUSTER_IMAGES = Object.freeze({
  pause: 'lapis.local/pause:3.10',
  busybox: 'lapis.local/busybox:1',
  coredns: `lapis.local/coredns:${CLUSTER_VERSIONS.coredns}`,
  localPath: `lapis.local/local-path-provisioner:${CLUSTER_VERSIONS.localPath}`,
  nats: `lapis.local/nats:${CLUSTER_VERSIONS.nats.replace(/^v/, '')}`,
});

export interface ClusterTools {
  kubelet: string;
  kubeProxy: string;
  coredns: string;
  localPathProvisioner: string;
  natsServer: string;
  pause: string;
  /** rancher's own manifest (deploy/local-path-storage.yaml of the module), as published. */
  localPathManifest: string;
  /** docker-archive tarballs, by CLUSTER_IMAGES key. */
  images: Record<keyof typeof CLUSTER_IMAGES, string>;
  buildLog: string;
}

export function clusterToolsDir(): string {
  const v = CLUSTER_VERSIONS;
  return path.join(cacheRoot(), 'kube', `node-${v.kubernetes}_coredns-${v.coredns}_local-path-${v.localPath}_nats-${v.nats}`);
}

function toolPaths(dir: string): ClusterTools {
  const bin = path.join(dir, 'bin');
  const img = path.join(dir, 'images');
  return {
    kubelet: path.join(bin, 'kubelet'),
    kubeProxy: path.join(bin, 'kube-proxy'),
    coredns: path.join(bin, 'coredns'),
    localPathProvisioner: path.join(bin, 'local-path-provisioner'),
    natsServer: path.join(bin, 'nats-server'),
    pause: path.join(bin, 'pause'),
    localPathManifest: path.join(dir, 'local-path-storage.yaml'),
    images: {
      pause: path.join(img, 'pause.tar'),
      busybox: path.join(img, 'busybox.tar'),
      coredns: path.join(img, 'coredns.tar'),
      localPath: path.join(img, 'local-path-provisioner.tar'),
      nats: path.join(img, 'nats.tar'),
    },
    buildLog: path.join(dir, 'build.log'),
  };
}

function missing(t: ClusterTools): string[] {
  const bins = [t.kubelet, t.kubeProxy, t.coredns, t.localPathProvisioner, t.natsServer, t.pause].filter((f) => !isExecutable(f));
  const files = [t.localPathManifest, ...Object.values(t.images)].filter((f) => !fs.existsSync(f));
  return [...bins, ...files];
}

/** The Debian packages a node needs besides containerd and runc (which come with docker.io). */
const NODE_COMMANDS = {
  conntrack: 'conntrack',
  socat: 'socat',
  iptables: 'iptables',
  ip: 'iproute2',
  gcc: 'gcc',
  busybox: 'busybox-static',
  ctr: 'containerd',
  containerd: 'containerd',
  runc: 'runc',
} as const;
export const CNI_BIN_DIR = '/usr/lib/cni';
const CNI_PLUGINS = ['bridge', 'host-local', 'loopback', 'portmap', 'firewall'];

/** Installs the node's Debian packages (CNI plugins included); resolves to the commands' paths. */
export async function ensureNodePackages(): Promise<Record<keyof typeof NODE_COMMANDS, string>> {
  const paths = await ensureCommands(NODE_COMMANDS);
  // The CNI plugins are not on PATH: ask for the package through one of them.
  if (CNI_PLUGINS.some((p) => !isExecutable(path.join(CNI_BIN_DIR, p)))) {
    await ensureCommands({ [path.join(CNI_BIN_DIR, 'bridge')]: 'containernetworking-plugins' });
    const still = CNI_PLUGINS.filter((p) => !isExecutable(path.join(CNI_BIN_DIR, p)));
    if (still.length > 0)
      throw new Error(`containernetworking-plugins is installed but ${still.join(', ')} is missing from ${CNI_BIN_DIR}`);
  }
  return paths;
}

/** The real pause container (build/pause/linux/pause.c of the kubernetes module), static. */
async function buildPause(g: GoEnv, gcc: string, out: string, work: string, log: string): Promise<void> {
  const { stdout } = await run(g.go, ['mod', 'download', '-json', `k8s.io/kubernetes@${KUBE_VERSIONS.kubernetes}`], {
    env: g.env,
    cwd: work,
  });
  const dir = (JSON.parse(stdout) as { Dir?: string }).Dir;
  if (!dir) throw new Error(`go mod download k8s.io/kubernetes@${KUBE_VERSIONS.kubernetes} gave no directory`);
  const src = path.join(dir, 'build', 'pause', 'linux', 'pause.c');
  await fsp.appendFile(log, `\n### gcc -Os -static ${src}\n`);
  await run(gcc, ['-Os', '-static', '-DVERSION=3.10', '-o', `${out}.tmp`, src]);
  await run('strip', [`${out}.tmp`]).catch(() => undefined); // only smaller
  await fsp.rename(`${out}.tmp`, out);
}

async function copyManifest(g: GoEnv, to: string, work: string): Promise<void> {
  const mod = `github.com/rancher/local-path-provisioner@${CLUSTER_VERSIONS.localPath}`;
  const { stdout } = await run(g.go, ['mod', 'download', '-json', mod], { env: g.env, cwd: work });
  const dir = (JSON.parse(stdout) as { Dir?: string }).Dir;
  if (!dir) throw new Error(`go mod download ${mod} gave no directory`);
  await fsp.copyFile(path.join(dir, 'deploy', 'local-path-storage.yaml'), `${to}.tmp`);
  await fsp.rename(`${to}.tmp`, to);
}

/** One static binary as an image's only file, with this entrypoint. */
async function binaryImage(
  file: string,
  ref: string,
  bin: string,
  inImage: string,
  entrypoint: string[],
  extra: Record<string, string> = {},
): Promise<void> {
  const files = { [inImage]: { from: bin, mode: 0o755 }, ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [k, { text: v }])) };
  await writeImageArchive(file, ref, { files, entrypoint, env: ['PATH=/usr/bin:/bin'] });
}

async function busyboxImage(file: string, busybox: string): Promise<void> {
  const { stdout } = await run(busybox, ['--list']);
  const links: Record<string, string> = {};
  for (const applet of stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean))
    if (applet !== 'busybox') links[`bin/${applet}`] = 'busybox';
  await writeImageArchive(file, CLUSTER_IMAGES.busybox, {
    files: {
      'bin/busybox': { from: busybox, mode: 0o755 },
      'etc/passwd': { text: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' },
      'etc/group': { text: 'root:x:0:\nnogroup:x:65534:\n' },
    },
    links,
    dirs: ['tmp', 'root', 'var/www'],
    cmd: ['sh'],
    env: ['PATH=/bin'],
  });
}

export interface EnsureClusterToolsOptions {
  progress?: (line: string) => void;
  lockTimeoutMs?: number;
}

let building: Promise<ClusterTools> | undefined;

/**
 * The node's binaries and images, built on first use (about 5 minutes on 2 cores once the
 * control plane's build has filled the Go caches) and cached in clusterToolsDir().
 */
export function ensureClusterTools(opts: EnsureClusterToolsOptions = {}): Promise<ClusterTools> {
  const dir = clusterToolsDir();
  const tools = toolPaths(dir);
  if (missing(tools).length === 0) return Promise.resolve(tools);
  building ??= (async () => {
    const pkgs = await ensureNodePackages();
    const bin = path.join(dir, 'bin');
    await fsp.mkdir(bin, { recursive: true });
    await fsp.mkdir(path.join(dir, 'images'), { recursive: true });
    return withBuildLock(dir, opts.lockTimeoutMs ?? 60 * 60_000, 'the Kubernetes node tools', async () => {
      if (missing(tools).length === 0) return tools;
      const say = opts.progress ?? (() => {});
      const log = tools.buildLog;
      const work = path.join(dir, 'work');
      await fsp.mkdir(work, { recursive: true });
      const g = await findGo('the Kubernetes node tools');
      const started = Date.now();
      const step = async (what: string, needed: boolean, build: () => Promise<void>): Promise<void> => {
        if (!needed) return;
        say(`@lapis/testenv: building ${what} (log: ${log})`);
        await build();
      };
      const v = CLUSTER_VERSIONS;
      const kube = ['kubelet', 'kube-proxy'].filter((c) => !isExecutable(path.join(bin, c)));
      await step(`${kube.join(', ')} ${v.kubernetes} with Go`, kube.length > 0, () => buildKubernetes(g, bin, work, log, kube, 'node'));
      await step(`CoreDNS ${v.coredns} with Go`, !isExecutable(tools.coredns), () =>
        goInstall(g, `github.com/coredns/coredns@${v.coredns}`, bin, 'coredns', work, log),
      );
      await step(`local-path-provisioner ${v.localPath} with Go`, !isExecutable(tools.localPathProvisioner), () =>
        goInstall(g, `github.com/rancher/local-path-provisioner@${v.localPath}`, bin, 'local-path-provisioner', work, log),
      );
      await step(`nats-server ${v.nats} with Go`, !isExecutable(tools.natsServer), () =>
        goInstall(g, `github.com/nats-io/nats-server/v2@${v.nats}`, bin, 'nats-server', work, log),
      );
      await step('pause with gcc', !isExecutable(tools.pause), () => buildPause(g, pkgs.gcc, tools.pause, work, log));
      await step('the local-path manifest', !fs.existsSync(tools.localPathManifest), () => copyManifest(g, tools.localPathManifest, work));
      const img = tools.images;
      await step(
        'the node images',
        Object.values(img).some((f) => !fs.existsSync(f)),
        async () => {
          await binaryImage(img.pause, CLUSTER_IMAGES.pause, tools.pause, 'pause', ['/pause']);
          await binaryImage(img.coredns, CLUSTER_IMAGES.coredns, tools.coredns, 'coredns', ['/coredns']);
          await binaryImage(img.localPath, CLUSTER_IMAGES.localPath, tools.localPathProvisioner, 'usr/bin/local-path-provisioner', [
            'local-path-provisioner',
          ]);
          await binaryImage(img.nats, CLUSTER_IMAGES.nats, tools.natsServer, 'nats-server', ['/nats-server']);
          await busyboxImage(img.busybox, pkgs.busybox);
        },
      );
      const still = missing(tools);
      if (still.length > 0) throw new Error(`the node tools build finished but ${still.join(', ')} is missing (log: ${log})`);
      await fsp.rm(work, { recursive: true, force: true });
      say(`@lapis/testenv: Kubernetes node tools built in ${Math.round((Date.now() - started) / 1000)} s into ${dir}`);
      return tools;
    });
  })().finally(() => {
    building = undefined;
  });
  return building;
}
