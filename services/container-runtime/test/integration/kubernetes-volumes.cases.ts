// The volume cases of the kubernetes backend's tests, run by kubernetes.test.ts inside its
// describe, on its control plane: a Lapis volume as a PersistentVolumeClaim.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { until } from '@lapis/platform/testing';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { type Instance, type Volume, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { claimName, KUBE_LABEL } from '../../src/adapters/kubernetes-names';
import { expectCode, recordEvents, rpc } from '../harness';
import type { KubeCase, Pod } from './kubernetes.test';

export function volumeCases(t: KubeCase): void {
  it('makes a volume a PersistentVolumeClaim: CREATING while it is Pending, AVAILABLE once Bound; DeleteVolume removes it', async () => {
    const { rt, alice, storageClass, node, getVolume, claim, newVolume, makePersistentVolume, MiB } = t;
    const volume = await newVolume('scratch', 64 * MiB);
    // No provisioner serves the class: Pending, so CREATING, and the reason says so.
    assert.equal(volume.state, VolumeState.CREATING);
    assert.match(volume.stateReason, /Pending/);
    const c = (await claim(volume.id))!;
    assert.ok(c, 'the claim exists');
    assert.equal(c.status.phase, 'Pending');
    assert.equal(c.metadata.labels[KUBE_LABEL.volumeId], volume.id);
    assert.equal(c.metadata.labels[KUBE_LABEL.project], volume.project);
    assert.equal(c.metadata.labels[KUBE_LABEL.node], node);
    assert.equal(c.metadata.labels[KUBE_LABEL.volumeName], 'scratch');
    assert.equal(c.spec.storageClassName, storageClass);
    assert.deepEqual(c.spec.accessModes, ['ReadWriteOnce']);
    assert.equal(c.spec.resources.requests.storage, String(64 * MiB));
    const events = recordEvents(rt.bus, `lapis.runtime.volume_state_changed.${volume.id}`);
    let pv: string;
    try {
      pv = await makePersistentVolume(volume.id);
      // Announced without anyone asking: the agent looks at Pending claims every heartbeat.
      await until(
        () =>
          events.events.some(
            (e) => e.payload?.$case === 'volumeStateChanged' && e.payload.volumeStateChanged.state === VolumeState.AVAILABLE,
          ),
        'the AVAILABLE event once the claim is Bound',
        60_000,
      );
    } finally {
      events.stop();
    }
    const available = await getVolume(volume.id);
    assert.equal(available.state, VolumeState.AVAILABLE);
    assert.equal(available.stateReason, '');
    assert.equal((await claim(volume.id))!.spec.volumeName, pv);
    await rpc(alice, alice.deleteVolume, { volumeId: volume.id, requestId: '' });
    assert.equal(await claim(volume.id), undefined, 'the claim is gone');
    await expectCode(rpc(alice, alice.getVolume, { volumeId: volume.id }), status.NOT_FOUND);
  });

  it('creates an instance with its volumes as claims mounted in the pod; refuses to detach or delete them while used; deleting leaves nothing', async () => {
    const { kube, alice, namespace, pod, create, getVolume, remove, claim, newVolume, makePersistentVolume, boundVolume } = t;
    const volume = await boundVolume('data');
    const ro = await newVolume('reference'); // Pending: a new pod may still take it (a WaitForFirstConsumer class binds then)
    await makePersistentVolume(ro.id);
    const instance = await create('with-volumes', {
      volumes: [
        { volumeId: volume.id, mountPath: '/mnt/data', readOnly: false },
        { volumeId: ro.id, mountPath: '/mnt/ref', readOnly: true },
      ],
    });
    assert.equal(instance.state, InstanceState.RUNNING);
    assert.deepEqual(
      instance.volumeAttachments.map((a) => [a.volumeId, a.mountPath, a.readOnly]),
      [
        [volume.id, '/mnt/data', false],
        [ro.id, '/mnt/ref', true],
      ],
    );
    const p = (await pod(instance.id))!;
    assert.equal(p.status.phase, 'Running');
    const byClaim = new Map(p.spec.volumes.filter((v) => v.persistentVolumeClaim).map((v) => [v.persistentVolumeClaim!.claimName, v]));
    assert.equal(byClaim.get(claimName(volume.id))?.persistentVolumeClaim?.readOnly ?? false, false);
    assert.equal(byClaim.get(claimName(ro.id))?.persistentVolumeClaim?.readOnly, true);
    const mounts = new Map(p.spec.containers[0]!.volumeMounts.map((m) => [m.mountPath, m]));
    assert.equal(mounts.get('/mnt/data')?.name, byClaim.get(claimName(volume.id))?.name);
    assert.equal(mounts.get('/mnt/ref')?.name, byClaim.get(claimName(ro.id))?.name);
    assert.equal(mounts.get('/mnt/ref')?.readOnly, true);
    const attached = await getVolume(volume.id);
    assert.equal(attached.state, VolumeState.ATTACHED);
    assert.equal(attached.attachment?.instanceId, instance.id);

    // A second instance cannot have a volume already attached.
    await expectCode(
      create('thief', { volumes: [{ volumeId: volume.id, mountPath: '/mnt/data', readOnly: false }] }),
      status.FAILED_PRECONDITION,
      /already attached/,
    );
    await expectCode(
      rpc(alice, alice.detachVolume, { volumeId: volume.id, requestId: '' }),
      status.FAILED_PRECONDITION,
      /Pod's volumes are fixed when it is created/,
    );
    await expectCode(
      rpc(alice, alice.deleteVolume, { volumeId: volume.id, requestId: '' }),
      status.FAILED_PRECONDITION,
      /attached to instance/,
    );

    await remove(instance.id);
    assert.equal(await pod(instance.id), undefined);
    const released = await getVolume(volume.id);
    assert.equal(released.state, VolumeState.AVAILABLE);
    assert.equal(released.attachment, undefined);

    // A pod Lapis did not make still uses the claim: the volume is not deleted under it.
    const squatter = `squatter-${randomBytes(3).toString('hex')}`;
    await kube.request('POST', `/api/v1/namespaces/${namespace}/pods`, {
      body: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: squatter },
        spec: {
          containers: [{ name: 'c', image: 'lapis/busybox:testenv', volumeMounts: [{ name: 'v', mountPath: '/v' }] }],
          volumes: [{ name: 'v', persistentVolumeClaim: { claimName: claimName(volume.id) } }],
          tolerations: [{ key: 'kwok.x-k8s.io/node', operator: 'Exists', effect: 'NoSchedule' }],
        },
      },
    });
    await expectCode(
      rpc(alice, alice.deleteVolume, { volumeId: volume.id, requestId: '' }),
      status.FAILED_PRECONDITION,
      new RegExp(`used by pod ${squatter}`),
    );
    assert.ok(await claim(volume.id), 'the claim is still there');
    await kube.request('DELETE', `/api/v1/namespaces/${namespace}/pods/${squatter}?gracePeriodSeconds=0`);
    await until(
      async () => {
        try {
          await kube.request('GET', `/api/v1/namespaces/${namespace}/pods/${squatter}`);
          return false;
        } catch {
          return true;
        }
      },
      'the squatter pod gone',
      30_000,
    );
    for (const v of [volume, ro]) {
      await rpc(alice, alice.deleteVolume, { volumeId: v.id, requestId: '' });
      assert.equal(await claim(v.id), undefined, `the claim of ${v.id} is gone`);
    }
    const left = await kube.request<{ items: unknown[] }>(
      'GET',
      `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(`${KUBE_LABEL.instanceId}=${instance.id}`)}`,
    );
    assert.deepEqual(left.items, []);
  });

  it('attaches and detaches volumes of a stopped instance (it has no pod): its next pod has the change', async () => {
    const { alice, pod, create, remove, claim, boundVolume } = t;
    const volume = await boundVolume('late');
    const instance = await create('latecomer');
    const stop = () => rpc(alice, alice.stopInstance, { instanceId: instance.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
    const start = async () =>
      ((await rpc(alice, alice.startInstance, { instanceId: instance.id, requestId: '' })) as { instance: Instance }).instance;
    const attach = () =>
      rpc(alice, alice.attachVolume, {
        volumeId: volume.id,
        instanceId: instance.id,
        mountPath: '/mnt/late',
        readOnly: false,
        requestId: '',
      });
    const claimsOf = (p: Pod) => p.spec.volumes.flatMap((v) => (v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : []));
    await expectCode(
      attach(),
      status.FAILED_PRECONDITION,
      /while it runs: .*Pod's volumes are fixed.*stop the instance, attach the volume and start it again/,
    );
    await stop();
    const attached = ((await attach()) as { volume: Volume }).volume;
    assert.equal(attached.state, VolumeState.ATTACHED);
    assert.equal(attached.attachment?.instanceId, instance.id);
    assert.equal(await pod(instance.id), undefined, 'nothing is made while it is stopped');
    const started = await start();
    assert.equal(started.state, InstanceState.RUNNING);
    assert.deepEqual(
      started.volumeAttachments.map((a) => a.mountPath),
      ['/mnt/late'],
    );
    const withVolume = (await pod(instance.id))!;
    assert.deepEqual(claimsOf(withVolume), [claimName(volume.id)]);
    assert.ok(withVolume.spec.containers[0]!.volumeMounts.some((m) => m.mountPath === '/mnt/late'));
    await expectCode(
      rpc(alice, alice.detachVolume, { volumeId: volume.id, requestId: '' }),
      status.FAILED_PRECONDITION,
      /while it runs: .*stop the instance, detach the volume/,
    );
    await stop();
    const detached = ((await rpc(alice, alice.detachVolume, { volumeId: volume.id, requestId: '' })) as { volume: Volume }).volume;
    assert.equal(detached.state, VolumeState.AVAILABLE);
    assert.equal(detached.attachment, undefined);
    const again = await start();
    assert.deepEqual(again.volumeAttachments, []);
    assert.deepEqual(claimsOf((await pod(instance.id))!), []);
    await remove(instance.id);
    await rpc(alice, alice.deleteVolume, { volumeId: volume.id, requestId: '' });
    assert.equal(await claim(volume.id), undefined);
  });

  it('refuses to attach a volume to a running pod, saying why', async () => {
    const { alice, create, newVolume } = t;
    const instance = await create('novol');
    const volume = await newVolume('late');
    await expectCode(
      rpc(alice, alice.attachVolume, {
        volumeId: volume.id,
        instanceId: instance.id,
        mountPath: '/mnt/data',
        readOnly: false,
        requestId: '',
      }),
      status.FAILED_PRECONDITION,
      /Pod's volumes are fixed when it is created/,
    );
    await rpc(alice, alice.deleteInstance, { instanceId: instance.id, timeout: undefined, requestId: '' });
    await rpc(alice, alice.deleteVolume, { volumeId: volume.id, requestId: '' });
  });
}
