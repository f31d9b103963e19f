// A lost node with real processes: the scheduler and two node agents. The agent running an
// instance that restarts on failure is killed (kill -9: its container or pod stays); the
// scheduler finds the node lost, fences it and places the instance again on the other node,
// which takes it over. When the killed agent starts again it removes its copy: the instance ran
// on, once. Twice: agents sharing one Docker engine, and agents of the kubernetes backend each
// pinned to a kwok node of a real control plane (kwok marks pods Running; nothing runs in them).
import { strict as assert } from 'node:assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { createClient } from '@lapis/platform';
import { natsUrl, spawnService, staticTokenFile, unique, until, type ServiceProcess } from '@lapis/platform/testing';
import { InstanceSpec } from '@lapis/proto/lapis/common/v1/common';
import { ClaimState, type GetClaimResponse, type SubmitClaimResponse } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import { BASE_IMAGE, docker, ensureBaseImage, sharedDocker, startKube, type Kube } from '@lapis/testenv';
import { REPO_ROOT } from '../src/mesh';

const HEARTBEAT_MS = '500';
const main = (service: string) => join(REPO_ROOT, 'services', service, 'dist/src/main.js');

/** Where agents run their instances, and how many copies of an instance exist there. */
interface Backend {
  env(node: string): Record<string, string>;
  copies(instanceId: string): Promise<number>;
}

describe('a lost node, real processes: the instance moves, the node is fenced, it runs once', function () {
  this.timeout(300_000);
  const tokens = staticTokenFile();
  // Made in before(): the test NATS is started by the mocha hooks, after the files load.
  let common: Record<string, string> = {};
  const processes: ServiceProcess[] = [];
  let scheduler: ServiceProcess;
  let kube: Kube | undefined;

  before(async () => {
    common = {
      LAPIS_NATS_URL: natsUrl(),
      LAPIS_STATIC_TOKENS_FILE: tokens,
      LAPIS_FLAVORS_FILE: join(REPO_ROOT, 'config/flavors.yaml'),
      LAPIS_HEARTBEAT_MS: HEARTBEAT_MS,
      LOG_LEVEL: 'info',
    };
    await ensureBaseImage();
    const prefix = unique('fence').toLowerCase();
    scheduler = await spawnService(
      'scheduler',
      main('scheduler'),
      {
        ...common,
        LAPIS_SCHEDULER_BUCKET_PREFIX: prefix,
        LAPIS_SCHEDULER_CONSUMER_PREFIX: prefix,
        LAPIS_SCHEDULER_CYCLE_MS: '200',
        LAPIS_SCHEDULER_NODE_LOST_MS: '3000',
      },
      60_000,
    );
    processes.push(scheduler);
  });
  after(async () => {
    for (const p of processes.reverse()) await p.stop(10_000).catch(() => undefined);
    await kube?.stop();
  });

  /** Two agents of `backend` in a partition of their own; one is killed, then started again. */
  async function loseANode(backend: Backend, nodes: string[]): Promise<void> {
    const partition = unique('fence').toLowerCase();
    const startAgent = async (node: string, stateDir: string) => {
      const env = {
        ...common,
        LAPIS_NODE_NAME: node,
        LAPIS_NODE_PARTITION: partition,
        LAPIS_STATE_DIR: stateDir,
        LAPIS_STOP_TIMEOUT_S: '1',
        LAPIS_ALLOW_UNTRUSTED_IMAGES: 'true',
        LAPIS_INFINIBAND_DIR: join(stateDir, 'no-infiniband'),
        ...backend.env(node),
      };
      const p = await spawnService('container-runtime', main('container-runtime'), env, 60_000);
      processes.push(p);
      return p;
    };
    const dirs = nodes.map(() => mkdtempSync(join(tmpdir(), 'lapis-fence-')));
    const agents = [await startAgent(nodes[0]!, dirs[0]!), await startAgent(nodes[1]!, dirs[1]!)];
    const alice = createClient(SchedulerServiceClient, scheduler.address, { token: 'alice-token', project: 'physics' });
    const unary = <Res>(invoke: (m: Metadata, cb: (e: ServiceError | null, r: Res) => void) => unknown) =>
      new Promise<Res>((resolve, reject) => invoke(new Metadata(), (e, r) => (e ? reject(e) : resolve(r))));
    const claim = async (id: string) => (await unary<GetClaimResponse>((m, cb) => alice.getClaim({ claimId: id }, m, cb))).claim!;
    const copies = backend.copies;
    try {
      const spec = InstanceSpec.fromPartial({
        name: 'survivor',
        flavor: 'm1.tiny',
        image: BASE_IMAGE,
        command: ['sleep', '3600'],
        restartOnFailure: true,
      });
      const submitted = await unary<SubmitClaimResponse>((m, cb) =>
        alice.submitClaim(
          { spec, preemptible: false, onPreemption: 0, partition, backend: 0, antiAffinityGroup: '', qos: '', requestId: '' },
          m,
          cb,
        ),
      );
      const id = submitted.claim!.id;
      const first = await until(
        async () => {
          const c = await claim(id);
          return c.state === ClaimState.RUNNING ? c : undefined;
        },
        'the instance running',
        90_000,
      );
      const lost = nodes.indexOf(first.node);
      assert.ok(lost >= 0, `placed on one of the two nodes: ${first.node}`);
      const other = nodes[1 - lost]!;

      await agents[lost]!.kill();
      const moved = await until(
        async () => {
          const c = await claim(id);
          return c.state === ClaimState.RUNNING && c.node === other ? c : undefined;
        },
        'the instance running on the other node',
        90_000,
      );
      assert.equal(moved.placements, 2);
      assert.equal(await copies(id), 2, 'the killed agent’s copy is still there: its node is fenced, not reached');

      agents[lost] = await startAgent(nodes[lost]!, dirs[lost]!);
      await until(async () => ((await copies(id)) === 1 ? true : undefined), 'one copy left once the agent is back', 60_000);
      const after = await claim(id);
      assert.equal(after.state, ClaimState.RUNNING);
      assert.equal(after.node, other);
      await unary((m, cb) => alice.cancelClaim({ claimId: id, requestId: '' }, m, cb));
      await until(async () => ((await copies(id)) === 0 ? true : undefined), 'nothing left after the cancel', 60_000);
    } finally {
      alice.close();
    }
  }

  it('agents sharing one Docker engine: moves a restartable instance off a killed agent’s node and leaves one copy when the agent is back', async () => {
    const socket = (await sharedDocker()).socketPath;
    await loseANode(
      {
        env: () => ({ LAPIS_DOCKER_SOCKET: socket }),
        copies: async (id) => (await docker(['ps', '-q', '--filter', `label=lapis.instance-id=${id}`])).split('\n').filter(Boolean).length,
      },
      [unique('node-a').toLowerCase(), unique('node-b').toLowerCase()],
    );
  });

  it('agents of the kubernetes backend, one a kwok node: the instance’s pod moves to the other node, and the copy goes when the agent is back', async () => {
    kube = await startKube();
    const cluster = kube;
    const kwokNodes = await cluster.addNodes(2);
    const namespace = unique('fence').toLowerCase().replace(/_/g, '-');
    await cluster.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } } });
    // Pods are admitted once the namespace has its default service account.
    await until(
      () =>
        cluster.request('GET', `/api/v1/namespaces/${namespace}/serviceaccounts/default`).then(
          () => true,
          () => undefined,
        ),
      'the namespace default service account',
      30_000,
    );
    // Lapis node name -> the kwok node its agent's pods must be bound to.
    const nodeOf = new Map<string, string>();
    await loseANode(
      {
        env: (node) => ({
          LAPIS_RUNTIME_BACKEND: 'kubernetes',
          LAPIS_KUBECONFIG: cluster.kubeconfig,
          LAPIS_KUBE_NAMESPACE: namespace,
          LAPIS_KUBE_TOLERATE_KWOK: 'true',
          LAPIS_KUBE_NODE: nodeOf.get(node)!,
        }),
        copies: async (id) => {
          const pods = await cluster.request<{ items: Pod[] }>(
            'GET',
            `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(`lapis.dev/instance-id=${id}`)}`,
          );
          const live = pods.items.filter((p) => !p.metadata.deletionTimestamp);
          for (const pod of live) {
            const expected = nodeOf.get(pod.metadata.labels['lapis.dev/node'] ?? '');
            assert.equal(pod.spec.nodeName, expected, `pod ${pod.metadata.name} bound to its agent's kwok node`);
          }
          return live.length;
        },
      },
      kwokNodes.map((kwokNode, i) => {
        const node = unique(`kwok-${i}`).toLowerCase();
        nodeOf.set(node, kwokNode);
        return node;
      }),
    );
  });
});

interface Pod {
  metadata: { name: string; labels: Record<string, string>; deletionTimestamp?: string };
  spec: { nodeName?: string };
}
