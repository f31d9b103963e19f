// The Kubernetes backend against a real control plane (etcd, apiserver, controller manager,
// scheduler) whose nodes are kwok's: kwok marks scheduled pods Running, nothing runs in them.
// GPUs: the node's inventory lists a made-up GPU (no GPU here); what is checked is the Pod's
// nvidia.com/gpu limit, which is all the backend decides.
// Volumes: the control plane has no storage provisioner, so a volume's claim (of a StorageClass
// nobody provisions) stays Pending until the test makes a matching hostPath PersistentVolume,
// pre-bound to the claim (claimRef) so the controller manager's binder binds it at once.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { unique, until } from '@lapis/platform/testing';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { type Instance, type Volume, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { startKube, type Kube } from '@lapis/testenv';
import { claimName, KUBE_LABEL, podName } from '../../src/adapters/kubernetes-names';
import { adminOf, baseSpec, expectCode, FLAVORS, recordEvents, rpc, startRuntime, type Client, type Runtime } from '../harness';
import { networkCases } from './kubernetes-networks.cases';
import { suspendCases } from './kubernetes-suspend.cases';
import { volumeCases } from './kubernetes-volumes.cases';

export interface Pod {
  metadata: { name: string; uid: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: {
    nodeName?: string;
    tolerations?: Array<{ key: string }>;
    securityContext?: { seccompProfile?: { type: string } };
    hostUsers?: boolean;
    containers: Array<{
      securityContext?: {
        privileged?: boolean;
        allowPrivilegeEscalation?: boolean;
        readOnlyRootFilesystem?: boolean;
        capabilities?: { drop?: string[]; add?: string[] };
      };
      resources: { requests: Record<string, string>; limits: Record<string, string> };
      env: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }>;
      volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
    }>;
    volumes: Array<{
      name: string;
      persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
      secret?: { secretName: string; defaultMode?: number };
      emptyDir?: { medium?: string };
    }>;
  };
  status: { phase: string };
}

export interface Claim {
  metadata: { name: string; labels: Record<string, string>; annotations: Record<string, string>; deletionTimestamp?: string };
  spec: { accessModes: string[]; storageClassName?: string; resources: { requests: Record<string, string> }; volumeName?: string };
  status: { phase: string };
}

/** The handles and helpers the cases in other files get. */
export type KubeCase = {
  kube: Kube;
  rt: Runtime;
  alice: Client;
  nodes: string[];
  namespace: string;
  storageClass: string;
  node: string;
  read: <T>(path: string) => Promise<T | undefined>;
  pod: (instanceId: string) => Promise<Pod | undefined>;
  create: (name: string, extra?: Record<string, unknown>) => Promise<Instance>;
  get: (id: string) => Promise<Instance>;
  getVolume: (id: string) => Promise<Volume>;
  remove: (id: string) => Promise<unknown>;
  claim: (volumeId: string) => Promise<Claim | undefined>;
  newVolume: (name: string, sizeBytes?: number) => Promise<Volume>;
  makePersistentVolume: (volumeId?: string, sizeBytes?: number) => Promise<string>;
  boundVolume: (name: string) => Promise<Volume>;
  MiB: number;
};

describe('kubernetes backend (kwok nodes)', function () {
  this.timeout(180_000);
  let kube: Kube;
  let rt: Runtime;
  let alice: Client;
  let nodes: string[];
  const namespace = `lapis-test-${randomBytes(4).toString('hex')}`;
  // A class no provisioner serves: claims bind only to the PersistentVolumes the tests make.
  const storageClass = `lapis-test-${randomBytes(4).toString('hex')}`;
  const volumesMade: string[] = [];
  const node = unique('kube-node').toLowerCase();
  const env = () => ({
    LAPIS_RUNTIME_BACKEND: 'kubernetes',
    LAPIS_KUBECONFIG: kube.kubeconfig,
    LAPIS_KUBE_NAMESPACE: namespace,
    LAPIS_KUBE_TOLERATE_KWOK: 'true',
    LAPIS_KUBE_STORAGE_CLASS: storageClass,
    LAPIS_GPUS: 'nvidia:GPU-kwok-fake-0:A100',
    LAPIS_FLAVORS_FILE: flavorsFile,
  });
  // The repository's flavors and one an admin gave NET_RAW and a read-only root.
  const flavorsFile = join(mkdtempSync(join(tmpdir(), 'lapis-kube-flavors-')), 'flavors.yaml');
  writeFileSync(
    flavorsFile,
    `${readFileSync(FLAVORS, 'utf8')}\n  - { name: ro.net, cpus: 0.5, memory: 256Mi, capabilities: [NET_RAW], read_only_root: true }\n`,
  );
  const MiB = 2 ** 20;

  /** The object at `path`, undefined when the API server answers 404. */
  const read = async <T>(path: string): Promise<T | undefined> => {
    try {
      return await kube.request<T>('GET', `/api/v1/namespaces/${namespace}/${path}`);
    } catch (error) {
      if ((error as { status?: number }).status === 404) return undefined;
      throw error;
    }
  };
  const pod = (instanceId: string) => read<Pod>(`pods/${podName(instanceId)}`);
  const create = async (name: string, extra: Record<string, unknown> = {}): Promise<Instance> =>
    (
      (await rpc(adminOf(alice), adminOf(alice).createInstance, {
        instanceId: '',
        spec: baseSpec(name, extra),
        preemptible: false,
        requestId: '',
      })) as { instance: Instance }
    ).instance;
  const get = async (id: string): Promise<Instance> =>
    ((await rpc(alice, alice.getInstance, { instanceId: id })) as { instance: Instance }).instance;
  const getVolume = async (id: string): Promise<Volume> =>
    ((await rpc(alice, alice.getVolume, { volumeId: id })) as { volume: Volume }).volume;
  const remove = (id: string) => rpc(alice, alice.deleteInstance, { instanceId: id, timeout: undefined, requestId: '' });
  const claim = (volumeId: string) => read<Claim>(`persistentvolumeclaims/${claimName(volumeId)}`);
  const newVolume = async (name: string, sizeBytes = 64 * MiB): Promise<Volume> =>
    ((await rpc(alice, alice.createVolume, { name, sizeBytes, filesystem: '', node: '', labels: {}, requestId: '' })) as { volume: Volume })
      .volume;
  /**
   * A hostPath PersistentVolume of the test's class (no provisioner here): pre-bound to the
   * volume's claim when given one (the binder binds it at its next pass over Pending claims),
   * else free for the next claim of the class (bound the moment that claim is made).
   */
  const makePersistentVolume = async (volumeId?: string, sizeBytes = 64 * MiB): Promise<string> => {
    const name = `pv-${volumeId ?? randomBytes(6).toString('hex')}`.toLowerCase();
    await kube.request('POST', '/api/v1/persistentvolumes', {
      body: {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name },
        spec: {
          capacity: { storage: String(sizeBytes) },
          accessModes: ['ReadWriteOnce'],
          storageClassName: storageClass,
          persistentVolumeReclaimPolicy: 'Retain',
          // kwok runs nothing, so nothing is ever made at this path.
          hostPath: { path: `/tmp/lapis-kwok-${name}`, type: 'DirectoryOrCreate' },
          ...(volumeId ? { claimRef: { namespace, name: claimName(volumeId) } } : {}),
        },
      },
    });
    volumesMade.push(name);
    return name;
  };
  /** A volume whose claim is Bound (to a PersistentVolume made for it first; no other claim of the class is Pending then): AVAILABLE. */
  const boundVolume = async (name: string): Promise<Volume> => {
    await makePersistentVolume();
    const volume = await newVolume(name);
    return until(
      async () => {
        const v = await getVolume(volume.id);
        return v.state === VolumeState.AVAILABLE && v;
      },
      `volume ${volume.id} AVAILABLE (its claim Bound)`,
      60_000,
    );
  };

  before(async () => {
    kube = await startKube();
    // A node with GPUs to schedule on (kwok simulates the device plugin's count, nothing else).
    nodes = await kube.addNodes(1, {}, { allocatable: { cpu: '32', memory: '256Gi', pods: '110', 'nvidia.com/gpu': '4' } });
    await kube.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } } });
    await until(
      () =>
        kube.request('GET', `/api/v1/namespaces/${namespace}/serviceaccounts/default`).then(
          () => true,
          () => false,
        ),
      'the namespace default service account',
      30_000,
    );
    rt = await startRuntime({ node, env: env(), docker: false });
    alice = rt.client('alice');
  });

  after(async () => {
    if (rt) {
      const admin = { user: 'root', project: '', admin: true };
      for (const i of await rt.agent.instances.list(admin, { project: '', state: 0, node }).catch(() => [])) {
        await rt.agent.instances.delete(i.id, 0, '', admin).catch(() => undefined);
      }
      for (const v of await rt.agent.volumes.list(admin, { project: '', state: 0, instanceId: '' }).catch(() => [])) {
        if (v.node === node) await rt.agent.volumes.delete(v.id, '', admin).catch(() => undefined);
      }
      await rt.stop();
      rmSync(rt.stateDir, { recursive: true, force: true });
    }
    for (const pv of volumesMade) await kube?.request('DELETE', `/api/v1/persistentvolumes/${pv}`).catch(() => undefined);
    await kube?.stop();
  });

  /** What the volume cases (kubernetes-volumes.cases.ts) use, read when each case runs. */
  const t = {
    get kube() {
      return kube;
    },
    get rt() {
      return rt;
    },
    get alice() {
      return alice;
    },
    get nodes() {
      return nodes;
    },
    namespace,
    storageClass,
    node,
    read,
    pod,
    create,
    get,
    getVolume,
    remove,
    claim,
    newVolume,
    makePersistentVolume,
    boundVolume,
    MiB,
  };
  volumeCases(t);
  suspendCases(t);
  networkCases(t);

  it('runs an instance as a Pod with the flavor resources and Lapis labels, its secrets in a Secret only, and deletes it', async () => {
    const canary = `canary-${randomBytes(6).toString('hex')}`;
    const instance = await create('web', {
      sshPublicKeys: ['ssh-ed25519 AAAAtest alice@lapis'],
      userData: Buffer.from(`#cloud-config\n# ${canary}\n`),
      environment: { API_KEY: canary },
    });
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
    const envs = Object.fromEntries(p.spec.containers[0]!.env.map((e) => [e.name, e]));
    assert.equal(envs.LAPIS_INSTANCE_ID?.value, instance.id);
    // Secrets are in no label, annotation or value of the pod spec: anyone who may read pods reads those.
    const secretName = `${podName(instance.id)}-metadata`;
    assert.ok(!JSON.stringify(p).includes(canary), 'the pod carries no secret');
    for (const value of Object.values(p.metadata.annotations))
      assert.ok(!Buffer.from(value, 'base64').toString('latin1').includes(canary), 'no secret in an annotation');
    for (const name of ['API_KEY', 'LAPIS_USER_DATA', 'LAPIS_SSH_PUBLIC_KEYS']) {
      assert.deepEqual(envs[name], { name, valueFrom: { secretKeyRef: { name: secretName, key: `env.${name}` } } });
    }
    assert.deepEqual(p.spec.volumes.find((v) => v.name === 'lapis-metadata')?.secret?.secretName, secretName);
    // The node's storage is not used: nothing is mounted or made under the state dir (the agent runs as non-root there).
    assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(rt.stateDir), 'no mount under the state dir');
    assert.deepEqual(readdirSync(join(rt.stateDir, 'instances')), []);
    const secret = (await read<{ data: Record<string, string> }>(`secrets/${secretName}`))!;
    const decoded = Object.fromEntries(Object.entries(secret.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
    assert.equal(decoded['ssh-keys'], 'ssh-ed25519 AAAAtest alice@lapis');
    assert.equal(decoded['user-data'], `#cloud-config\n# ${canary}\n`);
    assert.equal(decoded['env.API_KEY'], canary);
    assert.equal(await read(`configmaps/${secretName}`), undefined, 'no ConfigMap holds them');

    const deleted = (
      (await rpc(alice, alice.deleteInstance, { instanceId: instance.id, timeout: undefined, requestId: '' })) as { instance: Instance }
    ).instance;
    assert.equal(deleted.state, InstanceState.DELETED);
    assert.equal(await pod(instance.id), undefined, 'the pod is gone');
    assert.equal(await read(`secrets/${secretName}`), undefined, 'its Secret is gone');
  });

  it('limits the Pod as Docker limits a container: capabilities, no privilege escalation, RuntimeDefault seccomp; a flavor adds capabilities and a read-only root, also in a pod made anew', async () => {
    const DEFAULT = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'NET_BIND_SERVICE', 'SETGID', 'SETUID', 'SYS_CHROOT'];
    const least = await create('least');
    const plain = (await pod(least.id))!;
    const sc = plain.spec.containers[0]!.securityContext!;
    assert.deepEqual(sc.capabilities?.drop, ['ALL']);
    assert.deepEqual([...(sc.capabilities?.add ?? [])].sort(), DEFAULT);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.equal(sc.privileged, false);
    assert.equal(sc.readOnlyRootFilesystem, false);
    assert.equal(plain.spec.securityContext?.seccompProfile?.type, 'RuntimeDefault');
    assert.equal(plain.spec.hostUsers, undefined, 'the host user namespace unless LAPIS_KUBE_USER_NAMESPACES');

    const instance = await create('ro-net', { flavor: 'ro.net' });
    const check = (p: Pod) => {
      const c = p.spec.containers[0]!;
      assert.deepEqual([...(c.securityContext?.capabilities?.add ?? [])].sort(), [...DEFAULT, 'NET_RAW'].sort());
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
      assert.deepEqual(
        c.volumeMounts.filter((m) => m.name.startsWith('writable-')).map((m) => m.mountPath),
        ['/tmp', '/run'],
      );
      assert.ok(p.spec.volumes.filter((v) => v.name.startsWith('writable-')).every((v) => v.emptyDir?.medium === 'Memory'));
    };
    check((await pod(instance.id))!);
    await rpc(alice, alice.rebootInstance, { instanceId: instance.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
    check((await pod(instance.id))!);
    await remove(least.id);
    await remove(instance.id);
  });

  it('stops an instance by deleting its pod: STOPPED (not "removed outside Lapis"); start makes the pod anew', async () => {
    const instance = await create('stopper');
    const first = (await pod(instance.id))!.metadata.uid;
    const stopped = (
      (await rpc(alice, alice.stopInstance, { instanceId: instance.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' })) as {
        instance: Instance;
      }
    ).instance;
    assert.equal(stopped.state, InstanceState.STOPPED);
    assert.equal(await pod(instance.id), undefined);
    // The watch saw the deletion; the agent's record is still STOPPED afterwards.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await get(instance.id)).state, InstanceState.STOPPED);
    // A resize while stopped is only recorded: the next pod gets it. (Beyond the placed size: an admin's.)
    await rpc(adminOf(alice), adminOf(alice).resizeInstance, {
      instanceId: instance.id,
      flavor: 'm1.small',
      resources: undefined,
      requestId: '',
    });
    assert.equal(await pod(instance.id), undefined);
    const started = ((await rpc(alice, alice.startInstance, { instanceId: instance.id, requestId: '' })) as { instance: Instance })
      .instance;
    assert.equal(started.state, InstanceState.RUNNING);
    assert.equal(started.backendId, podName(instance.id));
    const again = (await pod(instance.id))!;
    assert.notEqual(again.metadata.uid, first, 'a new pod');
    assert.equal(again.status.phase, 'Running');
    assert.equal(again.spec.containers[0]!.resources.limits.memory, String(2 ** 30), 'm1.small: 1Gi');
    assert.equal(again.metadata.labels[KUBE_LABEL.flavor], 'm1.small');
    await remove(instance.id);
    assert.equal(await pod(instance.id), undefined);
  });

  it('reboots by making the pod anew: same instance id and volumes, a new pod, generation bumped, STOPPED then RUNNING announced', async () => {
    const volume = await boundVolume('boot');
    const instance = await create('rebooter', { volumes: [{ volumeId: volume.id, mountPath: '/mnt/boot', readOnly: false }] });
    const before = (await pod(instance.id))!;
    const events = recordEvents(rt.bus, `lapis.runtime.instance_state_changed.${instance.id}`);
    try {
      const rebooted = (
        (await rpc(alice, alice.rebootInstance, { instanceId: instance.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' })) as {
          instance: Instance;
        }
      ).instance;
      assert.equal(rebooted.id, instance.id);
      assert.equal(rebooted.state, InstanceState.RUNNING);
      assert.equal(rebooted.stateReason, 'rebooted');
      assert.ok(rebooted.generation > instance.generation, `generation ${rebooted.generation} after ${instance.generation}`);
      const after = (await pod(instance.id))!;
      assert.notEqual(after.metadata.uid, before.metadata.uid, 'a new pod');
      assert.equal(after.status.phase, 'Running');
      assert.equal(after.metadata.labels[KUBE_LABEL.instanceId], instance.id);
      assert.ok(
        after.spec.volumes.some((v) => v.persistentVolumeClaim?.claimName === claimName(volume.id)),
        'the new pod mounts the claim',
      );
      assert.equal((await getVolume(volume.id)).state, VolumeState.ATTACHED);
      const seen = await until(
        () => {
          const states = events.events.map((e) =>
            e.payload?.$case === 'instanceStateChanged' ? e.payload.instanceStateChanged.state : undefined,
          );
          return states.includes(InstanceState.STOPPED) && states.includes(InstanceState.RUNNING) && states;
        },
        'STOPPED and RUNNING events',
        10_000,
      );
      assert.deepEqual(seen, [InstanceState.STOPPED, InstanceState.RUNNING]);
      // The watch saw the old pod go: that is no "removed outside Lapis".
      await new Promise((r) => setTimeout(r, 500));
      assert.equal((await get(instance.id)).state, InstanceState.RUNNING);
    } finally {
      events.stop();
    }
    await remove(instance.id);
    await rpc(alice, alice.deleteVolume, { volumeId: volume.id, requestId: '' });
    assert.equal(await claim(volume.id), undefined);
  });

  it("resizes by making the pod anew with the new flavor's requests and limits", async () => {
    const instance = await create('grower');
    const before = (await pod(instance.id))!;
    const events = recordEvents(rt.bus, `lapis.runtime.instance_state_changed.${instance.id}`);
    try {
      // Larger than it was placed with: only an admin may; the tenant's try leaves the pod as it is.
      await expectCode(
        rpc(alice, alice.resizeInstance, { instanceId: instance.id, flavor: 'm1.medium', resources: undefined, requestId: '' }),
        status.PERMISSION_DENIED,
        /placed with less than that/,
      );
      assert.equal((await pod(instance.id))!.metadata.uid, before.metadata.uid, 'the same pod');
      const resized = (
        (await rpc(adminOf(alice), adminOf(alice).resizeInstance, {
          instanceId: instance.id,
          flavor: 'm1.medium',
          resources: undefined,
          requestId: '',
        })) as { instance: Instance }
      ).instance;
      assert.equal(resized.state, InstanceState.RUNNING);
      assert.equal(resized.spec?.flavor, 'm1.medium');
      assert.equal(resized.spec?.resources?.cpuMillis, 2000);
      const after = (await pod(instance.id))!;
      assert.notEqual(after.metadata.uid, before.metadata.uid);
      const resources = after.spec.containers[0]!.resources;
      assert.equal(resources.limits.cpu, '2', 'the API server writes 2000m as 2');
      assert.equal(resources.limits.memory, String(4 * 2 ** 30));
      assert.deepEqual(resources.requests, resources.limits);
      assert.equal(after.metadata.labels[KUBE_LABEL.flavor], 'm1.medium');
      const running = await until(
        () =>
          events.events.find(
            (e) => e.payload?.$case === 'instanceStateChanged' && e.payload.instanceStateChanged.state === InstanceState.RUNNING,
          ),
        'the RUNNING event',
        10_000,
      );
      assert.equal(running.payload?.$case === 'instanceStateChanged' && running.payload.instanceStateChanged.resources?.cpuMillis, 2000);
    } finally {
      events.stop();
    }
    // A GPU count cannot change (devices are granted at creation).
    await expectCode(
      rpc(alice, alice.resizeInstance, { instanceId: instance.id, flavor: 'g1.small', resources: undefined, requestId: '' }),
      status.INVALID_ARGUMENT,
      /GPUs/,
    );

    // A pod the cluster refuses (a LimitRange of at most 4 CPUs per container): the old one is made again.
    await kube.request('POST', `/api/v1/namespaces/${namespace}/limitranges`, {
      body: {
        apiVersion: 'v1',
        kind: 'LimitRange',
        metadata: { name: 'at-most-4-cpus' },
        spec: { limits: [{ type: 'Container', max: { cpu: '4' } }] },
      },
    });
    try {
      const uid = (await pod(instance.id))!.metadata.uid;
      await expectCode(
        rpc(adminOf(alice), adminOf(alice).resizeInstance, {
          instanceId: instance.id,
          flavor: '',
          resources: { cpuMillis: 8000, memoryBytes: 0, gpus: 0, pids: 0, diskBytes: 0 },
          requestId: '',
        }),
        status.FAILED_PRECONDITION,
        /maximum cpu usage per Container is 4.*runs again with its previous resources/,
      );
      const back = await get(instance.id);
      assert.equal(back.state, InstanceState.RUNNING);
      assert.equal(back.spec?.flavor, 'm1.medium');
      assert.equal(back.spec?.resources?.cpuMillis, 2000);
      const again = (await pod(instance.id))!;
      assert.notEqual(again.metadata.uid, uid, 'made again');
      assert.equal(again.spec.containers[0]!.resources.limits.cpu, '2');
    } finally {
      await kube.request('DELETE', `/api/v1/namespaces/${namespace}/limitranges/at-most-4-cpus`);
    }
    await remove(instance.id);
    assert.equal(await pod(instance.id), undefined);
  });

  it('gives a GPU flavor nvidia.com/gpu limits', async () => {
    const instance = await create('gpu', { flavor: 'g1.small' });
    assert.equal(instance.state, InstanceState.RUNNING);
    const resources = (await pod(instance.id))!.spec.containers[0]!.resources;
    assert.equal(resources.limits['nvidia.com/gpu'], '1');
    assert.equal(resources.requests['nvidia.com/gpu'], '1');
    await rpc(alice, alice.deleteInstance, { instanceId: instance.id, timeout: undefined, requestId: '' });
  });

  it('marks an instance whose pod is deleted outside Lapis (pod watch)', async () => {
    const instance = await create('victim');
    await kube.request('DELETE', `/api/v1/namespaces/${namespace}/pods/${podName(instance.id)}?gracePeriodSeconds=0`);
    const marked = await until(
      async () => {
        const i = await get(instance.id);
        return i.state === InstanceState.ERROR && i;
      },
      'the instance marked ERROR',
      30_000,
    );
    assert.match(marked.stateReason, /removed outside Lapis/);
    await rpc(alice, alice.deleteInstance, { instanceId: instance.id, timeout: undefined, requestId: '' });
  });

  it('records a pod that failed as ERROR with its exit code (pod watch)', async () => {
    const instance = await create('crasher');
    // kwok runs nothing, so the container's end is written as the kubelet would write it.
    const terminated = { exitCode: 3, reason: 'Error', startedAt: new Date().toISOString(), finishedAt: new Date().toISOString() };
    await kube.request('PATCH', `/api/v1/namespaces/${namespace}/pods/${podName(instance.id)}/status`, {
      contentType: 'application/strategic-merge-patch+json',
      body: {
        status: {
          phase: 'Failed',
          containerStatuses: [
            { name: 'instance', image: 'lapis/busybox:testenv', imageID: '', ready: false, restartCount: 0, state: { terminated } },
          ],
        },
      },
    });
    const failed = await until(
      async () => {
        const i = await get(instance.id);
        return i.state === InstanceState.ERROR && i;
      },
      'the instance marked ERROR',
      30_000,
    );
    assert.equal(failed.stateReason, 'exited with code 3');
    assert.equal(failed.exitCode, 3);
    await rpc(alice, alice.deleteInstance, { instanceId: instance.id, timeout: undefined, requestId: '' });
    assert.equal(await pod(instance.id), undefined);
  });

  it('re-adopts its pods after an agent restart (even one the store forgot), and marks the ones that vanished meanwhile', async () => {
    const kept = await create('kept');
    const lost = await create('lost');
    const orphan = await create('orphan');
    // A stopped instance has no pod but keeps its volume: nothing of it is "vanished" after the restart.
    const disk = await boundVolume('napper-disk');
    const napper = await create('napper', { volumes: [{ volumeId: disk.id, mountPath: '/mnt/disk', readOnly: false }] });
    await rpc(alice, alice.stopInstance, { instanceId: napper.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
    const stateDir = rt.stateDir;
    // The store forgets one: the next agent adopts its pod from the labels and annotations alone.
    await rt.agent.store.instances.delete(orphan.id);
    // A claim whose volume record is lost holds data: the next agent adopts it from its annotations.
    const forgotten = await newVolume('forgotten', 48 * MiB);
    await rt.agent.store.volumes.delete(forgotten.id);
    await rt.stop();
    await kube.request('DELETE', `/api/v1/namespaces/${namespace}/pods/${podName(lost.id)}?gracePeriodSeconds=0`);
    await until(async () => (await pod(lost.id)) === undefined, 'the lost pod gone', 30_000);
    rt = await startRuntime({ node, stateDir, env: env(), docker: false });
    alice = rt.client('alice');
    // The agent reconciled on start; a second pass finds nothing more to do.
    const report = await rt.agent.reconciler.run();
    assert.deepEqual(report.removedContainers, []);
    assert.deepEqual(report.adopted, []);
    assert.deepEqual(report.adoptedVolumes, []);
    const readopted = await getVolume(forgotten.id);
    assert.equal(readopted.name, 'forgotten');
    assert.equal(readopted.project, forgotten.project);
    assert.equal(readopted.sizeBytes, 48 * MiB);
    assert.equal(readopted.state, VolumeState.CREATING, 'its claim is still Pending');
    await rpc(alice, alice.deleteVolume, { volumeId: forgotten.id, requestId: '' });
    assert.equal(await claim(forgotten.id), undefined);
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
    const napping = await get(napper.id);
    assert.equal(napping.state, InstanceState.STOPPED);
    assert.equal((await getVolume(disk.id)).attachment?.instanceId, napper.id);
    const woke = ((await rpc(alice, alice.startInstance, { instanceId: napper.id, requestId: '' })) as { instance: Instance }).instance;
    assert.equal(woke.state, InstanceState.RUNNING);
    assert.ok((await pod(napper.id))!.spec.volumes.some((v) => v.persistentVolumeClaim?.claimName === claimName(disk.id)));
    await remove(napper.id);
    await rpc(alice, alice.deleteVolume, { volumeId: disk.id, requestId: '' });
    assert.equal(await claim(disk.id), undefined);
  });
});
