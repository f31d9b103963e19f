// Renders k8s/ (plain manifests for kubectl users) from charts/lapis with `helm template`:
// one file per runtime backend, from the values in k8s/values.yaml. k8s/*.yaml besides
// values.yaml are generated: never edit them, run this instead. First it writes the chart's
// NATS users and permissions (charts/lapis/files/nats-authorization.conf) from the platform's
// nats/access.ts, the one place they are defined.
//   node tools/chart-test/dist/src/render.js           writes k8s/
//   node tools/chart-test/dist/src/render.js --check   exits 1 when k8s/ is out of date
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { lapisAccess, natsAuthorization } from '@lapis/platform';
import { ensureKubeTools, KUBE_VERSIONS, run } from '@lapis/testenv';

/** The repository root (this file is tools/chart-test/dist/src/render.js). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..', '..');
export const CHART_DIR = path.join(REPO_ROOT, 'charts', 'lapis');
export const K8S_DIR = path.join(REPO_ROOT, 'k8s');
/** The hand-written input of the render: the values a kubectl user's manifests are made with. */
export const K8S_VALUES = path.join(K8S_DIR, 'values.yaml');
/** Release name and namespace of the plain manifests (objects are named lapis-<component>). */
export const K8S_RELEASE = 'lapis';
export const K8S_NAMESPACE = 'lapis';

/** The generated NATS authorization of the chart (its bundled server includes it). */
export const NATS_AUTHORIZATION = path.join(CHART_DIR, 'files', 'nats-authorization.conf');
/** Stands for the stream name (a value of the chart) in the generated file. */
export const STREAM_PLACEHOLDER = '__LAPIS_NATS_STREAM__';

/** The server variable holding a user's password (from the chart's Secret); _helpers.tpl makes the same. */
export const passwordVariable = (user: string) => `LAPIS_NATS_PASSWORD_${user.toUpperCase().replace(/-/g, '_')}`;

/**
 * The chart's NATS users: one per service, one shared by every node agent (a DaemonSet's pods
 * all get the same Secret), each password a variable of the server's environment.
 */
export function chartNatsAuthorization(): string {
  const users = lapisAccess().map((access) => ({ access, password: { env: passwordVariable(access.user) } }));
  return [
    '# GENERATED from services/platform/src/nats/access.ts by tools/chart-test (make k8s); do not edit.',
    '# The stream name in these subjects is filled in from the value nats.stream.',
    natsAuthorization(users, STREAM_PLACEHOLDER),
  ].join('\n');
}

/** The generated files: name -> extra `helm template` arguments. */
export const K8S_VARIANTS: ReadonlyArray<{ file: string; what: string; args: string[] }> = [
  {
    file: 'lapis-docker.yaml',
    what: 'runtime agents as a DaemonSet on the nodes labelled lapis.dev/docker=true',
    args: ['--set', 'containerRuntime.backend=docker', '--set-json', 'containerRuntime.nodeSelector={"lapis.dev/docker":"true"}'],
  },
  {
    file: 'lapis-kubernetes.yaml',
    what: 'the kubernetes runtime backend (instances as Pods)',
    args: ['--set', 'containerRuntime.backend=kubernetes'],
  },
];

/** `helm template` of the chart with these arguments (the helm that testenv builds). */
export async function helmTemplate(args: readonly string[], opts: { release?: string; namespace?: string } = {}): Promise<string> {
  const tools = await ensureKubeTools();
  const home = await fs.mkdtemp(path.join(os.tmpdir(), 'lapis-helm-'));
  try {
    const env = {
      ...process.env,
      HELM_CACHE_HOME: path.join(home, 'cache'),
      HELM_CONFIG_HOME: path.join(home, 'config'),
      HELM_DATA_HOME: path.join(home, 'data'),
    };
    const { stdout } = await run(
      tools.helm,
      [
        'template',
        opts.release ?? K8S_RELEASE,
        CHART_DIR,
        '--namespace',
        opts.namespace ?? K8S_NAMESPACE,
        '--kube-version',
        KUBE_VERSIONS.kubernetes.replace(/^v/, ''),
        ...args,
      ],
      { env },
    );
    return stdout;
  } finally {
    await fs.rm(home, { recursive: true, force: true });
  }
}

/** What k8s/ should hold: file name -> content. */
export async function renderK8s(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const variant of K8S_VARIANTS) {
    // The `helm test` pod is for helm users; kubectl users get what runs.
    const body = await helmTemplate(['--skip-tests', '-f', K8S_VALUES, ...variant.args]);
    const header = [
      `# GENERATED from charts/lapis with k8s/values.yaml (${variant.what}); do not edit.`,
      '# Regenerate: npx tsc -b tools/chart-test && node tools/chart-test/dist/src/render.js',
      `# Before \`kubectl apply -f\`: create namespace "${K8S_NAMESPACE}" and the Secrets k8s/values.yaml names (see k8s/README.md).`,
      '',
    ].join('\n');
    files.set(variant.file, header + body);
  }
  return files;
}

/** Files in k8s/ that differ from a fresh render (or are missing, or are stale extras). */
export async function staleK8sFiles(): Promise<string[]> {
  const wanted = await renderK8s();
  const stale: string[] = [];
  if ((await fs.readFile(NATS_AUTHORIZATION, 'utf8').catch(() => undefined)) !== chartNatsAuthorization())
    stale.push(path.relative(REPO_ROOT, NATS_AUTHORIZATION));
  for (const [file, content] of wanted) {
    const current = await fs.readFile(path.join(K8S_DIR, file), 'utf8').catch(() => undefined);
    if (current !== content) stale.push(file);
  }
  for (const file of await fs.readdir(K8S_DIR)) {
    if (file.endsWith('.yaml') && file !== 'values.yaml' && !wanted.has(file)) stale.push(file);
  }
  return stale;
}

async function main(): Promise<void> {
  if (process.argv.includes('--check')) {
    const stale = await staleK8sFiles();
    if (stale.length > 0) {
      process.stderr.write(`k8s/ is out of date (${stale.join(', ')}): run node tools/chart-test/dist/src/render.js\n`);
      process.exitCode = 1;
    }
    return;
  }
  await fs.mkdir(path.dirname(NATS_AUTHORIZATION), { recursive: true });
  await fs.writeFile(NATS_AUTHORIZATION, chartNatsAuthorization());
  process.stdout.write(`wrote ${path.relative(REPO_ROOT, NATS_AUTHORIZATION)}\n`);
  for (const [file, content] of await renderK8s()) {
    await fs.writeFile(path.join(K8S_DIR, file), content);
    process.stdout.write(`wrote k8s/${file}\n`);
  }
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
