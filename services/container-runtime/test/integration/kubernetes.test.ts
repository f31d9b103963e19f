// The Kubernetes backend against a real control plane (etcd, apiserver, controller manager,
// scheduler) whose nodes are kwok's: kwok marks scheduled pods Running, nothing runs in them.
// GPUs: the node's inventory lists a made-up GPU (no GPU here); what is checked is the Pod's
// nvidia.com/gpu limit, which is all the backend decides.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { unique, until } from '@lapis/platform/testing';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import { startKube, type Kube } from '@lapis/testenv';
import { KUBE_LABEL, podName } from '../../src/adapters/kubernetes';
import { baseSpec, expectCode, rpc, startRuntime, type Client, type Runtime } from '../harness';

interface Pod {
  metadata: { name: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: {
    nodeName?: string;
    tolerations?: Array<{ key: string }>;
    containers: Array<{ resources: { requests: Record<string, string>; limits: Record<string, string> }; env: Array<{ name: string; value: string }> }>;
  };
  status: { phase: string };
}

describe('kubernetes backend (kwok nodes)', function () {
  this.timeout(180_000);
  let kube: Kube;
  let rt: Runtime;
  let alice: Client;
  let nodes: string[];
  const namespace = `lapis-test-${randomBytes(4).toString('hex')}`;
  const node = unique('kube-node').toLowerCase();
  const env = () => ({
    LAPIS_RUNTIME_BACKEND: 'kubernetes',
    LAPIS_KUBECONFIG: kube.kubeconfig,
    LAPIS_KUBE_NAMESPACE: namespace,
    LAPIS_KUBE_TOLERATE_KWOK: 'true',
    LAPIS_GPUS: 'nvidia:GPU-kwok-fake-0:A100',
  });

  const pod = async (instanceId: string): Promise<Pod | undefined> => {
    try {
      return await kube.request<Pod>('GET', `/api/v1/namespaces/${namespace}/pods/${podName(instanceId)}`);
    } catch (error) {
      if ((error as { status?: number }).status === 404) return undefined;
      throw error;
    }
  };
  const create = async (name: string, extra: Record<string, unknown> = {}): Promise<Instance> =>
    ((await rpc(alice, alice.createInstance, { instanceId: '', spec: baseSpec(name, extra), preemptible: false, requestId: '' })) as { instance: Instance }).instance;
  const get = async (id: string): Promise<Instance> => ((await rpc(alice, alice.getInstance, { instanceId: id })) as { instance: Instance }).instance;

  before(async () => {
    kube = await startKube();
    // A node with GPUs to schedule on (kwok simulates the device plugin's count, nothing else).
    nodes = await kube.addNodes(1, {}, { allocatable: { cpu: '32', memory: '256Gi', pods: '110', 'nvidia.com/gpu': '4' } });
    await kube.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } } });
    await until(
      () => kube.request('GET', `/api/v1/namespaces/${namespace}/serviceaccounts/default`).then(() => true, () => false),
      'the namespace default service account',
      30_000,
    );
    rt = await startRuntime({ node, env: env(), docker: false });
    alice = rt.client('alice');
  });

  after(async () => {
    if (rt) {
      const admin = { user: 'root', project: '', admin: true };
      for (const i of await rt.agent.listInstances(admin, { project: '', state: 0, node }).catch(() => [])) {
        await rt.agent.deleteInstance(i.id, 0, '', admin).catch(() => undefined);
      }
      await rt.stop();
    }
    await kube?.stop();
  });

  it('runs an instance as a Pod with the flavor resources and Lapis labels, and deletes it', async () => {
    const instance = await create('web', { sshPublicKeys: ['ssh-ed25519 AAAAtest alice@lapis'], userData: Buffer.from('#cloud-config\n') });
    assert.equal(instance.state, InstanceState.RUNNING);
    assert.equal(instance.backendId, podName(instance.id));
    const p = (await pod(instance.id))!;
    assert.ok(p, 'the pod exists');
    assert.equal(p.status.phase, 'Running');
    assert.ok(nodes.includes(p.spec.nodeName ?? ''), `scheduled on a kwok node, not ${p.spec.nodeName}`);
    assert.equal(p.metadata.labels[KUBE_LABEL.instanceId], instance.id);
    assert.equal(p.metadata.labels[KUBE_LABEL.project], instance.project);
    assert.equal(p.metadata.labels[KUBE_LABEL.node], node);
    assert.equal(p.metadata.labels[KUBE_LABEL.flavor], 'm1.tiny');
    const resources = p.spec.containers[0]!.resources;
    assert.deepEqual(resources.limits, resources.requests);
    // m1.tiny: 0.5 CPU, 256Mi
    assert.equal(resources.limits.cpu, '500m');
    assert.equal(resources.limits.memory, String(256 * 2 ** 20));
    assert.equal(resources.limits['nvidia.com/gpu'], undefined);
    assert.ok(p.spec.tolerations?.some((t) => t.key === 'kwok.x-k8s.io/node'));
    const envs = Object.fromEntries(p.spec.containers[0]!.env.map((e) => [e.name, e.value]));
    assert.equal(envs.LAPIS_INSTANCE_ID, instance.id);
    const cm = await kube.request<{ data: Record<string, string>; binaryData: Record<string, string> }>('GET', `/api/v1/namespaces/${namespace}/configmaps/${podName(instance.id)}-metadata`);
    assert.equal(cm.data['ssh-keys'], 'ssh-ed25519 AAAAtest alice@lapis');
    assert.equal(Buffer.from(cm.binaryData['user-data']!, 'base64').toString(), '#cloud-config\n');

    const deleted = ((await rpc(alice, alice.deleteInstance, { instanceId: instance.id, timeout: undefined, requestId: '' })) as { instance: Instance }).instance;
    assert.equal(deleted.state, InstanceState.DELETED);
    assert.equal(await pod(instance.id), undefined, 'the pod is gone');
  });

  it('stops an instance by deleting its pod: STOPPED (not "removed outside Lapis"), and it cannot start again', async () => {
    const instance = await create('stopper');
    const stopped = ((await rpc(alice, alice.stopInstance, { instanceId: instance.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' })) as { instance: Instance }).instance;
    assert.equal(stopped.state, InstanceState.STOPPED);
    assert.equal(await pod(instance.id), undefined);
    // The watch saw the deletion; the agent's record is still STOPPED afterwards.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await get(instance.id)).state, InstanceState.STOPPED);
    await expectCode(rpc(alice, alice.startInstance, { instanceId: instance.id, requestId: '' }), status.FAILED_PRECONDITION, /cannot start again/);
    await rpc(alice, alice.deleteInstance, { instanceId: instance.id, timeout: undefined, requestId: '' });
  });

  it('gives a GPU flavor nvidia.com/gpu limits', async () => {
    const instance = await create('gpu', { flavor: 'g1.small' });
    assert.equal(instance.state, InstanceState.RUNNING);
    const resources = (await pod(instance.id))!.spec.containers[0]!.resources;
    assert.equal(resources.limits['nvidia.com/gpu'], '1');
    assert.equal(resources.requests['nvidia.com/gpu'], '1');
    await rpc(alice, alice.deleteInstance, { instanceId: instance.id, timeout: undefined, requestId: '' });
  });

  it('refuses to attach a volume to a running pod, saying why', async () => {
    const instance = await create('novol');
    await expectCode(
      rpc(alice, alice.attachVolume, { volumeId: 'v-anything', instanceId: instance.id, mountPath: '/mnt/data', readOnly: false, requestId: '' }),
      status.FAILED_PRECONDITION,
      /Pod's volumes are fixed when it is created/,
    );
    await rpc(alice, alice.deleteInstance, { instanceId: instance.id, timeout: undefined, requestId: '' });
  });

  it('marks an instance whose pod is deleted outside Lapis (pod watch)', async () => {
    const instance = await create('victim');
    await kube.request('DELETE', `/api/v1/namespaces/${namespace}/pods/${podName(instance.id)}?gracePeriodSeconds=0`);
    const marked = await until(async () => {
      const i = await get(instance.id);
      return i.state === InstanceState.ERROR && i;
    }, 'the instance marked ERROR', 30_000);
    assert.match(marked.stateReason, /removed outside Lapis/);
    await rpc(alice, alice.deleteInstance, { instanceId: instance.id, timeout: undefined, requestId: '' });
  });

  it('records a pod that failed as ERROR with its exit code (pod watch)', async () => {
    const instance = await create('crasher');
    // kwok runs nothing, so the container's end is written as the kubelet would write it.
    const terminated = { exitCode: 3, reason: 'Error', startedAt: new Date().toISOString(), finishedAt: new Date().toISOString() };
    await kube.request('PATCH', `/api/v1/namespaces/${namespace}/pods/${podName(instance.id)}/status`, {
      contentType: 'application/strategic-merge-patch+json',
      body: { status: { phase: 'Failed', containerStatuses: [{ name: 'instance', image: 'lapis/busybox:testenv', imageID: '', ready: false, restartCount: 0, state: { terminated } }] } },
    });
    const failed = await until(async () => {
      const i = await get(instance.id);
      return i.state === InstanceState.ERROR && i;
    }, 'the instance marked ERROR', 30_000);
    assert.equal(failed.stateReason, 'exited with code 3');
    assert.equal(failed.exitCode, 3);
    await rpc(alice, alice.deleteInstance, { instanceId: instance.id, timeout: undefined, requestId: '' });
    assert.equal(await pod(instance.id), undefined);
  });

  it('re-adopts its pods after an agent restart (even one the store forgot), and marks the ones that vanished meanwhile', async () => {
    const kept = await create('kept');
    const lost = await create('lost');
    const orphan = await create('orphan');
    const stateDir = rt.stateDir;
    // The store forgets one: the next agent adopts its pod from the labels and annotations alone.
    await rt.agent.store.instances.delete(orphan.id);
    await rt.stop();
    await kube.request('DELETE', `/api/v1/namespaces/${namespace}/pods/${podName(lost.id)}?gracePeriodSeconds=0`);
    await until(async () => (await pod(lost.id)) === undefined, 'the lost pod gone', 30_000);
    rt = await startRuntime({ node, stateDir, env: env(), docker: false });
    alice = rt.client('alice');
    // The agent reconciled on start; a second pass finds nothing more to do.
    const report = await rt.agent.reconcile();
    assert.deepEqual(report.removedContainers, []);
    assert.deepEqual(report.adopted, []);
    const again = await get(kept.id);
    assert.equal(again.state, InstanceState.RUNNING);
    assert.equal(again.backendId, podName(kept.id));
    assert.equal((await pod(kept.id))?.status.phase, 'Running');
    const adopted = await get(orphan.id);
    assert.equal(adopted.state, InstanceState.RUNNING);
    assert.equal(adopted.spec?.name, 'orphan');
    assert.equal(adopted.project, orphan.project);
    assert.equal(adopted.backendId, podName(orphan.id));
    await rpc(alice, alice.deleteInstance, { instanceId: orphan.id, timeout: undefined, requestId: '' });
    assert.equal(await pod(orphan.id), undefined);
    const gone = await get(lost.id);
    assert.equal(gone.state, InstanceState.ERROR);
    assert.match(gone.stateReason, /vanished/);
    assert.equal(gone.backendId, '');
    await rpc(alice, alice.deleteInstance, { instanceId: kept.id, timeout: undefined, requestId: '' });
    assert.equal(await pod(kept.id), undefined);
  });
});
