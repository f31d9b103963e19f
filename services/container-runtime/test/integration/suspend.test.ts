// SuspendInstance and ResumeInstance on Docker (real engine, NATS and an image-sync stand-in):
// the container paused and unpaused, SUSPENDED announced and kept across an agent restart, its
// room still held, and what a suspended instance may and may not do.
import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import { until } from '@lapis/platform/testing';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Instance, Node } from '@lapis/proto/lapis/runtime/v1/runtime';
import { ensureBaseImage } from '@lapis/testenv';
import {
  adminOf,
  baseSpec,
  dockerClient,
  expectCode,
  fakeImageSync,
  recordEvents,
  rpc,
  startRuntime,
  type Client,
  type Runtime,
} from '../harness';

describe('suspend and resume on Docker (real engine)', function () {
  this.timeout(120_000);
  let rt: Runtime;
  let alice: Client;
  let imageSync: Awaited<ReturnType<typeof fakeImageSync>>;

  before(async () => {
    await ensureBaseImage();
    const imageId = (await dockerClient().getImage('lapis/busybox:testenv').inspect()).Id;
    imageSync = await fakeImageSync({ 'lapis/busybox:testenv': imageId });
    rt = await startRuntime({ imageSync: imageSync.address });
    alice = rt.client('alice', 'physics');
  });
  after(async () => {
    await rt?.stop({ purge: true });
    await imageSync?.stop();
  });

  const create = async (name: string) => {
    const admin = adminOf(alice);
    const response = (await rpc(admin, admin.createInstance, {
      instanceId: '',
      spec: baseSpec(name, { command: ['sleep', '3600'] }),
      preemptible: false,
      requestId: '',
    })) as { instance: Instance };
    return response.instance;
  };
  const suspend = async (client: Client, instanceId: string) =>
    ((await rpc(client, client.suspendInstance, { instanceId, requestId: '' })) as { instance: Instance }).instance;
  const resume = async (client: Client, instanceId: string) =>
    ((await rpc(client, client.resumeInstance, { instanceId, requestId: '' })) as { instance: Instance }).instance;
  const docker = async (backendId: string) => (await dockerClient().getContainer(backendId).inspect()).State;

  it("pauses the container at a tenant's word: SUSPENDED announced, the room still held; resumes it in place", async () => {
    const instance = await create('frozen');
    const events = recordEvents(rt.bus, `lapis.runtime.instance_state_changed.${instance.id}`);
    try {
      const suspended = await suspend(alice, instance.id);
      assert.equal(suspended.state, InstanceState.SUSPENDED);
      assert.equal(suspended.stateReason, 'suspended');
      const state = await docker(instance.backendId);
      assert.equal(state.Paused, true);
      assert.equal(state.Status, 'paused');
      await until(
        () =>
          events.events.some(
            (e) => e.payload?.$case === 'instanceStateChanged' && e.payload.instanceStateChanged.state === InstanceState.SUSPENDED,
          ),
        'the SUSPENDED event',
      );
      assert.equal((await suspend(alice, instance.id)).state, InstanceState.SUSPENDED, 'suspending again changes nothing');
      // It keeps its claim, so its room: the node still counts it.
      const { node } = (await rpc(alice, alice.getNode, { name: '' })) as { node: Node };
      assert.ok((node.allocated?.cpuMillis ?? 0) >= 500, `allocated ${JSON.stringify(node.allocated)}`);

      const resumed = await resume(alice, instance.id);
      assert.equal(resumed.state, InstanceState.RUNNING);
      assert.equal(resumed.stateReason, 'resumed');
      assert.equal(resumed.backendId, instance.backendId);
      assert.equal(resumed.addresses[0]?.ip, instance.addresses[0]?.ip);
      assert.equal((await docker(instance.backendId)).Paused, false);
      assert.equal((await resume(alice, instance.id)).state, InstanceState.RUNNING, 'resuming a running one changes nothing');
    } finally {
      events.stop();
    }
  });

  it('refuses what a suspended instance cannot do, naming its state, and stops or deletes it', async () => {
    const instance = await create('sleeper');
    await suspend(alice, instance.id);
    await expectCode(
      rpc(alice, alice.rebootInstance, { instanceId: instance.id, timeout: undefined, requestId: '' }),
      status.FAILED_PRECONDITION,
      /it is SUSPENDED/,
    );
    await expectCode(
      rpc(alice, alice.resizeInstance, { instanceId: instance.id, flavor: 'm1.tiny', resources: undefined, requestId: '' }),
      status.FAILED_PRECONDITION,
      /it is SUSPENDED/,
    );
    const stopped = (
      (await rpc(alice, alice.stopInstance, { instanceId: instance.id, timeout: { seconds: 1, nanos: 0 }, requestId: '' })) as {
        instance: Instance;
      }
    ).instance;
    assert.equal(stopped.state, InstanceState.STOPPED);
    assert.equal((await docker(instance.backendId)).Running, false);
    await expectCode(
      rpc(alice, alice.suspendInstance, { instanceId: instance.id, requestId: '' }),
      status.FAILED_PRECONDITION,
      /STOPPED; suspend needs RUNNING/,
    );
    await expectCode(
      rpc(alice, alice.resumeInstance, { instanceId: instance.id, requestId: '' }),
      status.FAILED_PRECONDITION,
      /resume needs SUSPENDED/,
    );

    const other = await create('sleeper-2');
    await suspend(alice, other.id);
    const deleted = (
      (await rpc(alice, alice.deleteInstance, { instanceId: other.id, timeout: { seconds: 1, nanos: 0 }, requestId: '' })) as {
        instance: Instance;
      }
    ).instance;
    assert.equal(deleted.state, InstanceState.DELETED);
    await assert.rejects(dockerClient().getContainer(other.backendId).inspect(), 'the container is gone');
    // Another project's instance does not exist for bob.
    const bob = rt.client('bob');
    await expectCode(rpc(bob, bob.suspendInstance, { instanceId: instance.id, requestId: '' }), status.NOT_FOUND);
  });

  it('finds a paused container SUSPENDED after an agent restart', async () => {
    const instance = await create('survivor');
    await suspend(alice, instance.id);
    const { node, stateDir } = rt;
    await rt.stop();
    rt = await startRuntime({ node, stateDir, imageSync: imageSync.address });
    alice = rt.client('alice', 'physics');
    const { instance: found } = (await rpc(alice, alice.getInstance, { instanceId: instance.id })) as { instance: Instance };
    assert.equal(found.state, InstanceState.SUSPENDED);
    assert.equal((await resume(alice, instance.id)).state, InstanceState.RUNNING);
  });
});
