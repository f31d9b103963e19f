import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import { errorDetails } from '@lapis/platform';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { type Instance, type Volume, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { adminOf, baseSpec, exec, expectCode, leftovers, nothingLeft, rpc, startRuntime, type Client, type Runtime } from '../harness';

const MiB = 2 ** 20;

describe('volumes attached while instances run (real loop devices, ext4, mount propagation)', function () {
  let rt: Runtime;
  let other: Runtime;
  let alice: Client;

  before(async () => {
    rt = await startRuntime();
    other = await startRuntime({ consume: false });
    alice = rt.client('alice', 'physics');
  });
  after(async () => {
    await rt?.stop({ purge: true });
    await other?.stop({ purge: true });
  });

  const create = async (client: Client, name: string, extra: Record<string, unknown> = {}) =>
    (
      (await rpc(adminOf(client), adminOf(client).createInstance, {
        instanceId: '',
        spec: baseSpec(name, extra),
        preemptible: false,
        requestId: '',
      })) as { instance: Instance }
    ).instance;
  const volume = async (client: Client, name: string, sizeBytes = 32 * MiB, requestId = '') =>
    ((await rpc(client, client.createVolume, { name, sizeBytes, filesystem: '', node: '', labels: {}, requestId })) as { volume: Volume })
      .volume;
  const attach = async (client: Client, volumeId: string, instanceId: string, mountPath = '', readOnly = false) =>
    ((await rpc(client, client.attachVolume, { volumeId, instanceId, mountPath, readOnly, requestId: '' })) as { volume: Volume }).volume;
  const detach = async (client: Client, volumeId: string) =>
    ((await rpc(client, client.detachVolume, { volumeId, requestId: '' })) as { volume: Volume }).volume;

  it('attaches to a running instance, keeps data across detach, re-attach and instance deletion', async () => {
    const vm = await create(alice, 'data-1');
    const vol = await volume(alice, 'scratch', 32 * MiB, 'vol-req-1');
    assert.equal(vol.state, VolumeState.AVAILABLE);
    assert.equal((await volume(alice, 'scratch', 32 * MiB, 'vol-req-1')).id, vol.id, 'same request id, same volume');
    const attached = await attach(alice, vol.id, vm.id, '/mnt/data');
    assert.equal(attached.state, VolumeState.ATTACHED);
    assert.equal(attached.attachment?.mountPath, '/mnt/data');
    // It is a real ext4 block device inside the running container.
    const mounts = (await exec(vm.backendId, ['cat', '/proc/mounts'])).out;
    assert.match(mounts, /\/dev\/loop\d+ \/mnt\/data ext4 rw/);
    assert.equal((await exec(vm.backendId, ['sh', '-c', 'echo precious > /mnt/data/file && sync'])).code, 0);
    const df = (await exec(vm.backendId, ['df', '-k', '/mnt/data'])).out;
    assert.match(df, /\/mnt\/data/);
    const got = ((await rpc(alice, alice.getInstance, { instanceId: vm.id })) as { instance: Instance }).instance;
    assert.deepEqual(
      got.volumeAttachments.map((a) => a.volumeId),
      [vol.id],
    );
    assert.equal((await leftovers(rt.node, rt.stateDir)).loops.length, 1);

    // Detach: gone from inside, loop device freed.
    const detached = await detach(alice, vol.id);
    assert.equal(detached.state, VolumeState.AVAILABLE);
    assert.doesNotMatch((await exec(vm.backendId, ['cat', '/proc/mounts'])).out, /\/mnt\/data/);
    assert.equal((await leftovers(rt.node, rt.stateDir)).loops.length, 0);

    // Re-attach (read-only, default path) to another instance: the data is there.
    const vm2 = await create(alice, 'data-2');
    await attach(alice, vol.id, vm2.id, '', true);
    assert.equal((await exec(vm2.backendId, ['cat', `/mnt/${vol.id}/file`])).out, 'precious\n');
    assert.notEqual((await exec(vm2.backendId, ['sh', '-c', `echo x > /mnt/${vol.id}/other`])).code, 0, 'read-only');
    // Stop and start: the attachment stays.
    await rpc(alice, alice.stopInstance, { instanceId: vm2.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
    await rpc(alice, alice.startInstance, { instanceId: vm2.id, requestId: '' });
    assert.equal((await exec(vm2.backendId, ['cat', `/mnt/${vol.id}/file`])).out, 'precious\n');
    // Deleting the instance detaches the volume; its data stays.
    await rpc(alice, alice.deleteInstance, { instanceId: vm2.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
    const after = ((await rpc(alice, alice.getVolume, { volumeId: vol.id })) as { volume: Volume }).volume;
    assert.equal(after.state, VolumeState.AVAILABLE);
    await attach(alice, vol.id, vm.id, '/mnt/again');
    assert.equal((await exec(vm.backendId, ['cat', '/mnt/again/file'])).out, 'precious\n');
    await detach(alice, vol.id);
  });

  it('answers a create repeated while the first is still making the volume with that volume (same request id), not "name taken"', async () => {
    // As a restarted orchestrator resuming its step does: the first caller went away mid-create.
    const [a, b] = await Promise.all([
      volume(alice, 'made-once', 256 * MiB, 'vol-req-repeat'),
      volume(alice, 'made-once', 256 * MiB, 'vol-req-repeat'),
    ]);
    assert.equal(b.id, a.id);
    assert.equal(b.state, VolumeState.AVAILABLE);
    await rpc(alice, alice.deleteVolume, { volumeId: a.id, requestId: '' });
  });

  it('gives clear errors: another node, already attached, attached delete, not attached, oversized, bad path; nothing is left', async () => {
    const vm = await create(alice, 'err-1');
    const vm2 = await create(alice, 'err-2');
    const start = await leftovers(rt.node, rt.stateDir);
    const vol = await volume(alice, 'contested');
    await expectCode(
      volume(alice, 'huge', 10 * 2 ** 40),
      status.INVALID_ARGUMENT,
      /size_bytes: 10995116277760 is larger than the largest volume this node makes/,
    );
    await expectCode(volume(alice, 'tiny', 1024), status.INVALID_ARGUMENT, /too small/);
    await expectCode(volume(alice, 'Bad Name'), status.INVALID_ARGUMENT, /name/);
    await expectCode(volume(alice, 'contested'), status.ALREADY_EXISTS, /already has a volume named "contested"/);
    await expectCode(detach(alice, vol.id), status.FAILED_PRECONDITION, /is not attached/);
    await expectCode(attach(alice, vol.id, vm.id, '/etc/passwd'), status.INVALID_ARGUMENT, /not a mount point/);
    await attach(alice, vol.id, vm.id);
    const twice = await expectCode(
      attach(alice, vol.id, vm2.id),
      status.FAILED_PRECONDITION,
      new RegExp(`already attached to instance ${vm.id}`),
    );
    assert.equal(errorDetails(twice).errorInfo?.reason, 'VOLUME_ALREADY_ATTACHED');
    await expectCode(
      rpc(alice, alice.deleteVolume, { volumeId: vol.id, requestId: '' }),
      status.FAILED_PRECONDITION,
      /is attached to instance .* detach it first/,
    );
    // A volume of another node (same NATS, same project) cannot attach here.
    const otherClient = other.client('alice', 'physics');
    const far = await volume(otherClient, 'far-away');
    const wrongNode = await expectCode(
      attach(alice, far.id, vm.id),
      status.FAILED_PRECONDITION,
      new RegExp(`volume ${far.id} is on node ${other.node} and the instance on node ${rt.node}`),
    );
    assert.equal(errorDetails(wrongNode).errorInfo?.reason, 'VOLUME_ON_ANOTHER_NODE');
    // Bob cannot see alice's volume at all.
    const bob = rt.client('bob');
    await expectCode(rpc(bob, bob.getVolume, { volumeId: vol.id }), status.NOT_FOUND);
    await expectCode(attach(alice, 'vol-nope', vm.id), status.NOT_FOUND, /volume vol-nope not found/);
    // Exactly one loop device and one volume mount (plus the two instances' mount points) stand.
    const left = await leftovers(rt.node, rt.stateDir);
    assert.equal(left.loops.length, 1);
    assert.equal(left.mounts.length, start.mounts.length + 1);
    assert.deepEqual(await leftovers(other.node, other.stateDir), nothingLeft);
    await detach(alice, vol.id);
    const deleted = ((await rpc(alice, alice.deleteVolume, { volumeId: vol.id, requestId: '' })) as { volume: Volume }).volume;
    assert.equal(deleted.state, VolumeState.DELETING);
    await expectCode(rpc(alice, alice.getVolume, { volumeId: vol.id }), status.NOT_FOUND);
    for (const id of [vm.id, vm2.id])
      await rpc(alice, alice.deleteInstance, { instanceId: id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
    assert.equal(
      ((await rpc(alice, alice.getInstance, { instanceId: vm.id })) as { instance: Instance }).instance.state,
      InstanceState.DELETED,
    );
  });

  it('attaches the volumes named in the spec at create time', async () => {
    const vol = await volume(alice, 'boot-data');
    const vm = await create(alice, 'with-vol', { volumes: [{ volumeId: vol.id, mountPath: '/mnt/boot', readOnly: false }] });
    assert.match((await exec(vm.backendId, ['cat', '/proc/mounts'])).out, /\/mnt\/boot ext4/);
    // A second instance asking for the same volume is refused before anything is made.
    const before = await leftovers(rt.node, rt.stateDir);
    await expectCode(
      create(alice, 'with-vol-2', { volumes: [{ volumeId: vol.id, mountPath: '', readOnly: false }] }),
      status.FAILED_PRECONDITION,
      /already attached/,
    );
    assert.deepEqual(await leftovers(rt.node, rt.stateDir), before);
  });

  it("bounds what one project's volumes add up to on a node (volumes are outside the scheduler's quotas)", async () => {
    const bounded = await startRuntime({ consume: false, env: { LAPIS_MAX_PROJECT_VOLUME_BYTES: String(64 * MiB) } });
    try {
      const physics = bounded.client('alice', 'physics');
      const biology = bounded.client('bob');
      const first = await volume(physics, 'one', 32 * MiB);
      await volume(physics, 'two', 32 * MiB);
      const refused = await expectCode(
        volume(physics, 'three', 16 * MiB),
        status.RESOURCE_EXHAUSTED,
        /project physics has 67108864 bytes of volumes on node .*; 16777216 more would pass its limit of 67108864/,
      );
      assert.equal(errorDetails(refused).errorInfo?.reason, 'VOLUME_QUOTA');
      const listed = (
        (await rpc(physics, physics.listVolumes, { pageSize: 0, pageToken: '', project: '', state: 0, instanceId: '' })) as {
          volumes: Volume[];
        }
      ).volumes;
      assert.deepEqual(
        listed
          .filter((v) => v.node === bounded.node)
          .map((v) => v.name)
          .sort(),
        ['one', 'two'],
        'the refused one left no record',
      );
      // Another project has its own bound; a deletion gives room back.
      await volume(biology, 'theirs', 64 * MiB);
      await rpc(physics, physics.deleteVolume, { volumeId: first.id, requestId: '' });
      await volume(physics, 'three', 16 * MiB);
    } finally {
      await bounded.stop({ purge: true });
    }
  });
});
