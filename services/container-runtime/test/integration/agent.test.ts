import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { unique, until } from '@lapis/platform/testing';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Event } from '@lapis/proto/lapis/events/v1/events';
import { type Instance, type Volume, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import {
  adminOf,
  baseSpec,
  dockerClient,
  exec,
  leftovers,
  nothingLeft,
  purgeNode,
  recordEvents,
  rpc,
  startRuntime,
  type Runtime,
} from '../harness';

const admin = { user: 'root', project: '', admin: true };
const stateChanges = (events: Event[], id: string) =>
  events.flatMap((e) =>
    e.payload?.$case === 'instanceStateChanged' && e.payload.instanceStateChanged.instanceId === id ? [e.payload.instanceStateChanged] : [],
  );

describe('node agent: placements, engine events, heartbeats, restart without loss or leaks', function () {
  let rt: Runtime;
  before(async () => (rt = await startRuntime()));
  after(async () => rt?.stop({ purge: true }));

  const place = (claimId: string, spec: ReturnType<typeof baseSpec>, attempt = 1) =>
    rt.bus.publish(
      {
        $case: 'claimPlaced',
        claimPlaced: {
          claimId,
          project: 'physics',
          user: 'alice',
          node: rt.node,
          spec,
          preemptible: true,
          attempt,
          requestId: `req-${claimId}`,
        },
      },
      rt.node,
      `${claimId}.placed.${attempt}`,
    );
  const get = async (id: string) => (await rt.agent.store.instances.get(id))?.value;

  it('creates placed instances from its durable consumer, once, and announces every state with its resources', async () => {
    const events = recordEvents(rt.bus, 'lapis.runtime.instance_state_changed.>');
    const claim = unique('claim');
    await place(claim, baseSpec('placed-1'));
    await until(async () => (await get(claim))?.state === InstanceState.RUNNING, 'placed instance RUNNING', 20_000);
    // The scheduler retrying the same placement (same event id) is dropped by the stream;
    // a copy with another id is recognised by the request id: still one container.
    await rt.bus.publish(
      {
        $case: 'claimPlaced',
        claimPlaced: {
          claimId: claim,
          project: 'physics',
          user: 'alice',
          node: rt.node,
          spec: baseSpec('placed-1'),
          preemptible: true,
          attempt: 1,
          requestId: `req-${claim}`,
        },
      },
      rt.node,
    );
    await until(() => stateChanges(events.events, claim).length >= 2, 'two events');
    const changes = stateChanges(events.events, claim);
    assert.deepEqual(
      changes.map((c) => c.state),
      [InstanceState.CREATING, InstanceState.RUNNING],
    );
    assert.equal(changes[1]!.resources?.cpuMillis, 500);
    assert.equal(changes[1]!.resources?.memoryBytes, 256 * 2 ** 20);
    assert.equal((await leftovers(rt.node, rt.stateDir)).containers.filter((c) => c.includes(claim)).length, 1);

    // A placement that cannot run (unknown flavor) becomes ERROR, so the scheduler frees its room.
    const bad = unique('claim');
    await place(bad, baseSpec('placed-bad', { flavor: 'm9.huge' }));
    await until(
      () => stateChanges(events.events, bad).some((c) => c.state === InstanceState.ERROR),
      'ERROR event of the bad placement',
      20_000,
    );
    assert.match(stateChanges(events.events, bad)[0]!.reason, /unknown flavor "m9.huge"/);

    // Cancelled: deleted.
    await rt.bus.publish(
      { $case: 'claimCancelled', claimCancelled: { claimId: claim, project: 'physics', node: rt.node, attempt: 1 } },
      rt.node,
    );
    await until(async () => (await get(claim))?.state === InstanceState.DELETED, 'cancelled instance DELETED', 20_000);
    events.stop();
  });

  it('a cancellation handled before its placement (they come on consumers of their own): the placement makes nothing and the instance is announced DELETED', async () => {
    const claim = unique('claim');
    const events = recordEvents(rt.bus, `lapis.runtime.instance_state_changed.${claim}`);
    await rt.bus.publish(
      { $case: 'claimCancelled', claimCancelled: { claimId: claim, project: 'physics', node: rt.node, attempt: 1 } },
      rt.node,
    );
    await until(async () => !!(await rt.agent.store.requests.get(`ClaimCancelled.${claim}`)), 'the cancellation handled', 20_000);
    await place(claim, baseSpec('cancelled-first'));
    await until(async () => (await get(claim))?.state === InstanceState.DELETED, 'DELETED', 20_000);
    assert.match((await get(claim))!.stateReason, /cancelled before its placement/);
    await until(() => stateChanges(events.events, claim).some((c) => c.state === InstanceState.DELETED), 'DELETED announced');
    assert.deepEqual(
      (await leftovers(rt.node, rt.stateDir)).containers.filter((c) => c.includes(claim)),
      [],
      'no container was made for the cancelled claim',
    );
    events.stop();
  });

  it('preempts after the grace period (SIGTERM, then kill), removes the instance and announces PREEMPTED', async () => {
    const claim = unique('spot');
    await place(claim, baseSpec('spot-1'));
    await until(async () => (await get(claim))?.state === InstanceState.RUNNING, 'spot instance RUNNING', 20_000);
    const backendId = (await get(claim))!.backendId;
    const events = recordEvents(rt.bus, `lapis.runtime.instance_state_changed.${claim}`);
    await rt.bus.publish(
      {
        $case: 'preemptionNotice',
        preemptionNotice: {
          instanceId: claim,
          project: 'physics',
          node: rt.node,
          gracePeriod: { seconds: 1, nanos: 0 },
          forClaimId: 'big-one',
        },
      },
      rt.node,
    );
    await until(async () => (await get(claim))?.state === InstanceState.PREEMPTED, 'PREEMPTED', 20_000);
    assert.equal((await get(claim))!.stateReason, 'preempted for claim big-one');
    assert.equal(
      await dockerClient()
        .getContainer(backendId)
        .inspect()
        .then(
          () => 'there',
          () => 'gone',
        ),
      'gone',
    );
    await until(() => stateChanges(events.events, claim).some((c) => c.state === InstanceState.PREEMPTED), 'PREEMPTED event');
    events.stop();
  });

  it('sends heartbeats with capacity, allocations, devices and cached images', async () => {
    const beats = recordEvents(rt.bus, `lapis.runtime.node_heartbeat.${rt.node}`);
    await until(() => beats.events.length >= 1, 'a heartbeat', 5_000);
    const node =
      beats.events.at(-1)!.payload?.$case === 'nodeHeartbeat'
        ? (
            beats.events.at(-1)!.payload as {
              nodeHeartbeat: { node: { name: string; capacity: { cpuMillis: number }; cachedImages: string[]; instanceCount: number } };
            }
          ).nodeHeartbeat.node
        : undefined;
    assert.equal(node?.name, rt.node);
    assert.ok((node?.capacity.cpuMillis ?? 0) > 0);
    const imageId = (await dockerClient().getImage('lapis/busybox:testenv').inspect()).Id;
    assert.ok(node?.cachedImages.includes(imageId));
    beats.stop();
  });

  it('restarts without losing or leaking anything: adopts by labels, marks vanished, removes orphans', async () => {
    const alice = rt.client('alice', 'physics');
    const mk = async (name: string) =>
      (
        (await rpc(adminOf(alice), adminOf(alice).createInstance, {
          instanceId: '',
          spec: baseSpec(name),
          preemptible: false,
          requestId: '',
        })) as { instance: Instance }
      ).instance;
    const keeper = await mk('survivor');
    const vol = (
      (await rpc(alice, alice.createVolume, {
        name: 'kept',
        sizeBytes: 32 * 2 ** 20,
        filesystem: '',
        node: '',
        labels: {},
        requestId: '',
      })) as { volume: Volume }
    ).volume;
    await rpc(alice, alice.attachVolume, {
      volumeId: vol.id,
      instanceId: keeper.id,
      mountPath: '/mnt/kept',
      readOnly: false,
      requestId: '',
    });
    await exec(keeper.backendId, ['sh', '-c', 'echo still-here > /mnt/kept/f']);
    const lost = await mk('lost-record');
    const doomed = await mk('doomed');
    const spare = (
      (await rpc(alice, alice.createVolume, {
        name: 'spare',
        sizeBytes: 32 * 2 ** 20,
        filesystem: '',
        node: '',
        labels: {},
        requestId: '',
      })) as { volume: Volume }
    ).volume;
    const before = await leftovers(rt.node, rt.stateDir);

    // The agent goes away (as in a crash: nothing is cleaned up), and while it is away:
    await rt.stop();
    const { node, stateDir } = rt;
    const lateClaim = unique('late');
    rt = await startRuntime({ node, stateDir, consume: false }).then(async (probe) => {
      // ... its store loses a record (the container still carries everything in its labels),
      await probe.agent.store.instances.delete(lost.id);
      // ... and the scheduler places an instance on it: the durable consumer keeps it for later.
      await probe.bus.publish(
        {
          $case: 'claimPlaced',
          claimPlaced: {
            claimId: lateClaim,
            project: 'physics',
            user: 'alice',
            node,
            spec: baseSpec('placed-while-down'),
            preemptible: false,
            attempt: 1,
            requestId: '',
          },
        },
        node,
      );
      await probe.stop();
      return probe;
    });
    // ... a container goes behind its back,
    await dockerClient().getContainer(doomed.backendId).remove({ force: true });
    // ... and orphans appear: a labelled container no instance owns, a mount, a loop device.
    const ghost = await dockerClient().createContainer({
      Image: 'lapis/busybox:testenv',
      Cmd: ['sleep', '600'],
      Labels: { 'lapis.node': node, 'lapis.instance-id': 'ghost' },
    });
    await ghost.start();
    const ghostDir = join(stateDir, 'instances', 'ghost', 'mnt');
    mkdirSync(ghostDir, { recursive: true });
    execFileSync('mount', ['--bind', ghostDir, ghostDir]);
    const strayLoop = execFileSync('losetup', ['--find', '--show', join(stateDir, 'volumes', `${spare.id}.img`)])
      .toString()
      .trim();

    rt = await startRuntime({ node, stateDir });
    await until(async () => (await get(lateClaim))?.state === InstanceState.RUNNING, 'the placement made while the agent was down', 20_000);
    const late = (await get(lateClaim))!;
    // Adopted and still running, with its volume and data.
    const survivor = (await rt.agent.store.instances.get(keeper.id))!.value;
    assert.equal(survivor.state, InstanceState.RUNNING);
    assert.equal(survivor.backendId, keeper.backendId);
    assert.equal((await exec(keeper.backendId, ['cat', '/mnt/kept/f'])).out, 'still-here\n');
    assert.equal((await rt.agent.store.volumes.get(vol.id))!.value.state, VolumeState.ATTACHED);
    const adopted = (await rt.agent.store.instances.get(lost.id))!.value;
    assert.equal(adopted.state, InstanceState.RUNNING);
    assert.equal(adopted.spec?.name, 'lost-record');
    assert.equal(adopted.project, 'physics');
    const vanished = (await rt.agent.store.instances.get(doomed.id))!.value;
    assert.equal(vanished.state, InstanceState.ERROR);
    assert.equal(vanished.stateReason, 'container vanished');
    // Orphans are gone; what stands is exactly what stood before, less the vanished instance's mount point.
    assert.equal(
      await ghost.inspect().then(
        () => 'there',
        () => 'gone',
      ),
      'gone',
    );
    const after = await leftovers(node, stateDir);
    assert.ok(!after.loops.includes(strayLoop), 'stray loop device freed');
    assert.ok(!after.mounts.some((m) => m.includes('ghost')), 'stray mount removed');
    assert.deepEqual(after.loops, before.loops);
    assert.deepEqual(after.mounts.filter((m) => !m.includes(late.id)).sort(), before.mounts.filter((m) => !m.includes(doomed.id)).sort());
    assert.deepEqual(after.containers.sort(), [...before.containers.filter((c) => !c.includes(doomed.id)), `/lapis-${late.id}`].sort());
    // A second restart changes nothing.
    const report = await rt.agent.reconciler.run();
    assert.deepEqual(report, { adopted: [], vanished: [], removedContainers: [], removedMounts: [], freedLoops: [], adoptedVolumes: [] });
    await purgeNode(rt.agent);
    assert.deepEqual(await leftovers(node, stateDir), nothingLeft);
    assert.deepEqual((await rt.agent.instances.list(admin, { project: '', state: InstanceState.RUNNING, node })).length, 0);
  });

  it('keeps secrets out of labels and host files root-only; adopts a container whose record was lost with its secrets', async () => {
    const canary = `canary-${randomBytes(6).toString('hex')}`;
    const alice = rt.client('alice', 'physics');
    const spec = baseSpec('secretive', {
      environment: { API_KEY: `${canary}-env` },
      userData: Buffer.from(`#cloud-config\npassword: ${canary}-ud\n`),
      sshPublicKeys: [`ssh-ed25519 AAAA${canary}key alice@lab`],
    });
    const instance = (
      (await rpc(adminOf(alice), adminOf(alice).createInstance, { instanceId: '', spec, preemptible: false, requestId: '' })) as {
        instance: Instance;
      }
    ).instance;
    const volume = (
      (await rpc(alice, alice.createVolume, {
        name: 'private-data',
        sizeBytes: 32 * 2 ** 20,
        filesystem: '',
        node: '',
        labels: {},
        requestId: '',
      })) as { volume: Volume }
    ).volume;
    const noCanary = (where: string, labels: Record<string, string>) => {
      for (const [key, value] of Object.entries(labels)) {
        // The spec label is base64 protobuf: strings are in it as they are.
        assert.ok(
          !`${value} ${Buffer.from(value, 'base64').toString('latin1')}`.includes(canary),
          `${where} label ${key} carries a secret`,
        );
      }
    };
    noCanary('container', (await dockerClient().getContainer(instance.backendId).inspect()).Config.Labels);
    // Root only on the host, whatever the umask: the instance's directory, its metadata, the kept secrets, volume files.
    const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);
    const dir = join(rt.stateDir, 'instances', instance.id);
    assert.deepEqual(
      [
        dir,
        join(dir, 'etc'),
        join(dir, 'etc', 'user-data'),
        join(dir, 'etc', 'ssh-keys'),
        join(dir, 'secrets.pb'),
        join(rt.stateDir, 'instances'),
        join(rt.stateDir, 'volumes'),
        join(rt.stateDir, 'volumes', `${volume.id}.img`),
      ].map(mode),
      ['700', '700', '600', '600', '600', '700', '700', '600'],
    );
    // Still readable by the instance's root, as cloud-init keeps it.
    assert.match((await exec(instance.backendId, ['cat', '/etc/lapis/user-data'])).out, new RegExp(`${canary}-ud`));

    // The agent restarts after its store lost the record: the container is adopted, secrets and all.
    await rt.agent.store.instances.delete(instance.id);
    await rt.stop();
    const { node, stateDir } = rt;
    rt = await startRuntime({ node, stateDir });
    const adopted = (await rt.agent.store.instances.get(instance.id))!.value;
    assert.equal(adopted.state, InstanceState.RUNNING);
    assert.equal(adopted.backendId, instance.backendId);
    assert.equal(adopted.spec?.environment.API_KEY, `${canary}-env`);
    assert.equal(Buffer.from(adopted.spec!.userData).toString(), `#cloud-config\npassword: ${canary}-ud\n`);
    assert.deepEqual(adopted.spec?.sshPublicKeys, [`ssh-ed25519 AAAA${canary}key alice@lab`]);
    const root = rt.client('root');
    await rpc(root, root.deleteInstance, { instanceId: instance.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
    await rpc(root, root.deleteVolume, { volumeId: volume.id, requestId: '' });
  });
});
