// The Helm chart (charts/lapis) and the plain manifests (k8s/) against a real control plane
// (etcd, kube-apiserver, controller manager, scheduler) with kwok nodes: kwok runs pods
// without pulling images, so the pods reach Running whatever the images are.
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { CommandError, ensureKubeTools, helm, kubectl, KWOK_TOLERATION, startKube, waitFor, type Kube } from '@lapis/testenv';
import { parseAllDocuments } from 'yaml';
import { CHART_DIR, helmTemplate, K8S_DIR, K8S_NAMESPACE, K8S_VARIANTS, staleK8sFiles } from '../src/render.js';

interface Meta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  deletionTimestamp?: string;
}
interface Obj {
  kind: string;
  metadata: Meta;
}
interface Container {
  name: string;
  image: string;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  securityContext?: Record<string, unknown>;
  readinessProbe?: { grpc?: { port: number } };
  livenessProbe?: { grpc?: { port: number } };
}
interface PodSpec {
  containers: Container[];
  securityContext?: Record<string, unknown>;
  nodeName?: string;
}
interface Pod extends Obj {
  spec: PodSpec;
  status: { phase?: string; conditions?: Array<{ type: string; status: string }> };
}
interface Workload extends Obj {
  spec: { replicas?: number; template: { spec: PodSpec } };
  status: {
    readyReplicas?: number;
    updatedReplicas?: number;
    numberReady?: number;
    desiredNumberScheduled?: number;
    updatedNumberScheduled?: number;
    observedGeneration?: number;
  };
}
interface List<T> {
  items: T[];
}

const RELEASE_LABEL = 'app.kubernetes.io/instance';

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function errorText(e: unknown): string {
  return e instanceof CommandError ? `${e.message}\n${e.stderr}` : e instanceof Error ? e.message : String(e);
}

/** Rejects with a CommandError whose output (helm lint prints to stdout) matches re. */
async function rejectsWith(promise: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof CommandError, String(e));
    assert.match(`${e.message}\n${e.stdout}\n${e.stderr}`, re);
    return true;
  });
}

/** Values every install here uses: static tokens, a service token, everything tolerating kwok's taint. */
function testValues(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const serviceToken = randomBytes(24).toString('hex');
  const onKwok = { tolerations: [KWOK_TOLERATION] };
  return {
    auth: {
      staticTokens: { tokens: [{ sha256: sha256(serviceToken), user: 'lapis-services', roles: ['admin'] }] },
      serviceToken: { value: serviceToken },
    },
    imageSync: { siteRegistry: 'http://registry.lapis-test.svc:5000', ...onKwok },
    scheduler: onKwok,
    toscaOrchestrator: onKwok,
    occiGateway: onKwok,
    containerRuntime: onKwok,
    nats: { bundled: { persistence: { enabled: false }, ...onKwok } },
    ...extra,
  };
}

/** Deep merge (objects only; arrays and scalars of b win). */
function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object' && !Array.isArray(prev)
        ? merge(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

describe('charts/lapis on a real control plane (kwok nodes)', function () {
  this.timeout(300_000);
  let kube: Kube;
  let dir: string;
  let dockerNodes: string[] = [];
  let otherNodes: string[] = [];
  const namespaces: string[] = [];

  const valuesFile = async (name: string, values: Record<string, unknown>): Promise<string> => {
    const file = path.join(dir, `${name}.json`);
    await fs.writeFile(file, JSON.stringify(values)); // JSON is YAML: helm reads it with -f
    return file;
  };
  const createNamespace = async (name: string, labels: Record<string, string> = {}): Promise<string> => {
    await kube.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } } });
    namespaces.push(name);
    return name;
  };
  const list = async <T>(apiPath: string): Promise<T[]> => (await kube.request<List<T>>('GET', apiPath)).items;
  const selector = (release: string) => `labelSelector=${encodeURIComponent(`${RELEASE_LABEL}=${release}`)}`;

  /** Every Deployment, DaemonSet and StatefulSet of the release rolled out and Ready, every pod Running. */
  async function waitRolledOut(ns: string, release: string, timeoutMs = 90_000): Promise<{ workloads: Workload[]; pods: Pod[] }> {
    let last = '';
    let result: { workloads: Workload[]; pods: Pod[] } = { workloads: [], pods: [] };
    try {
      await waitFor(
        async () => {
          const q = selector(release);
          const workloads = [
            ...(await list<Workload>(`/apis/apps/v1/namespaces/${ns}/deployments?${q}`)).map((w) => ({ ...w, kind: 'Deployment' })),
            ...(await list<Workload>(`/apis/apps/v1/namespaces/${ns}/daemonsets?${q}`)).map((w) => ({ ...w, kind: 'DaemonSet' })),
            ...(await list<Workload>(`/apis/apps/v1/namespaces/${ns}/statefulsets?${q}`)).map((w) => ({ ...w, kind: 'StatefulSet' })),
          ];
          const pods = (await list<Pod>(`/api/v1/namespaces/${ns}/pods?${q}`)).filter((p) => !p.metadata.deletionTimestamp);
          const notReady = workloads.filter((w) => {
            if (w.kind === 'DaemonSet') {
              const desired = w.status.desiredNumberScheduled ?? 0;
              return desired === 0 || w.status.numberReady !== desired || w.status.updatedNumberScheduled !== desired;
            }
            const want = w.spec.replicas ?? 1;
            return w.status.readyReplicas !== want || w.status.updatedReplicas !== want;
          });
          const expectedPods = workloads.reduce(
            (n, w) => n + (w.kind === 'DaemonSet' ? (w.status.desiredNumberScheduled ?? 0) : (w.spec.replicas ?? 1)),
            0,
          );
          const notRunning = pods.filter((p) => p.status.phase !== 'Running');
          last = `not ready: ${notReady.map((w) => `${w.kind}/${w.metadata.name} ${JSON.stringify(w.status)}`).join('; ') || 'none'}; pods not Running: ${notRunning.map((p) => `${p.metadata.name}=${p.status.phase}`).join(', ') || 'none'}; pods ${pods.length}/${expectedPods}`;
          result = { workloads, pods };
          return workloads.length > 0 && notReady.length === 0 && notRunning.length === 0 && pods.length === expectedPods;
        },
        { timeoutMs, what: `release ${release} in ${ns} to roll out`, intervalMs: 500 },
      );
    } catch (e) {
      const events = await kubectl(['get', 'events', '-n', ns, '--sort-by=.lastTimestamp'], kube).catch((x: unknown) => ({
        stdout: errorText(x),
      }));
      throw new Error(`${errorText(e)}\n${last}\n--- events ---\n${events.stdout.split('\n').slice(-25).join('\n')}`);
    }
    return result;
  }

  /** Everything namespaced that is left in ns, besides what Kubernetes itself puts in every namespace. */
  async function leftovers(ns: string): Promise<string[]> {
    const { stdout: kinds } = await kubectl(['api-resources', '--verbs=list', '--namespaced', '-o', 'name'], kube);
    const wanted = kinds
      .split('\n')
      .map((k) => k.trim())
      .filter((k) => k && !/^events(\.events\.k8s\.io)?$/.test(k));
    const { stdout } = await kubectl(['get', wanted.join(','), '-n', ns, '-o', 'json'], kube);
    return (JSON.parse(stdout) as List<Obj>).items
      .filter(
        (o) =>
          !(o.kind === 'ConfigMap' && o.metadata.name === 'kube-root-ca.crt') &&
          !(o.kind === 'ServiceAccount' && o.metadata.name === 'default'),
      )
      .map((o) => `${o.kind}/${o.metadata.name}`);
  }

  before(async function () {
    this.timeout(90 * 60_000); // a first build of the tools on a machine takes ~10 minutes
    await ensureKubeTools({ progress: (line) => console.error(line) });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lapis-chart-test-'));
    kube = await startKube();
    dockerNodes = await kube.addNodes(2, { 'lapis.dev/docker': 'true' });
    otherNodes = await kube.addNodes(1); // no Docker: the DaemonSet must leave it alone
  });

  after(async function () {
    if (kube?.external) {
      // Not our cluster: take away what this suite made (ours is gone with its temp dir).
      for (const ns of namespaces) await kube.request('DELETE', `/api/v1/namespaces/${ns}`).catch(() => undefined);
      for (const node of [...dockerNodes, ...otherNodes]) await kube.request('DELETE', `/api/v1/nodes/${node}`).catch(() => undefined);
    }
    await kube?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  describe('lint and render', function () {
    it('helm lint passes, and a value the schema does not know (a typo) is rejected', async function () {
      const values = await valuesFile('lint', testValues());
      const ok = await helm(['lint', CHART_DIR, '--strict', '-f', values], kube);
      assert.match(ok.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);

      const typo = await valuesFile('typo', merge(testValues(), { scheduler: { replcas: 3 } }));
      await rejectsWith(helm(['lint', CHART_DIR, '-f', typo], kube), /additional properties 'replcas' not allowed/);
      // A value of the wrong kind or outside its choices is rejected as well.
      await rejectsWith(
        helm(['lint', CHART_DIR, '-f', values, '--set', 'containerRuntime.backend=podman'], kube),
        /at '\/containerRuntime\/backend'/,
      );
      await rejectsWith(
        helm(['lint', CHART_DIR, '-f', values, '--set', 'scheduler.image.digest=latest'], kube),
        /at '\/scheduler\/image\/digest'/,
      );
      // The scheduler's partitions may overcommit (allocation ratios 1 to 64); anything else is refused.
      const ratios = (cpu: number) => ['--set-json', `scheduler.config.partitions=[{"name":"default","cpu_allocation_ratio":${cpu}}]`];
      await helm(['lint', CHART_DIR, '--strict', '-f', values, ...ratios(4)], kube);
      await rejectsWith(
        helm(['lint', CHART_DIR, '-f', values, ...ratios(0.5)], kube),
        /at '\/scheduler\/config\/partitions\/0\/cpu_allocation_ratio'/,
      );
    });

    it('refuses to render without a way to authenticate callers, or without a site registry', async function () {
      await assert.rejects(helmTemplate(['--set', 'imageSync.siteRegistry=https://r.example']), /callers need a way to authenticate/);
      await assert.rejects(helmTemplate(['--set', 'auth.oidc.issuer=https://iam.example']), /imageSync.siteRegistry is required/);
    });

    it('renders the standard labels, non-root read-only pods, gRPC probes and digests', async function () {
      const digest = `sha256:${'a'.repeat(64)}`;
      const out = await helmTemplate([
        '-f',
        await valuesFile('render', testValues()),
        '--set',
        `scheduler.image.digest=${digest}`,
        '--set',
        'image.registry=registry.example.org:5000',
      ]);
      const objects = parseAllDocuments(out)
        .map((d) => d.toJS() as Workload | null)
        .filter((o): o is Workload => o !== null);
      assert.ok(objects.length > 20, `rendered ${objects.length} objects`);
      for (const o of objects) {
        for (const label of [
          'app.kubernetes.io/name',
          'app.kubernetes.io/instance',
          'app.kubernetes.io/version',
          'app.kubernetes.io/component',
          'app.kubernetes.io/managed-by',
          'app.kubernetes.io/part-of',
          'helm.sh/chart',
        ]) {
          assert.ok(o.metadata.labels?.[label], `${o.kind}/${o.metadata.name} lacks label ${label}`);
        }
      }
      const workloads = objects.filter((o) => ['Deployment', 'DaemonSet', 'StatefulSet'].includes(o.kind));
      assert.deepEqual(workloads.map((w) => `${w.kind}/${w.metadata.name}`).sort(), [
        'DaemonSet/lapis-container-runtime',
        'Deployment/lapis-image-sync',
        'Deployment/lapis-occi-gateway',
        'Deployment/lapis-scheduler',
        'Deployment/lapis-tosca-orchestrator',
        'StatefulSet/lapis-nats',
      ]);
      for (const w of workloads) {
        const pod = w.spec.template.spec;
        const c = pod.containers[0] as Container;
        if (w.kind === 'DaemonSet') {
          assert.equal(
            c.securityContext?.privileged,
            true,
            'the Docker agent is privileged (loop devices, mounts, Bidirectional propagation)',
          );
          continue;
        }
        assert.equal(pod.securityContext?.runAsNonRoot, true, `${w.metadata.name}: runAsNonRoot`);
        assert.deepEqual(pod.securityContext?.seccompProfile, { type: 'RuntimeDefault' });
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${w.metadata.name}: read-only root`);
        assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
        assert.deepEqual((c.securityContext?.capabilities as { drop?: string[] } | undefined)?.drop, ['ALL']);
        if (w.kind === 'Deployment') {
          assert.ok(c.readinessProbe?.grpc?.port && c.livenessProbe?.grpc?.port, `${w.metadata.name}: native gRPC probes`);
          assert.equal(c.env?.find((e) => e.name === 'LAPIS_NATS_URL')?.value, 'nats://lapis-nats.lapis.svc:4222');
        }
      }
      const scheduler = workloads.find((w) => w.metadata.name === 'lapis-scheduler') as Workload;
      assert.equal(scheduler.spec.template.spec.containers[0]?.image, `registry.example.org:5000/lapis/scheduler@${digest}`);
      const sync = workloads.find((w) => w.metadata.name === 'lapis-image-sync') as Workload;
      assert.equal(sync.spec.template.spec.containers[0]?.image, 'registry.example.org:5000/lapis/image-sync:0.1.0');
    });

    it('k8s/ is what the chart renders (regenerate with node tools/chart-test/dist/src/render.js)', async function () {
      assert.deepEqual(
        await staleK8sFiles(),
        [],
        'k8s/ is out of date: run `npx tsc -b tools/chart-test && node tools/chart-test/dist/src/render.js`',
      );
    });
  });

  describe('server-side dry run', function () {
    it('the API server accepts every rendered manifest (both backends, bundled and external NATS, with and without NATS users and TLS, OIDC, OTLP, k8s/)', async function () {
      const ns = await createNamespace('lapis-dry-run');
      const instances = await createNamespace('lapis-dry-run-instances');
      await createNamespace(K8S_NAMESPACE);
      const base = testValues();
      const variants: Array<[string, Record<string, unknown>]> = [
        [
          'docker backend, bundled NATS with a PVC',
          merge(base, { nats: { bundled: { persistence: { enabled: true, retainOnUninstall: false } } } }),
        ],
        [
          'kubernetes backend in its own namespace, external NATS with its users and CA from Secrets, OIDC from values, OTLP, digests, NetworkPolicy clients',
          merge(base, {
            nats: { url: 'nats://nats.example.org:4222', auth: { existingSecret: 'nats-users' }, tls: { existingSecret: 'nats-tls' } },
            networkPolicy: {
              clients: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'paas' } } }],
              monitoring: [{ podSelector: { matchLabels: { app: 'prometheus' } } }],
            },
            auth: { oidc: { issuer: 'https://iam.example.org/', audience: 'lapis' } },
            telemetry: {
              tracesExporter: 'otlp',
              otlpEndpoint: 'http://otel-collector.observability:4318',
              otlpHeadersSecret: { name: 'otlp-headers' },
              resourceAttributes: 'deployment.environment=test',
            },
            containerRuntime: { backend: 'kubernetes', kubernetes: { namespace: instances, cpuMillis: 64000, memoryBytes: 274877906944 } },
            imageSync: {
              policies: { policies: [{ name: 'debian', source: 'docker.io/library/debian', tags: ['12'] }] },
              siteRegistrySecret: { name: 'registry-credentials' },
            },
            scheduler: { config: { partitions: [{ name: 'default' }] }, image: { digest: `sha256:${'b'.repeat(64)}` } },
          }),
        ],
        [
          'OIDC from an existing Secret only, components off',
          merge(base, {
            auth: { staticTokens: { tokens: [] }, oidc: { existingSecret: 'oidc' } },
            toscaOrchestrator: { enabled: false },
            occiGateway: { enabled: false },
          }),
        ],
        [
          'NATS without users, TLS or NetworkPolicies',
          merge(base, { nats: { auth: { enabled: false }, tls: { enabled: false } }, networkPolicy: { enabled: false } }),
        ],
      ];
      for (const [what, values] of variants) {
        const rendered = await helmTemplate(['-f', await valuesFile('dry-run', values)], { release: 'dry', namespace: ns });
        try {
          const { stdout } = await kubectl(['apply', '--dry-run=server', '-f', '-'], kube, { input: rendered });
          assert.match(stdout, /created \(server dry run\)/, what);
        } catch (e) {
          assert.fail(`${what}: the API server refused the rendered manifests: ${errorText(e)}`);
        }
      }
      for (const variant of K8S_VARIANTS) {
        const { stdout } = await kubectl(['apply', '--dry-run=server', '-f', path.join(K8S_DIR, variant.file)], kube);
        assert.match(stdout, /created \(server dry run\)/, variant.file);
      }
    });
  });

  describe('install, upgrade, uninstall', function () {
    it('docker backend: installs with every pod Running (the agents only on Docker nodes), upgrades to changed values, uninstalls leaving nothing', async function () {
      const ns = await createNamespace('lapis-docker');
      const release = 'lapis';
      const docker = { containerRuntime: { nodeSelector: { 'lapis.dev/docker': 'true' } } };
      const values = await valuesFile('docker', merge(testValues(), docker));
      const installed = await helm(['install', release, CHART_DIR, '-n', ns, '-f', values], kube);
      assert.match(installed.stdout, /STATUS: deployed/);
      assert.match(installed.stdout, /PRIVILEGED/, 'NOTES say what the agent gets and why');

      const { workloads, pods } = await waitRolledOut(ns, release);
      assert.deepEqual(workloads.map((w) => `${w.kind}/${w.metadata.name}`).sort(), [
        'DaemonSet/lapis-container-runtime',
        'Deployment/lapis-image-sync',
        'Deployment/lapis-occi-gateway',
        'Deployment/lapis-scheduler',
        'Deployment/lapis-tosca-orchestrator',
        'StatefulSet/lapis-nats',
      ]);
      const agents = pods.filter((p) => p.metadata.labels?.['app.kubernetes.io/component'] === 'container-runtime');
      assert.deepEqual(agents.map((p) => p.spec.nodeName).sort(), [...dockerNodes].sort(), 'one agent on each Docker node, none elsewhere');
      const agentEnv = agents[0]?.spec.containers[0]?.env ?? [];
      assert.deepEqual(agentEnv.find((e) => e.name === 'LAPIS_NODE_NAME')?.valueFrom, {
        fieldRef: { apiVersion: 'v1', fieldPath: 'spec.nodeName' },
      });
      assert.equal(pods.filter((p) => p.metadata.labels?.['app.kubernetes.io/component'] === 'scheduler').length, 2);
      const services = await list<Obj & { spec: { ports: Array<{ name: string; port: number }> } }>(
        `/api/v1/namespaces/${ns}/services?${selector(release)}`,
      );
      for (const s of services.filter((s) => !s.metadata.name.startsWith('lapis-nats'))) {
        assert.ok(
          s.spec.ports.some((p) => p.name === 'grpc'),
          `${s.metadata.name} has a port named grpc`,
        );
      }
      assert.ok(services.find((s) => s.metadata.name === 'lapis-occi-gateway')?.spec.ports.some((p) => p.name === 'http'));
      const pdbs = await list<Obj>(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets?${selector(release)}`);
      assert.deepEqual(pdbs.map((p) => p.metadata.name).sort(), [
        'lapis-image-sync',
        'lapis-occi-gateway',
        'lapis-scheduler',
        'lapis-tosca-orchestrator',
      ]);

      // Upgrade: more schedulers, an external NATS instead of the bundled one, GPUs on the agents.
      const upgraded = await valuesFile(
        'docker-upgrade',
        merge(merge(testValues(), docker), {
          scheduler: { replicas: 3 },
          nats: { url: 'nats://nats.example.org:4222' },
          containerRuntime: { docker: { gpus: 'nvidia:GPU-0:A100' } },
        }),
      );
      await helm(['upgrade', release, CHART_DIR, '-n', ns, '-f', upgraded], kube);
      const after = await waitRolledOut(ns, release);
      assert.equal(
        after.workloads.find((w) => w.kind === 'StatefulSet'),
        undefined,
        'the bundled NATS is gone',
      );
      assert.equal(after.pods.filter((p) => p.metadata.labels?.['app.kubernetes.io/component'] === 'scheduler').length, 3);
      for (const p of after.pods) {
        const env = p.spec.containers[0]?.env ?? [];
        assert.equal(
          env.find((e) => e.name === 'LAPIS_NATS_URL')?.value,
          'nats://nats.example.org:4222',
          `${p.metadata.name} uses the external NATS`,
        );
      }
      for (const p of after.pods.filter((p) => p.metadata.labels?.['app.kubernetes.io/component'] === 'container-runtime')) {
        assert.equal(p.spec.containers[0]?.env?.find((e) => e.name === 'LAPIS_GPUS')?.value, 'nvidia:GPU-0:A100');
      }
      const history = await helm(['history', release, '-n', ns, '-o', 'json'], kube);
      assert.deepEqual(
        (JSON.parse(history.stdout) as Array<{ revision: number; status: string }>).map((r) => [r.revision, r.status]),
        [
          [1, 'superseded'],
          [2, 'deployed'],
        ],
      );

      await helm(['uninstall', release, '-n', ns, '--wait', '--timeout', '90s'], kube);
      let left: string[] = [];
      await waitFor(async () => (left = await leftovers(ns)).length === 0, {
        timeoutMs: 90_000,
        what: `namespace ${ns} to be empty after helm uninstall`,
        intervalMs: 1000,
      }).catch((e: unknown) => assert.fail(`helm uninstall left: ${left.join(', ')} (${errorText(e)})`));
    });

    it('kubernetes backend in a namespace enforcing the restricted Pod Security Standard: installs, least-privilege RBAC, uninstalls leaving nothing', async function () {
      const ns = await createNamespace('lapis-k8s', {
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/enforce-version': 'latest',
      });
      const release = 'k8s';
      const values = await valuesFile('k8s', merge(testValues(), { containerRuntime: { backend: 'kubernetes' } }));
      const installed = await helm(['install', release, CHART_DIR, '-n', ns, '-f', values], kube);
      assert.match(installed.stdout, /STATUS: deployed/);
      const { workloads, pods } = await waitRolledOut(ns, release);
      assert.deepEqual(workloads.map((w) => `${w.kind}/${w.metadata.name}`).sort(), [
        'Deployment/k8s-lapis-container-runtime',
        'Deployment/k8s-lapis-image-sync',
        'Deployment/k8s-lapis-occi-gateway',
        'Deployment/k8s-lapis-scheduler',
        'Deployment/k8s-lapis-tosca-orchestrator',
        'StatefulSet/k8s-lapis-nats',
      ]);
      assert.equal(pods.length, 10); // runtime 1, image-sync 2, occi 2, scheduler 2, tosca 2, nats 1

      // The namespace does enforce the policy: the Docker agent's pod (privileged, root, host paths) is refused there.
      const dockerChart = parseAllDocuments(
        await helmTemplate(['-f', await valuesFile('psa', testValues())], { release: 'psa', namespace: ns }),
      )
        .map((d) => d.toJS() as Workload | null)
        .find((o) => o?.kind === 'DaemonSet') as Workload & { spec: { template: { metadata: Meta } } };
      const agentPod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'psa-agent', namespace: ns },
        spec: { ...dockerChart.spec.template.spec, serviceAccountName: 'default' },
      };
      await rejectsWith(
        kubectl(['create', '--dry-run=server', '-f', '-'], kube, { input: JSON.stringify(agentPod) }),
        /violates PodSecurity "restricted:latest"/,
      );

      // Only the runtime's ServiceAccount may touch the API, and only pods and PVCs in its namespace.
      const can = async (sa: string, verb: string, resource: string, namespace = ns): Promise<boolean> => {
        const [kind, sub] = resource.split('/');
        const args = [
          'auth',
          'can-i',
          verb,
          kind as string,
          ...(sub ? [`--subresource=${sub}`] : []),
          '-n',
          namespace,
          `--as=system:serviceaccount:${ns}:${sa}`,
        ];
        try {
          return (await kubectl(args, kube)).stdout.trim() === 'yes';
        } catch (e) {
          if (e instanceof CommandError && e.stdout.trim() === 'no') return false;
          throw e;
        }
      };
      const runtime = 'k8s-lapis-container-runtime';
      for (const [verb, resource] of [
        ['create', 'pods'],
        ['watch', 'pods'],
        ['delete', 'pods'],
        ['get', 'pods/log'],
        ['create', 'secrets'],
        ['create', 'persistentvolumeclaims'],
        ['list', 'persistentvolumeclaims'],
      ] as const) {
        assert.equal(await can(runtime, verb, resource), true, `runtime may ${verb} ${resource}`);
      }
      for (const [verb, resource] of [
        ['get', 'secrets'],
        ['create', 'deployments'],
        ['create', 'pods/exec'],
        ['list', 'nodes'],
        ['create', 'roles'],
        ['create', 'configmaps'],
        ['list', 'configmaps'],
        ['list', 'secrets'],
      ] as const) {
        assert.equal(await can(runtime, verb, resource), false, `runtime may not ${verb} ${resource}`);
      }
      assert.equal(await can(runtime, 'create', 'pods', 'default'), false, 'nor create pods outside its namespace');
      assert.equal(await can('k8s-lapis-scheduler', 'list', 'pods'), false, 'the scheduler has no API rights');

      await helm(['uninstall', release, '-n', ns, '--wait', '--timeout', '90s'], kube);
      let left: string[] = [];
      await waitFor(async () => (left = await leftovers(ns)).length === 0, {
        timeoutMs: 90_000,
        what: `namespace ${ns} to be empty after helm uninstall`,
        intervalMs: 1000,
      }).catch((e: unknown) => assert.fail(`helm uninstall left: ${left.join(', ')} (${errorText(e)})`));
      const roles = await list<Obj>(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`);
      assert.deepEqual(roles, []);
    });
  });
});
