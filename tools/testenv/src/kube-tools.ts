// The Kubernetes test binaries: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// kubectl, kwok and helm, built once per machine with the machine's Go from the Go module proxy
// and cached in kubeToolsDir() (see ensureKubeTools). cluster-tools.ts adds what a real node needs.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { cacheRoot, findGo, goInstall, goLogged, isExecutable, withBuildLock, type GoEnv } from './gobuild.js';
import { run } from './proc.js';

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

export const TOOLS_HEADER =
  "//go:build tools\n\n// Only here so that `go mod tidy` keeps these packages' modules; built with `go build`.\npackage tools\n\n";

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

export async function buildKubernetes(
  g: GoEnv,
  binDir: string,
  work: string,
  log: string,
  names: readonly string[],
  dirName = 'kubernetes',
): Promise<void> {
  const v = KUBE_VERSIONS;
  const dir = path.join(work, dirName);
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(dir, { recursive: true });
  // kubernetes' own go.mod, from the module cache (downloaded through the proxy).
  const { stdout } = await run(g.go, ['mod', 'download', '-json', `k8s.io/kubernetes@${v.kubernetes}`], { env: g.env, cwd: dir }).catch(
    (e: unknown) => {
      throw new Error(
        `could not download k8s.io/kubernetes@${v.kubernetes} through the Go module proxy: ${e instanceof Error ? e.message : String(e)}`,
      );
    },
  );
  const info = JSON.parse(stdout) as { GoMod?: string; Error?: string };
  if (info.Error || !info.GoMod) throw new Error(`go mod download k8s.io/kubernetes@${v.kubernetes}: ${info.Error ?? 'no go.mod'}`);
  const { goDirective, modules } = stagingReplacements(await fsp.readFile(info.GoMod, 'utf8'), v.staging);
  await fsp.appendFile(
    log,
    `\n### ${modules.length} staging modules of k8s.io/kubernetes@${v.kubernetes} pinned at ${v.staging}: ${modules.join(' ')}\n`,
  );
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
  // Only what is built: `go mod tidy` then keeps exactly the modules those commands need.
  await fsp.writeFile(path.join(dir, 'tools.go'), TOOLS_HEADER + names.map((c) => `import _ "k8s.io/kubernetes/cmd/${c}"\n`).join(''));
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
  const bins = [t.etcd, t.kubeApiserver, t.kubeControllerManager, t.kubeScheduler, t.kubectl, t.kwok, t.helm].filter(
    (f) => !isExecutable(f),
  );
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
      await step(`helm ${KUBE_VERSIONS.helm}`, !isExecutable(tools.helm), () =>
        goInstall(g, `helm.sh/helm/v3/cmd/helm@${KUBE_VERSIONS.helm}`, bin, 'helm', work, log),
      );
      await step(`kwok ${KUBE_VERSIONS.kwok}`, !isExecutable(tools.kwok), () =>
        goInstall(g, `sigs.k8s.io/kwok/cmd/kwok@${KUBE_VERSIONS.kwok}`, bin, 'kwok', work, log),
      );
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
