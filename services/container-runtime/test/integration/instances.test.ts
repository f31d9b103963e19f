import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { errorDetails } from '@lapis/platform';
import { until } from '@lapis/platform/testing';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { LogStream, type Instance, type StreamInstanceLogsResponse } from '@lapis/proto/lapis/runtime/v1/runtime';
import { ensureBaseImage } from '@lapis/testenv';
import {
  adminOf,
  baseSpec,
  purgeNode,
  dockerClient,
  exec,
  expectCode,
  fakeImageSync,
  leftovers,
  nothingLeft,
  recordEvents,
  rpc,
  startRuntime,
  type Client,
  type Runtime,
} from '../harness';

describe('instances on Docker (real engine, NATS and image-sync stand-in)', function () {
  let rt: Runtime;
  let alice: Client;
  let bob: Client;
  let imageSync: Awaited<ReturnType<typeof fakeImageSync>>;
  let imageId: string;

  before(async () => {
    await ensureBaseImage();
    imageId = (await dockerClient().getImage('lapis/busybox:testenv').inspect()).Id;
    // The catalogue trusts the base image by its image id (a locally built image has no registry digest).
    imageSync = await fakeImageSync({ 'lapis/busybox:testenv': imageId, 'lapis/busybox:gone': `sha256:${'e'.repeat(64)}` });
    rt = await startRuntime({ imageSync: imageSync.address });
    alice = rt.client('alice', 'physics');
    bob = rt.client('bob');
  });
  after(async () => {
    await rt?.stop({ purge: true });
    await imageSync?.stop();
  });

  // Instances are made by the admin in the client's project (tenants submit claims) unless `as` says who.
  const create = (
    client: Client,
    name: string,
    extra: Record<string, unknown> = {},
    request: Record<string, unknown> = {},
    as = adminOf(client),
  ) =>
    rpc(as, as.createInstance, { instanceId: '', spec: baseSpec(name, extra), preemptible: false, requestId: '', ...request }).then(
      (r) => (r as { instance: Instance }).instance,
    );

  it('creates a VM-like container: cgroup limits, hostname, labels, restart policy, user data and keys, run by digest', async () => {
    const events = recordEvents(rt.bus, 'lapis.runtime.instance_state_changed.>');
    const instance = await create(
      alice,
      'web-1',
      {
        userData: Buffer.from('#cloud-config\nhello: world\n'),
        sshPublicKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample alice@laptop'],
        environment: { GREETING: 'hi' },
      },
      { requestId: 'req-web-1' },
    );
    assert.equal(instance.state, InstanceState.RUNNING);
    assert.equal(instance.project, 'physics');
    assert.equal(instance.imageDigest, imageId);
    assert.ok(instance.addresses[0]?.ip, 'has an address on the project network');
    assert.equal(imageSync.calls.at(-1), 'lapis/busybox:testenv');
    const info = await dockerClient().getContainer(instance.backendId).inspect();
    assert.equal(info.Config.Hostname, 'web-1');
    assert.equal(info.Image, imageId, 'runs the image by its immutable id');
    assert.equal(info.HostConfig.CpuQuota, 50_000); // m1.tiny: 0.5 CPU of a 100 ms period
    assert.equal(info.HostConfig.CpuPeriod, 100_000);
    assert.equal(info.HostConfig.Memory, 256 * 2 ** 20);
    assert.equal(info.HostConfig.PidsLimit, 256);
    assert.deepEqual(info.HostConfig.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 0 });
    assert.equal(info.Config.Labels['lapis.instance-id'], instance.id);
    assert.equal(info.Config.Labels['lapis.project'], 'physics');
    assert.equal(info.Config.Labels['lapis.flavor'], 'm1.tiny');
    assert.equal(info.Config.Labels['lapis.request-id'], 'req-web-1');
    assert.equal(info.Config.Labels['lapis.node'], rt.node);
    assert.equal((await exec(instance.backendId, ['cat', '/etc/lapis/user-data'])).out, '#cloud-config\nhello: world\n');
    assert.match((await exec(instance.backendId, ['cat', '/etc/lapis/ssh-keys'])).out, /ssh-ed25519 .* alice@laptop/);
    const env = (await exec(instance.backendId, ['env'])).out;
    assert.match(env, /GREETING=hi/);
    assert.match(env, new RegExp(`LAPIS_INSTANCE_ID=${instance.id}`));
    assert.match(env, /LAPIS_SSH_PUBLIC_KEYS=ssh-ed25519/);
    assert.match(env, new RegExp(`LAPIS_USER_DATA=${Buffer.from('#cloud-config\nhello: world\n').toString('base64')}`));
    // The retry with the same request id is the same instance, not a second one.
    const again = await create(alice, 'web-1', {}, { requestId: 'req-web-1' });
    assert.equal(again.id, instance.id);
    await until(
      () =>
        events.events.filter(
          (e) => e.payload?.$case === 'instanceStateChanged' && e.payload.instanceStateChanged.instanceId === instance.id,
        ).length >= 2,
      'CREATING and RUNNING events',
    );
    const states = events.events.flatMap((e) =>
      e.payload?.$case === 'instanceStateChanged' && e.payload.instanceStateChanged.instanceId === instance.id
        ? [e.payload.instanceStateChanged.state]
        : [],
    );
    assert.deepEqual(states, [InstanceState.CREATING, InstanceState.RUNNING]);
    assert.match(events.events[events.events.length - 1]!.id, new RegExp(`^${instance.id}\\.RUNNING\\.\\d+$`));
    events.stop();
  });

  it("refuses a tenant's direct create, whatever its size, naming SubmitClaim, and leaves nothing behind", async () => {
    const events = recordEvents(rt.bus, `lapis.runtime.instance_state_changed.>`);
    const huge = { flavor: '', resources: { cpuMillis: 64_000, memoryBytes: 100 * 2 ** 30, gpus: 0, pids: 4_000_000, diskBytes: 0 } };
    for (const [client, request] of [
      [alice, {}],
      [bob, { instanceId: 'i-direct-by-bob', requestId: 'req-direct' }],
      [alice, { instanceId: '' }],
    ] as const) {
      const denied = await expectCode(
        create(client, 'direct', huge, request, client),
        status.PERMISSION_DENIED,
        /may not create instances on a node directly: submit a claim to the scheduler instead \(SubmitClaim/,
      );
      assert.equal(errorDetails(denied).errorInfo?.reason, 'USE_SCHEDULER');
    }
    const root = rt.client('root');
    const all = (
      (await rpc(root, root.listInstances, { pageSize: 0, pageToken: '', project: '', state: 0, node: '' })) as { instances: Instance[] }
    ).instances;
    assert.deepEqual(
      all.filter((i) => i.spec?.name === 'direct' || i.id === 'i-direct-by-bob'),
      [],
      'no record',
    );
    const containers = await dockerClient().listContainers({
      all: true,
      filters: { label: [`lapis.node=${rt.node}`, 'lapis.name=direct'] },
    });
    assert.deepEqual(containers, [], 'no container');
    await expectCode(rpc(bob, bob.getInstance, { instanceId: 'i-direct-by-bob' }), status.NOT_FOUND);
    events.stop();
    assert.deepEqual(
      events.events.filter(
        (e) => e.payload?.$case === 'instanceStateChanged' && e.payload.instanceStateChanged.instanceId === 'i-direct-by-bob',
      ),
      [],
      'no event',
    );
  });

  it('keeps id, name and address across stop/start and reboot; resizes in place; streams logs', async () => {
    const instance = await create(alice, 'keeper', { command: ['sh', '-c', 'echo started; echo oops >&2; exec sleep 3600'] });
    const stopped = (await rpc(alice, alice.stopInstance, {
      instanceId: instance.id,
      timeout: { seconds: 1, nanos: 0 },
      requestId: '',
    })) as { instance: Instance };
    assert.equal(stopped.instance.state, InstanceState.STOPPED);
    assert.equal((await dockerClient().getContainer(instance.backendId).inspect()).State.Running, false);
    await expectCode(
      rpc(alice, alice.resizeInstance, { instanceId: instance.id, flavor: 'no-such', resources: undefined, requestId: '' }),
      status.INVALID_ARGUMENT,
      /unknown flavor "no-such"/,
    );
    const started = ((await rpc(alice, alice.startInstance, { instanceId: instance.id, requestId: '' })) as { instance: Instance })
      .instance;
    assert.equal(started.state, InstanceState.RUNNING);
    assert.equal(started.backendId, instance.backendId);
    assert.equal(started.addresses[0]?.ip, instance.addresses[0]?.ip);
    const rebooted = (
      (await rpc(alice, alice.rebootInstance, { instanceId: instance.id, timeout: { seconds: 1, nanos: 0 }, requestId: '' })) as {
        instance: Instance;
      }
    ).instance;
    assert.equal(rebooted.state, InstanceState.RUNNING);
    assert.equal(rebooted.spec?.name, 'keeper');
    // Larger than it was placed with (m1.tiny): not for a tenant, whose quota and node room
    // were counted at that size; an admin may.
    const refused = await expectCode(
      rpc(alice, alice.resizeInstance, { instanceId: instance.id, flavor: 'm1.small', resources: undefined, requestId: '' }),
      status.PERMISSION_DENIED,
      /placed with less than that .*SubmitClaim/,
    );
    assert.equal(errorDetails(refused).errorInfo?.reason, 'USE_SCHEDULER');
    assert.equal(
      (await dockerClient().getContainer(instance.backendId).inspect()).HostConfig.CpuQuota,
      50_000,
      'the refused resize changed nothing',
    );
    assert.equal(instance.placedResources?.cpuMillis, 500);
    const resized = (
      (await rpc(adminOf(alice), adminOf(alice).resizeInstance, {
        instanceId: instance.id,
        flavor: 'm1.small',
        resources: undefined,
        requestId: '',
      })) as { instance: Instance }
    ).instance;
    assert.equal(resized.spec?.flavor, 'm1.small');
    const info = await dockerClient().getContainer(instance.backendId).inspect();
    assert.equal(info.HostConfig.CpuQuota, 100_000);
    assert.equal(info.HostConfig.Memory, 2 ** 30);
    assert.equal(info.State.Running, true);
    // Within the placed size a tenant resizes freely.
    const shrunk = (
      (await rpc(alice, alice.resizeInstance, {
        instanceId: instance.id,
        flavor: '',
        resources: { cpuMillis: 250, memoryBytes: 128 * 2 ** 20, gpus: 0, pids: 0, diskBytes: 0 },
        requestId: '',
      })) as { instance: Instance }
    ).instance;
    assert.equal(shrunk.spec?.resources?.cpuMillis, 250);
    assert.equal((await dockerClient().getContainer(instance.backendId).inspect()).HostConfig.CpuQuota, 25_000);
    // Logs: started three times (create, start, reboot), stdout and stderr told apart.
    const chunks: StreamInstanceLogsResponse[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = alice.streamInstanceLogs({ instanceId: instance.id, follow: false, tailLines: 0, sinceTime: undefined });
      stream.on('data', (c: StreamInstanceLogsResponse) => chunks.push(c));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    const out = chunks
      .filter((c) => c.stream === LogStream.STDOUT)
      .map((c) => c.data.toString())
      .join('');
    const err = chunks
      .filter((c) => c.stream === LogStream.STDERR)
      .map((c) => c.data.toString())
      .join('');
    assert.equal(out, 'started\n'.repeat(3));
    assert.equal(err, 'oops\n'.repeat(3));
    assert.ok(chunks.every((c) => c.time instanceof Date));
    // Follow: a line written now arrives on the open stream.
    const followed = await new Promise<string>((resolve, reject) => {
      const stream = alice.streamInstanceLogs({ instanceId: instance.id, follow: true, tailLines: 1, sinceTime: undefined });
      let text = '';
      stream.on('data', (c: StreamInstanceLogsResponse) => {
        text += c.data.toString();
        if (text.includes('later')) {
          stream.cancel();
          resolve(text);
        }
      });
      stream.on('error', (e: { code?: number }) => (e.code === status.CANCELLED ? undefined : reject(e)));
      setTimeout(() => void exec(instance.backendId, ['sh', '-c', 'echo later > /proc/1/fd/1']), 300);
    });
    assert.match(followed, /later/);
  });

  it("scopes every call to the caller's project; admins see all", async () => {
    const instance = await create(alice, 'private-1');
    await expectCode(rpc(bob, bob.getInstance, { instanceId: instance.id }), status.NOT_FOUND, /not found/);
    await expectCode(rpc(bob, bob.stopInstance, { instanceId: instance.id, timeout: undefined, requestId: '' }), status.NOT_FOUND);
    const bobs = (await rpc(bob, bob.listInstances, { pageSize: 0, pageToken: '', project: 'physics', state: 0, node: '' })) as {
      instances: Instance[];
    };
    assert.ok(bobs.instances.every((i) => i.project === 'biology'));
    const root = rt.client('root');
    const all = (await rpc(root, root.listInstances, { pageSize: 1, pageToken: '', project: 'physics', state: 0, node: rt.node })) as {
      instances: Instance[];
      nextPageToken: string;
    };
    assert.equal(all.instances.length, 1);
    assert.ok(all.nextPageToken, 'pages');
  });

  it("never tells a member that an id is another project's: creating with it answers as with an unused id", async () => {
    const alices = await create(alice, 'taken-1');
    // A member never creates directly (the scheduler is its door), so the answer cannot depend on the id.
    const named = (instanceId: string) =>
      expectCode(create(bob, 'bobs-1', {}, { instanceId }, bob), status.PERMISSION_DENIED, /SubmitClaim/);
    const taken = await named(alices.id);
    const unused = await named('i-never-used-anywhere');
    assert.equal(taken.details, unused.details);
    assert.equal(errorDetails(taken).errorInfo?.reason, 'USE_SCHEDULER');
    // Through the scheduler's path (an admin in bob's project) without an id, bob's instance gets
    // one of its own; the other project's instance is as it was.
    const bobs = await create(bob, 'bobs-1');
    assert.notEqual(bobs.id, alices.id);
    assert.equal(bobs.project, 'biology');
    const still = ((await rpc(alice, alice.getInstance, { instanceId: alices.id })) as { instance: Instance }).instance;
    assert.equal(still.state, InstanceState.RUNNING);
    assert.equal(still.project, 'physics');
    // An admin (the scheduler's path) still names instances.
    const root = rt.client('root', 'physics');
    const byAdmin = await create(root, 'named-by-admin', {}, { instanceId: 'i-admin-named-1' });
    assert.equal(byAdmin.id, 'i-admin-named-1');
    for (const id of [bobs.id, byAdmin.id, alices.id])
      await rpc(root, root.deleteInstance, { instanceId: id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
  });

  it('refuses bad input with the right code, naming the problem, and leaves nothing behind', async () => {
    const before = await leftovers(rt.node, rt.stateDir);
    const bad = await expectCode(create(alice, 'Not_A_Hostname'), status.INVALID_ARGUMENT, /spec\.name/);
    assert.equal(errorDetails(bad).violations[0]?.field, 'spec.name');
    await expectCode(create(alice, 'x1', { flavor: 'm9.huge' }), status.INVALID_ARGUMENT, /unknown flavor "m9.huge"/);
    const untrusted = await expectCode(
      create(alice, 'x2', { image: 'evil/miner:latest' }),
      status.FAILED_PRECONDITION,
      /evil\/miner:latest is not in the trusted catalogue/,
    );
    assert.equal(errorDetails(untrusted).errorInfo?.reason, 'IMAGE_NOT_TRUSTED');
    await expectCode(create(alice, 'x3', { image: 'lapis/busybox:gone' }), status.NOT_FOUND, /lapis\/busybox:gone is not on node/);
    await create(alice, 'twin');
    await expectCode(create(alice, 'twin'), status.ALREADY_EXISTS, /already has an instance named "twin"/);
    // Fails while starting (the command does not exist): cleaned up, recorded as ERROR.
    const failed = await expectCode(create(alice, 'x4', { command: ['/no/such/binary'] }), status.FAILED_PRECONDITION, /no\/such\/binary/);
    assert.ok(failed);
    const stopped = await create(alice, 'x5');
    await rpc(alice, alice.stopInstance, { instanceId: stopped.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
    await expectCode(
      rpc(alice, alice.rebootInstance, { instanceId: 'nope', timeout: undefined, requestId: '' }),
      status.NOT_FOUND,
      /instance nope not found/,
    );
    await expectCode(
      rpc(alice, alice.resizeInstance, { instanceId: stopped.id, flavor: '', resources: undefined, requestId: '' }),
      status.INVALID_ARGUMENT,
      /flavor/,
    );
    await rpc(alice, alice.deleteInstance, { instanceId: stopped.id, timeout: undefined, requestId: '' });
    await expectCode(
      rpc(alice, alice.startInstance, { instanceId: stopped.id, requestId: '' }),
      status.FAILED_PRECONDITION,
      /it is DELETED; start needs STOPPED or ERROR/,
    );
    const after = await leftovers(rt.node, rt.stateDir);
    // Only the instances that were created stand: "twin" (running) and nothing of the failures.
    assert.equal(after.containers.length, before.containers.length + 1);
    assert.equal(after.loops.length, 0);
    assert.deepEqual(
      after.mounts,
      [join(rt.stateDir, 'instances')],
      'the shared mount of the instances directory, nothing of the failures',
    );
  });

  it('turns a crash into ERROR with the reason (Docker events), and an OOM kill into ERROR "OOMKilled"', async () => {
    const events = recordEvents(rt.bus, 'lapis.runtime.instance_state_changed.>');
    const crasher = await create(alice, 'crasher', { command: ['sh', '-c', 'sleep 1; exit 3'], restartOnFailure: false });
    await until(
      async () => {
        const i = ((await rpc(alice, alice.getInstance, { instanceId: crasher.id })) as { instance: Instance }).instance;
        return i.state === InstanceState.ERROR && i;
      },
      'crasher in ERROR',
      20_000,
    ).then((i) => {
      assert.equal(i.stateReason, 'exited with code 3');
      assert.equal(i.exitCode, 3);
    });
    const hog = await create(alice, 'hog', {
      flavor: '',
      resources: { cpuMillis: 500, memoryBytes: 16 * 2 ** 20, gpus: 0, pids: 0, diskBytes: 0 },
      command: ['tail', '/dev/zero'],
      restartOnFailure: false,
    });
    const oom = await until(
      async () => {
        const i = ((await rpc(alice, alice.getInstance, { instanceId: hog.id })) as { instance: Instance }).instance;
        return i.state === InstanceState.ERROR && i;
      },
      'hog OOM-killed',
      30_000,
    );
    assert.equal(oom.stateReason, 'OOMKilled');
    await until(
      () =>
        events.events.some(
          (e) =>
            e.payload?.$case === 'instanceStateChanged' &&
            e.payload.instanceStateChanged.instanceId === hog.id &&
            e.payload.instanceStateChanged.reason === 'OOMKilled',
        ),
      'the ERROR event',
    );
    // With the restart policy, a crash is followed by the engine starting it again: ERROR, then RUNNING.
    const phoenix = await create(alice, 'phoenix', {
      command: ['sh', '-c', 'if [ -f /mnt/.crashed ]; then exec sleep 3600; fi; touch /mnt/.crashed; sleep 1; exit 1'],
      restartOnFailure: true,
    });
    await until(
      () => {
        const states = events.events.flatMap((e) =>
          e.payload?.$case === 'instanceStateChanged' && e.payload.instanceStateChanged.instanceId === phoenix.id
            ? [e.payload.instanceStateChanged.state]
            : [],
        );
        return states.join(',') === [InstanceState.CREATING, InstanceState.RUNNING, InstanceState.ERROR, InstanceState.RUNNING].join(',');
      },
      'CREATING, RUNNING, ERROR (exit 1), RUNNING (restarted by the policy)',
      20_000,
    );
    const back = ((await rpc(alice, alice.getInstance, { instanceId: phoenix.id })) as { instance: Instance }).instance;
    assert.equal(back.state, InstanceState.RUNNING);
    assert.equal(back.backendId, phoenix.backendId, 'the same container');
    events.stop();
    // A crashed instance keeps its container, but its claim ended when it failed: a tenant
    // starting (or rebooting) it would run beside the scheduler; an admin may.
    for (const call of [
      rpc(alice, alice.startInstance, { instanceId: crasher.id, requestId: '' }),
      rpc(alice, alice.rebootInstance, { instanceId: crasher.id, timeout: undefined, requestId: '' }),
    ]) {
      const denied = await expectCode(
        call,
        status.PERMISSION_DENIED,
        /failed, which ended its claim.*delete it and submit a claim to the scheduler/,
      );
      assert.equal(errorDetails(denied).errorInfo?.reason, 'USE_SCHEDULER');
    }
    assert.equal(
      (await dockerClient().getContainer(crasher.backendId).inspect()).State.Running,
      false,
      'the refused start started nothing',
    );
    const restarted = (
      (await rpc(adminOf(alice), adminOf(alice).startInstance, { instanceId: crasher.id, requestId: '' })) as { instance: Instance }
    ).instance;
    assert.equal(restarted.state, InstanceState.RUNNING);
  });

  it('deletes: container, mount point and network go; the record says DELETED; a second delete is the same answer', async () => {
    const solo = rt.client('bob');
    const instance = await create(solo, 'lonely');
    const net = (await dockerClient().getContainer(instance.backendId).inspect()).HostConfig.NetworkMode;
    const deleted = (
      (await rpc(solo, solo.deleteInstance, { instanceId: instance.id, timeout: { seconds: 1, nanos: 0 }, requestId: 'del-1' })) as {
        instance: Instance;
      }
    ).instance;
    assert.equal(deleted.state, InstanceState.DELETED);
    const again = (
      (await rpc(solo, solo.deleteInstance, { instanceId: instance.id, timeout: undefined, requestId: 'del-1' })) as { instance: Instance }
    ).instance;
    assert.equal(again.state, InstanceState.DELETED);
    assert.equal(
      await dockerClient()
        .getContainer(instance.backendId)
        .inspect()
        .then(
          () => 'there',
          () => 'gone',
        ),
      'gone',
    );
    assert.equal(
      await dockerClient()
        .getNetwork(net!)
        .inspect()
        .then(
          () => 'there',
          () => 'gone',
        ),
      'gone',
      'the last instance of the project takes its network',
    );
    const left = await leftovers(rt.node, rt.stateDir);
    assert.ok(!left.mounts.some((m) => m.includes(instance.id)));
  });

  it('cleans up completely on purge', async () => {
    const root = rt.client('root');
    await purgeNode(rt.agent);
    assert.deepEqual(await leftovers(rt.node, rt.stateDir), nothingLeft);
    const list = (await rpc(root, root.listInstances, {
      pageSize: 0,
      pageToken: '',
      project: '',
      state: InstanceState.RUNNING,
      node: rt.node,
    })) as { instances: Instance[] };
    assert.equal(list.instances.length, 0);
  });
});
