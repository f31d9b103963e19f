// domain/instance.ts, states.ts, door.ts visibility and container.ts plans: an instance record's
// life as pure rules.
import { strict as assert } from 'node:assert';
import { Backend, InstanceSpec, InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import { instanceEnvironment, planVolumes } from '../../src/domain/container';
import { adminScope, visibleTo } from '../../src/domain/door';
import { metadataFiles, newInstance } from '../../src/domain/instance';
import { HOLDS_ROOM, isGone, TERMINAL } from '../../src/domain/states';

const spec = InstanceSpec.fromPartial({
  name: 'vm-1',
  flavor: 'm1.tiny',
  image: 'busybox',
  resources: { cpuMillis: 1, memoryBytes: 1, gpus: 0, pids: 0, diskBytes: 0 },
  environment: { A: '1' },
  userData: Buffer.from('#cloud-config\n'),
  sshPublicKeys: ['ssh-ed25519 AAA one', 'ssh-ed25519 BBB two'],
});
const input = { id: 'i-1', project: 'physics', user: 'alice', spec, preemptible: true, requestId: 'r-1', attempt: 2 };
const resources = { cpuMillis: 500, memoryBytes: 2 ** 28, gpus: 0, pids: 256, diskBytes: 0 };

describe('domain: a new instance record', () => {
  it('is CREATING on the node with the resources it was placed with, in spec and as its placed size', () => {
    const at = new Date('2026-12-07T12:00:00Z');
    const i = newInstance(input, 'node-1', Backend.DOCKER, 'sha256:abc', resources, at);
    assert.deepEqual(
      [
        i.id,
        i.project,
        i.user,
        i.node,
        i.backend,
        i.state,
        i.imageDigest,
        i.requestId,
        i.attempt,
        i.preemptible,
        i.generation,
        i.backendId,
      ],
      ['i-1', 'physics', 'alice', 'node-1', Backend.DOCKER, InstanceState.CREATING, 'sha256:abc', 'r-1', 2, true, 1, ''],
    );
    assert.deepEqual(i.spec?.resources, resources, "the flavor's resources replace the spec's");
    assert.deepEqual(i.placedResources, resources);
    assert.deepEqual([i.createTime, i.updateTime, i.startTime], [at, at, undefined]);
    assert.deepEqual(spec.resources?.cpuMillis, 1, 'the asked spec is left as it was');
  });

  it('writes /etc/lapis as cloud-init would: user data, one key a line, the identity as JSON', () => {
    const files = metadataFiles(newInstance(input, 'node-1', Backend.DOCKER, '', resources));
    assert.equal(files['user-data']!.toString(), '#cloud-config\n');
    assert.equal(files['ssh-keys'], 'ssh-ed25519 AAA one\nssh-ed25519 BBB two\n');
    assert.deepEqual(JSON.parse(files['instance.json']!.toString()), { id: 'i-1', name: 'vm-1', project: 'physics', flavor: 'm1.tiny' });
  });

  it("gives the workload its environment, with what Lapis tells every instance after the tenant's own", () => {
    const env = instanceEnvironment(newInstance(input, 'node-1', Backend.DOCKER, '', resources));
    assert.deepEqual(env.slice(0, 5), [
      'A=1',
      'LAPIS_INSTANCE_ID=i-1',
      'LAPIS_INSTANCE_NAME=vm-1',
      'LAPIS_PROJECT=physics',
      'LAPIS_FLAVOR=m1.tiny',
    ]);
    assert.ok(env.includes(`LAPIS_USER_DATA=${Buffer.from('#cloud-config\n').toString('base64')}`));
    assert.ok(env.includes('LAPIS_SSH_PUBLIC_KEYS=ssh-ed25519 AAA one\nssh-ed25519 BBB two'));
  });

  it('plans the volumes a workload is made with from its attachments', () => {
    const i = Instance.fromPartial({
      volumeAttachments: [{ volumeId: 'vol-1', instanceId: 'i-1', mountPath: '/mnt/data', readOnly: true, attachTime: new Date() }],
    });
    assert.deepEqual(planVolumes(i), [{ volumeId: 'vol-1', mountPath: '/mnt/data', readOnly: true }]);
  });
});

describe('domain: states and scope', () => {
  it('calls an instance gone when nothing of it is left on the node', () => {
    const gone = (state: InstanceState, backendId: string) => isGone({ state, backendId });
    assert.equal(gone(InstanceState.DELETED, 'c-1'), true);
    assert.equal(gone(InstanceState.PREEMPTED, ''), true);
    assert.equal(gone(InstanceState.ERROR, ''), true, 'failed before or after its container went');
    assert.equal(gone(InstanceState.ERROR, 'c-1'), false, 'a crashed container still holds its ports');
    assert.equal(gone(InstanceState.STOPPED, 'c-1'), false);
    assert.deepEqual(
      [...TERMINAL].map((s) => InstanceState[s]),
      ['DELETED', 'PREEMPTED'],
    );
    assert.ok(!HOLDS_ROOM.has(InstanceState.ERROR), "a failed instance's claim ended: its room is free");
  });

  it("shows a project's records to its members and admins only", () => {
    assert.equal(visibleTo({ user: 'alice', project: 'physics', admin: false }, 'physics'), true);
    assert.equal(visibleTo({ user: 'alice', project: 'physics', admin: false }, 'chemistry'), false);
    assert.equal(visibleTo(adminScope, 'chemistry'), true);
  });
});
