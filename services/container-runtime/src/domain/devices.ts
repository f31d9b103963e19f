// Devices: what a node has (GPUs from its config, InfiniBand nodes found on it, an allow-list
// of host devices) and what an instance gets, as engine-neutral grants a backend turns into
// its own form (Docker device requests and device mappings; a pod's resource limits).
import { failedPrecondition, invalidArgument, permissionDenied, resourceExhausted } from '@lapis/platform/errors';
import { DeviceKind, type DeviceRequest, type NodeDevice } from '@lapis/proto/lapis/common/v1/common';

export interface NodeInventory {
  gpus: NodeDevice[];
  /** Device nodes under the InfiniBand directory (empty: no InfiniBand here). */
  infiniband: string[];
  /** Host paths an instance may ask for. */
  allowlist: string[];
  gpuMode: 'device-request' | 'cdi';
  /** Memlock limit for InfiniBand instances, bytes; -1 is unlimited. */
  infinibandMemlock: number;
}

export interface DeviceGrant {
  /** GPUs by driver and ids (Docker DeviceRequests). */
  gpuRequests: Array<{ driver: string; ids: string[] }>;
  /** CDI names, used as they are. */
  cdiNames: string[];
  /** Host device nodes mapped at the same path inside. */
  paths: string[];
  capAdd: string[];
  /** Memlock limit to set (bytes, -1 unlimited), or undefined to leave the engine's default. */
  memlock?: number;
  /** What the instance holds (reported in Instance.devices and the heartbeat). */
  devices: NodeDevice[];
}

/** "nvidia:GPU-1:A100,nvidia:GPU-2" -> GPUs. */
export function parseGpuList(text: string): NodeDevice[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const [vendor = '', id = '', model = ''] = entry.split(':');
      if (!vendor || !id) throw new Error(`LAPIS_GPUS entry "${entry}" is not "vendor:id[:model]"`);
      return { kind: DeviceKind.GPU, vendor, id, path: '', model, allocatedTo: '' };
    });
}

export const emptyGrant = (): DeviceGrant => ({ gpuRequests: [], cdiNames: [], paths: [], capAdd: [], devices: [] });

/**
 * Grants the devices asked for, or throws naming what the node lacks. `taken` are GPU ids
 * other instances hold.
 */
export function grantDevices(
  instanceId: string,
  requests: readonly DeviceRequest[],
  node: NodeInventory,
  taken: ReadonlySet<string>,
): DeviceGrant {
  const grant = emptyGrant();
  requests.forEach((request, i) => {
    const field = `devices[${i}]`;
    switch (request.kind) {
      case DeviceKind.GPU: {
        if (node.gpus.length === 0) {
          throw failedPrecondition(`${field}: a GPU was asked for, but this node has no GPUs`, 'NO_GPU_ON_NODE');
        }
        const held = (gpu: NodeDevice) => taken.has(gpu.id) || grant.devices.some((d) => d.id === gpu.id);
        let chosen: NodeDevice[];
        if (request.cdiNames.length) {
          // A CDI name is one of the node's own GPUs under its CDI name, counted like an id:
          // anything else ("nvidia.com/gpu=all", another class) would reach past the inventory.
          chosen = request.cdiNames.map((name, j) => {
            const gpu = node.gpus.find((g) => cdiName(g) === name);
            if (!gpu) {
              throw invalidArgument([
                {
                  field: `${field}.cdi_names[${j}]`,
                  description: `this node lists no GPU "${name}" (it has ${node.gpus.map(cdiName).join(', ')})`,
                },
              ]);
            }
            if (held(gpu) || request.cdiNames.indexOf(name) !== j)
              throw resourceExhausted(
                `${field}.cdi_names[${j}]: GPU ${name} is in use (by another instance, or named twice)`,
                'GPU_IN_USE',
              );
            return gpu;
          });
        } else if (request.ids.length) {
          const vendor = request.vendor || node.gpus[0]?.vendor || 'nvidia';
          const ofVendor = node.gpus.filter((g) => g.vendor === vendor);
          chosen = request.ids.map((id) => {
            const gpu = ofVendor.find((g) => g.id === id);
            if (!gpu) throw invalidArgument([{ field: `${field}.ids`, description: `this node has no ${vendor} GPU "${id}"` }]);
            if (held(gpu)) throw resourceExhausted(`${field}: GPU ${id} is in use by another instance`, 'GPU_IN_USE');
            return gpu;
          });
        } else {
          const vendor = request.vendor || node.gpus[0]?.vendor || 'nvidia';
          const ofVendor = node.gpus.filter((g) => g.vendor === vendor);
          const count = request.count || 1;
          const free = ofVendor.filter((g) => !held(g));
          if (ofVendor.length < count)
            throw failedPrecondition(`${field}: ${count} ${vendor} GPUs asked for, this node has ${ofVendor.length}`, 'NOT_ENOUGH_GPUS');
          if (free.length < count)
            throw resourceExhausted(`${field}: ${count} ${vendor} GPUs asked for, ${free.length} free on this node`, 'GPU_IN_USE');
          chosen = free.slice(0, count);
        }
        // Given the way the node gives GPUs, whichever way they were asked for.
        if (node.gpuMode === 'cdi') grant.cdiNames.push(...chosen.map(cdiName));
        else for (const [driver, ids] of byVendor(chosen)) grant.gpuRequests.push({ driver, ids });
        grant.devices.push(...chosen.map((g) => ({ ...g, allocatedTo: instanceId })));
        return;
      }
      case DeviceKind.INFINIBAND: {
        if (node.infiniband.length === 0)
          throw failedPrecondition(`${field}: InfiniBand was asked for, but this node has no InfiniBand devices`, 'NO_INFINIBAND_ON_NODE');
        for (const path of node.infiniband) {
          if (!grant.paths.includes(path)) grant.paths.push(path);
          grant.devices.push({
            kind: DeviceKind.INFINIBAND,
            vendor: '',
            id: path.split('/').pop()!,
            path,
            model: '',
            allocatedTo: instanceId,
          });
        }
        if (!grant.capAdd.includes('IPC_LOCK')) grant.capAdd.push('IPC_LOCK');
        grant.memlock = node.infinibandMemlock;
        return;
      }
      case DeviceKind.GENERIC: {
        if (request.ids.length === 0)
          throw invalidArgument([
            { field: `${field}.ids`, description: 'generic devices are asked for by host path, for example /dev/fuse' },
          ]);
        for (const path of request.ids) {
          if (!node.allowlist.includes(path)) {
            throw permissionDenied(
              `${field}: device ${path} is not in this node's allow-list (${node.allowlist.join(', ') || 'empty'})`,
              'DEVICE_NOT_ALLOWED',
            );
          }
          if (!grant.paths.includes(path)) grant.paths.push(path);
          grant.devices.push({ kind: DeviceKind.GENERIC, vendor: '', id: path, path, model: '', allocatedTo: instanceId });
        }
        return;
      }
      default:
        throw invalidArgument([{ field: `${field}.kind`, description: 'one of GPU, INFINIBAND, GENERIC' }]);
    }
  });
  return grant;
}

const cdiVendor = (vendor: string) => (vendor.includes('.') ? vendor : `${vendor}.com`);
/** A GPU's CDI name: "nvidia:GPU-1" is nvidia.com/gpu=GPU-1. */
export const cdiName = (gpu: NodeDevice) => `${cdiVendor(gpu.vendor)}/gpu=${gpu.id}`;

function byVendor(gpus: NodeDevice[]): Map<string, string[]> {
  const result = new Map<string, string[]>();
  for (const g of gpus) result.set(g.vendor, [...(result.get(g.vendor) ?? []), g.id]);
  return result;
}
