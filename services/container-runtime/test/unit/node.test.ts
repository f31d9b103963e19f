// domain/node.ts: the room and devices a node reports in its heartbeat.
import { strict as assert } from 'node:assert';
import { DeviceKind } from '@lapis/proto/lapis/common/v1/common';
import { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import { parseGpuList, type NodeInventory } from '../../src/domain/devices';
import { allocatedBy, nodeDevices } from '../../src/domain/node';

const gpus = parseGpuList('nvidia:GPU-a:A100,nvidia:GPU-b:A100');
const inventory: NodeInventory = {
  gpus,
  infiniband: ['/dev/infiniband/uverbs0'],
  allowlist: ['/dev/fuse'],
  gpuMode: 'device-request',
  infinibandMemlock: -1,
};
const instance = (id: string, cpuMillis: number, memoryBytes: number, pids: number, gpuIds: string[] = []) =>
  Instance.fromPartial({
    id,
    spec: { resources: { cpuMillis, memoryBytes, pids, gpus: 9, diskBytes: 0 } },
    devices: [
      ...gpuIds.map((g) => ({ kind: DeviceKind.GPU, vendor: 'nvidia', id: g, allocatedTo: id })),
      // Shared devices are granted too, but hold no GPU.
      { kind: DeviceKind.INFINIBAND, vendor: '', id: 'uverbs0', path: '/dev/infiniband/uverbs0', allocatedTo: id },
    ],
  });

describe('domain: what a node reports', () => {
  it('adds up what its instances hold, counting GPUs by the devices granted', () => {
    const held = allocatedBy([instance('i-1', 500, 2 ** 28, 256), instance('i-2', 2000, 2 ** 30, 0, ['GPU-b'])]);
    assert.deepEqual(held, { cpuMillis: 2500, memoryBytes: 2 ** 28 + 2 ** 30, gpus: 1, pids: 256, diskBytes: 0 });
    assert.deepEqual(allocatedBy([]), { cpuMillis: 0, memoryBytes: 0, gpus: 0, pids: 0, diskBytes: 0 });
  });

  it('lists its devices, each GPU with the instance holding it', () => {
    const devices = nodeDevices(inventory, [instance('i-2', 2000, 2 ** 30, 0, ['GPU-b'])]);
    assert.deepEqual(
      devices.map((d) => [DeviceKind[d.kind], d.id, d.path, d.allocatedTo]),
      [
        ['GPU', 'GPU-a', '', ''],
        ['GPU', 'GPU-b', '', 'i-2'],
        ['INFINIBAND', 'uverbs0', '/dev/infiniband/uverbs0', ''],
        ['GENERIC', '/dev/fuse', '/dev/fuse', ''],
      ],
    );
  });
});
