// Devices: what a node has (GPUs from its config, InfiniBand nodes found on it, an allow-list
// of host devices) and what an instance gets, as engine-neutral grants a backend turns into
// its own form (Docker device requests and device mappings; a pod's resource limits).
import { failedPrecondition, invalidArgument, permissionDenied, resourceExhausted } from '@lapis/platform';
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
export function grantDevices(instanceId: string, requests: readonly DeviceRequest[], node: NodeInventory, taken: ReadonlySet<string>): DeviceGrant {
  const grant = emptyGrant();
  requests.forEach((request, i) => {
    const field = `devices[${i}]`;
    switch (request.kind) {
      case DeviceKind.GPU: {
        if (request.cdiNames.length) {
          grant.cdiNames.push(...request.cdiNames);
          grant.devices.push(...request.cdiNames.map((name) => ({ kind: DeviceKind.GPU, vendor: request.vendor, id: name, path: '', model: '', allocatedTo: instanceId })));
          return;
        }
        const vendor = request.vendor || node.gpus[0]?.vendor || 'nvidia';
        const ofVendor = node.gpus.filter((g) => g.vendor === vendor);
        if (node.gpus.length === 0) {
          throw failedPrecondition(`${field}: a GPU was asked for, but this node has no GPUs`, 'NO_GPU_ON_NODE');
        }
        let chosen: NodeDevice[];
        if (request.ids.length) {
          chosen = request.ids.map((id) => {
            const gpu = ofVendor.find((g) => g.id === id);
            if (!gpu) throw invalidArgument([{ field: `${field}.ids`, description: `this node has no ${vendor} GPU "${id}"` }]);
            if (taken.has(gpu.id)) throw resourceExhausted(`${field}: GPU ${id} is in use by another instance`, 'GPU_IN_USE');
            return gpu;
          });
        } else {
          const count = request.count || 1;
          const free = ofVendor.filter((g) => !taken.has(g.id) && !grant.devices.some((d) => d.id === g.id));
          if (ofVendor.length < count) throw failedPrecondition(`${field}: ${count} ${vendor} GPUs asked for, this node has ${ofVendor.length}`, 'NOT_ENOUGH_GPUS');
          if (free.length < count) throw resourceExhausted(`${field}: ${count} ${vendor} GPUs asked for, ${free.length} free on this node`, 'GPU_IN_USE');
          chosen = free.slice(0, count);
        }
        if (node.gpuMode === 'cdi') grant.cdiNames.push(...chosen.map((g) => `${cdiVendor(vendor)}/gpu=${g.id}`));
        else grant.gpuRequests.push({ driver: vendor, ids: chosen.map((g) => g.id) });
        grant.devices.push(...chosen.map((g) => ({ ...g, allocatedTo: instanceId })));
        return;
      }
      case DeviceKind.INFINIBAND: {
        if (node.infiniband.length === 0) throw failedPrecondition(`${field}: InfiniBand was asked for, but this node has no InfiniBand devices`, 'NO_INFINIBAND_ON_NODE');
        for (const path of node.infiniband) {
          if (!grant.paths.includes(path)) grant.paths.push(path);
          grant.devices.push({ kind: DeviceKind.INFINIBAND, vendor: '', id: path.split('/').pop()!, path, model: '', allocatedTo: instanceId });
        }
        if (!grant.capAdd.includes('IPC_LOCK')) grant.capAdd.push('IPC_LOCK');
        grant.memlock = node.infinibandMemlock;
        return;
      }
      case DeviceKind.GENERIC: {
        if (request.ids.length === 0) throw invalidArgument([{ field: `${field}.ids`, description: 'generic devices are asked for by host path, for example /dev/fuse' }]);
        for (const path of request.ids) {
          if (!node.allowlist.includes(path)) {
            throw permissionDenied(`${field}: device ${path} is not in this node's allow-list (${node.allowlist.join(', ') || 'empty'})`, 'DEVICE_NOT_ALLOWED');
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
