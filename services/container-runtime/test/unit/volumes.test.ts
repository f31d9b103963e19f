// domain/volumes.ts: what a new volume may be, a project's room on the node, when a volume attaches.
import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import { Volume, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { attachmentName, checkAttachable, checkNewVolume, checkProjectVolumes } from '../../src/domain/volumes';
import { thrown } from './thrown';

const MiB = 2 ** 20;
const limits = { minVolumeBytes: 16 * MiB, maxVolumeBytes: 256 * MiB };
const volume = (extra: Partial<Volume> = {}) =>
  Volume.fromPartial({
    id: 'vol-1',
    name: 'data',
    project: 'physics',
    sizeBytes: 64 * MiB,
    node: 'node-1',
    state: VolumeState.AVAILABLE,
    ...extra,
  });

describe('domain: a new volume', () => {
  it('takes a plain name and a size within the node limits, ext4 by default', () => {
    assert.deepEqual(checkNewVolume({ name: 'scratch-1.a_b', sizeBytes: 16 * MiB, filesystem: '' }, limits), { filesystem: 'ext4' });
    assert.deepEqual(checkNewVolume({ name: 'x', sizeBytes: 256 * MiB, filesystem: 'ext4' }, limits), { filesystem: 'ext4' });
  });

  it('names every bad field at once', () => {
    const error = thrown(() => checkNewVolume({ name: 'Data!', sizeBytes: 1, filesystem: 'xfs' }, limits));
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.deepEqual(
      error.violations.map((v) => v.field),
      ['name', 'filesystem', 'size_bytes'],
    );
    assert.match(
      thrown(() => checkNewVolume({ name: 'big', sizeBytes: 257 * MiB, filesystem: '' }, limits)).violations[0]!.description,
      /larger than the largest volume this node makes \(268435456\)/,
    );
    for (const name of ['', '-a', 'a-', 'A', 'a'.repeat(64)])
      assert.equal(thrown(() => checkNewVolume({ name, sizeBytes: 16 * MiB, filesystem: '' }, limits)).code, status.INVALID_ARGUMENT, name);
  });

  it('keeps names unique in the project and bounds what it holds on this node', () => {
    const mine = [volume({ name: 'a', sizeBytes: 100 * MiB }), volume({ name: 'b', sizeBytes: 100 * MiB, node: 'node-2' })];
    const taken = thrown(() => checkProjectVolumes(mine, 'physics', 'node-1', 'b', MiB, 0));
    assert.deepEqual([taken.code, taken.reason], [status.ALREADY_EXISTS, 'NAME_TAKEN']);
    // 100 MiB held on node-1 (node-2's does not count): 28 MiB more fit in 128 MiB, 29 do not.
    checkProjectVolumes(mine, 'physics', 'node-1', 'c', 28 * MiB, 128 * MiB);
    const over = thrown(() => checkProjectVolumes(mine, 'physics', 'node-1', 'c', 29 * MiB, 128 * MiB));
    assert.deepEqual([over.code, over.reason], [status.RESOURCE_EXHAUSTED, 'VOLUME_QUOTA']);
    assert.match(over.message, /project physics has 104857600 bytes of volumes on node node-1/);
    checkProjectVolumes(mine, 'physics', 'node-1', 'c', 10 * 2 ** 40, 0); // 0: no limit
  });
});

describe('domain: when a volume attaches', () => {
  const reason = (v: Volume, instanceNode = 'node-1', agentNode = 'node-1', claims = false) =>
    thrown(() => checkAttachable(v, instanceNode, agentNode, claims)).reason;

  it("takes a free volume on the instance's node, which is this agent's", () => {
    checkAttachable(volume(), 'node-1', 'node-1', false);
    assert.equal(
      reason(
        volume({
          state: VolumeState.ATTACHED,
          attachment: { volumeId: 'vol-1', instanceId: 'i-9', mountPath: '/mnt/data', readOnly: false, attachTime: undefined },
        }),
      ),
      'VOLUME_ALREADY_ATTACHED',
    );
    assert.equal(reason(volume({ state: VolumeState.ERROR })), 'VOLUME_NOT_AVAILABLE');
    assert.equal(reason(volume({ state: VolumeState.DELETING })), 'VOLUME_NOT_AVAILABLE');
    assert.equal(reason(volume({ node: 'node-2' })), 'VOLUME_ON_ANOTHER_NODE');
    assert.equal(reason(volume({ node: 'node-2' }), 'node-2', 'node-1'), 'WRONG_NODE');
  });

  it('gives a Pending claim (CREATING) only where the engine keeps claims: a WaitForFirstConsumer class binds it then', () => {
    assert.equal(reason(volume({ state: VolumeState.CREATING, stateReason: 'waiting' })), 'VOLUME_NOT_AVAILABLE');
    assert.match(
      thrown(() => checkAttachable(volume({ state: VolumeState.CREATING, stateReason: 'waiting' }), 'node-1', 'node-1', false)).message,
      /is CREATING, not AVAILABLE \(waiting\)/,
    );
    checkAttachable(volume({ state: VolumeState.CREATING }), 'node-1', 'node-1', true);
  });

  it('mounts a volume under the last part of its mount path', () => {
    assert.equal(attachmentName('/mnt/data'), 'data');
    assert.equal(attachmentName('/mnt/vol-1'), 'vol-1');
  });
});
