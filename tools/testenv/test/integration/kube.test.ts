import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import {
  ensureKubeTools,
  helm,
  KubeApiError,
  kubeRequest,
  KUBE_VERSIONS,
  KWOK_NODE_ANNOTATION,
  KWOK_TOLERATION,
  stagingReplacements,
  startKube,
  waitFor,
  type Kube,
} from '../../src/index.js';

interface Pod {
  metadata: { name: string; deletionTimestamp?: string };
  spec: { nodeName?: string };
  status: { phase?: string };
}
interface List<T> {
  items: T[];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function deployment(name: string, replicas: number, labels: Record<string, string>): unknown {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, labels },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          automountServiceAccountToken: false,
          tolerations: [KWOK_TOLERATION],
          containers: [{ name: 'main', image: 'lapis/busybox:testenv', command: ['sleep', 'infinity'] }],
        },
      },
    },
  };
}

describe('testenv: Kubernetes control plane (etcd, kube-apiserver, controller manager, scheduler, kwok, helm)', function () {
  // Each test is quick (seconds); the build in before() is not, the first time on a machine.
  this.timeout(180_000);
  let kube: Kube;
  let nodes: string[] = [];

  before(async function () {
    this.timeout(90 * 60_000);
    // The first build on a machine takes ~10 minutes (the suite timeout allows for it).
    const started = Date.now();
    await ensureKubeTools({ progress: (line) => console.error(line) });
    const built = Date.now();
    kube = await startKube();
    nodes = await kube.addNodes(2, { 'lapis.dev/pool': 'test' });
    console.error(`      tools ready in ${built - started} ms; control plane and 2 kwok nodes up in ${Date.now() - built} ms`);
  });

  const namespaces: string[] = [];
  after(async function () {
    if (kube?.external) {
      // Not our cluster: take away what this suite made (ours is gone with its temp dir).
      for (const ns of namespaces) await kube.request('DELETE', `/api/v1/namespaces/${ns}`).catch(() => undefined);
      for (const node of nodes) await kube.request('DELETE', `/api/v1/nodes/${node}`).catch(() => undefined);
    }
    await kube?.stop();
  });

  async function namespace(): Promise<string> {
    const name = `t-${randomBytes(4).toString('hex')}`;
    namespaces.push(name);
    await kube.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } } });
    return name;
  }

  async function runningPods(ns: string, selector: string): Promise<Pod[]> {
    const list = await kube.request<List<Pod>>('GET', `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(selector)}`);
    return list.items.filter((p) => p.status.phase === 'Running' && !p.metadata.deletionTimestamp);
  }

  it('stagingReplacements reads the ./staging replace block of a kubernetes go.mod', function () {
    const goMod = [
      'module k8s.io/kubernetes',
      '',
      'go 1.24.0',
      '',
      'require k8s.io/api v0.0.0',
      '',
      'replace (',
      '\tk8s.io/api => ./staging/src/k8s.io/api',
      '\tk8s.io/client-go => ./staging/src/k8s.io/client-go',
      '\tk8s.io/kube-openapi => k8s.io/kube-openapi v0.0.0-2025',
      ')',
      'replace k8s.io/apimachinery => ./staging/src/k8s.io/apimachinery',
    ].join('\n');
    assert.deepEqual(stagingReplacements(goMod, KUBE_VERSIONS.staging), {
      goDirective: '1.24.0',
      modules: ['k8s.io/api', 'k8s.io/apimachinery', 'k8s.io/client-go'],
    });
  });

  it('the API server answers /readyz with the token and serves the built version', async function () {
    assert.equal(await kube.request('GET', '/readyz'), 'ok');
    if (!kube.external) {
      const version = await kube.request<{ gitVersion: string }>('GET', '/version');
      assert.equal(version.gitVersion, KUBE_VERSIONS.kubernetes);
      // Only known tokens get in.
      const stranger = { server: kube.server, token: 'not-a-token', insecure: true };
      await assert.rejects(
        kubeRequest(stranger, 'GET', '/api/v1/namespaces'),
        (e: unknown) => e instanceof KubeApiError && e.status === 401,
      );
    }
    const kubeconfig = await fs.readFile(kube.kubeconfig, 'utf8');
    assert.match(kubeconfig, new RegExp(`server: ${kube.server}`));
  });

  it('a Deployment of 3 replicas gets 3 Running pods on kwok nodes', async function () {
    const ns = await namespace();
    const labels = { app: 'sleeper' };
    await kube.request('POST', `/apis/apps/v1/namespaces/${ns}/deployments`, { body: deployment('sleeper', 3, labels) });
    let pods: Pod[] = [];
    await waitFor(
      async () => {
        pods = await runningPods(ns, 'app=sleeper');
        return pods.length === 3;
      },
      { timeoutMs: 60_000, what: `3 Running pods of deployment ${ns}/sleeper`, intervalMs: 250 },
    );
    for (const pod of pods) {
      assert.ok(pod.spec.nodeName, `pod ${pod.metadata.name} has no node`);
      const node = await kube.request<{ metadata: { annotations?: Record<string, string> } }>('GET', `/api/v1/nodes/${pod.spec.nodeName}`);
      assert.equal(
        node.metadata.annotations?.[KWOK_NODE_ANNOTATION],
        'fake',
        `pod ${pod.metadata.name} is on ${pod.spec.nodeName}, not a kwok node`,
      );
    }
    // On a cluster of our own, the nodes are the ones addNodes made.
    if (!kube.external)
      assert.ok(
        pods.every((p) => nodes.includes(p.spec.nodeName ?? '')),
        'a pod is on a node addNodes did not make',
      );
    const dep = await kube.request<{ status: { readyReplicas?: number } }>('GET', `/apis/apps/v1/namespaces/${ns}/deployments/sleeper`);
    await waitFor(
      async () =>
        (await kube.request<{ status: { readyReplicas?: number } }>('GET', `/apis/apps/v1/namespaces/${ns}/deployments/sleeper`)).status
          .readyReplicas === 3,
      { timeoutMs: 30_000, what: `deployment ${ns}/sleeper to report 3 ready replicas (now ${dep.status.readyReplicas ?? 0})` },
    );
  });

  it('helm installs a chart, upgrades it with a changed value and uninstalls it leaving nothing', async function () {
    const ns = await namespace();
    const chart = path.join(kube.dir, `chart-${ns}`);
    await fs.mkdir(path.join(chart, 'templates'), { recursive: true });
    await fs.writeFile(path.join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: tiny\nversion: 0.1.0\nappVersion: "1.0"\n');
    await fs.writeFile(path.join(chart, 'values.yaml'), 'replicas: 1\nmessage: hello\n');
    await fs.writeFile(
      path.join(chart, 'templates', 'configmap.yaml'),
      [
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata:',
        '  name: {{ .Release.Name }}-settings',
        'data:',
        '  message: {{ .Values.message | quote }}',
        '',
      ].join('\n'),
    );
    await fs.writeFile(
      path.join(chart, 'templates', 'deployment.yaml'),
      JSON.stringify(deployment('{{ .Release.Name }}-app', 0, { app: 'tiny', release: '{{ .Release.Name }}' })).replace(
        '"replicas":0',
        '"replicas":{{ .Values.replicas }}',
      ),
    );
    const args = ['--namespace', ns, '--wait', '--timeout', '90s'];

    await helm(['install', 'tiny', chart, ...args], kube);
    const settings = `/api/v1/namespaces/${ns}/configmaps/tiny-settings`;
    assert.equal((await kube.request<{ data: { message: string } }>('GET', settings)).data.message, 'hello');
    assert.equal((await runningPods(ns, 'app=tiny')).length, 1);

    await helm(['upgrade', 'tiny', chart, '--set', 'message=changed', '--set', 'replicas=2', ...args], kube);
    assert.equal((await kube.request<{ data: { message: string } }>('GET', settings)).data.message, 'changed');
    await waitFor(async () => (await runningPods(ns, 'app=tiny')).length === 2, {
      timeoutMs: 30_000,
      what: '2 Running pods after the upgrade',
    });
    const history = JSON.parse((await helm(['history', 'tiny', '--namespace', ns, '-o', 'json'], kube)).stdout) as Array<{
      revision: number;
      status: string;
    }>;
    assert.deepEqual(
      history.map((h) => [h.revision, h.status]),
      [
        [1, 'superseded'],
        [2, 'deployed'],
      ],
    );

    await helm(['uninstall', 'tiny', '--namespace', ns, '--wait', '--timeout', '90s'], kube);
    await assert.rejects(kube.request('GET', settings), (e: unknown) => e instanceof KubeApiError && e.status === 404);
    await waitFor(
      async () => {
        const left = await Promise.all(
          [
            `/apis/apps/v1/namespaces/${ns}/deployments`,
            `/apis/apps/v1/namespaces/${ns}/replicasets`,
            `/api/v1/namespaces/${ns}/pods`,
            `/api/v1/namespaces/${ns}/configmaps?labelSelector=app.kubernetes.io%2Fmanaged-by%3DHelm`,
            `/api/v1/namespaces/${ns}/secrets?labelSelector=owner%3Dhelm`,
          ].map(async (p) => (await kube.request<List<unknown>>('GET', p)).items.length),
        );
        return left.every((n) => n === 0);
      },
      {
        timeoutMs: 60_000,
        what: `namespace ${ns} to hold no deployment, replica set, pod, helm-managed config map or release secret after uninstall`,
      },
    );
    assert.equal(JSON.parse((await helm(['list', '--namespace', ns, '--all', '-o', 'json'], kube)).stdout).length, 0);
  });

  it('stop() ends every process it started and removes its temp dir', async function () {
    const { pids, dir, external } = kube;
    if (!external) assert.equal(pids.length, 5, `expected 5 processes, got ${pids.join(' ')}`);
    for (const pid of pids) assert.ok(alive(pid), `pid ${pid} is not running before stop()`);
    await kube.stop();
    for (const pid of pids) assert.ok(!alive(pid), `pid ${pid} still runs after stop()`);
    await assert.rejects(fs.stat(dir), (e: unknown) => (e as NodeJS.ErrnoException).code === 'ENOENT');
  });
});
