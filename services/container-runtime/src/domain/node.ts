// What a node reports in its heartbeat: the room its instances hold and its devices with
// who holds each. The scheduler places claims by these figures.
import { DeviceKind, type NodeDevice, type Resources } from '@lapis/proto/lapis/common/v1/common';
import type { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import type { NodeInventory } from './devices';

/** The resources `instances` hold together; GPUs are counted by the devices granted, not the spec. */
export function allocatedBy(instances: readonly Instance[]): Resources {
  return instances.reduce(
    (sum, i) => {
      const r = i.spec?.resources;
      return {
        cpuMillis: sum.cpuMillis + (r?.cpuMillis ?? 0),
        memoryBytes: sum.memoryBytes + (r?.memoryBytes ?? 0),
        gpus: sum.gpus + i.devices.filter((d) => d.kind === DeviceKind.GPU).length,
        pids: sum.pids + (r?.pids ?? 0),
        diskBytes: sum.diskBytes + (r?.diskBytes ?? 0),
      };
    },
    { cpuMillis: 0, memoryBytes: 0, gpus: 0, pids: 0, diskBytes: 0 },
  );
}

/** The node's devices, each GPU with the instance that holds it; InfiniBand and allow-listed devices are shared. */
export function nodeDevices(inventory: NodeInventory, instances: readonly Instance[]): NodeDevice[] {
  const holder = new Map(instances.flatMap((i) => i.devices.map((d) => [d.id, i.id] as const)));
  return [
    ...inventory.gpus.map((g) => ({ ...g, allocatedTo: holder.get(g.id) ?? '' })),
    ...inventory.infiniband.map((p) => ({
      kind: DeviceKind.INFINIBAND,
      vendor: '',
      id: p.split('/').pop()!,
      path: p,
      model: '',
      allocatedTo: '',
    })),
    ...inventory.allowlist.map((p) => ({ kind: DeviceKind.GENERIC, vendor: '', id: p, path: p, model: '', allocatedTo: '' })),
  ];
}
