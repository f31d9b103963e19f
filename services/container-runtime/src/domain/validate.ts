// Checks of what callers send, before anything is done: every problem is named by its field.
// The spec's own rules are the platform's (shared with the scheduler); the flavor and the
// resources are the node's.
import { type FieldViolation, invalidArgument } from '@lapis/platform/errors';
import { type HostPortRange, validateInstanceSpec, VOLUME_MOUNT_ROOT } from '@lapis/platform/instance-spec';
import type { Flavor, InstanceSpec, Resources } from '@lapis/proto/lapis/common/v1/common';

export { checkMountPath } from '@lapis/platform/instance-spec';
/** Ids are KV keys, container names and subject tokens: keep them plain. */
export const ID = /^[A-Za-z0-9_-]{1,64}$/;

export const defaultMountPath = (volumeId: string) => `${VOLUME_MOUNT_ROOT}/${volumeId}`;

export function checkId(id: string, field: string): FieldViolation[] {
  return ID.test(id) ? [] : [{ field, description: `"${id}" is not an id: 1 to 64 letters, digits, "-" or "_"` }];
}

export interface CheckedSpec {
  flavor?: Flavor;
  resources: Resources;
}

/**
 * Validates a spec and works out the resources it gets; throws INVALID_ARGUMENT naming every
 * bad field. `hostPorts` is the node's range (undefined: the node publishes no host ports).
 */
export function checkSpec(spec: InstanceSpec | undefined, flavors: readonly Flavor[], hostPorts: HostPortRange | undefined): CheckedSpec {
  if (!spec) throw invalidArgument([{ field: 'spec', description: 'required' }]);
  const v = validateInstanceSpec(spec, { hostPorts: hostPorts ?? null });
  let flavor: Flavor | undefined;
  if (spec.flavor) {
    flavor = flavors.find((f) => f.name === spec.flavor);
    if (!flavor)
      v.push({
        field: 'spec.flavor',
        description: `unknown flavor "${spec.flavor}"; this site has ${flavors.map((f) => f.name).join(', ')}`,
      });
  } else if (!spec.resources?.cpuMillis || !spec.resources.memoryBytes) {
    v.push({ field: 'spec.flavor', description: 'required (or spec.resources with cpu_millis and memory_bytes)' });
  }
  if (v.length) throw invalidArgument(v);
  const base = flavor?.resources ?? spec.resources!;
  return {
    flavor,
    resources: { cpuMillis: base.cpuMillis, memoryBytes: base.memoryBytes, gpus: base.gpus, pids: base.pids, diskBytes: base.diskBytes },
  };
}

/** Resources of a resize: a flavor, or explicit cpu/memory. */
export function checkResize(
  flavorName: string,
  resources: Resources | undefined,
  flavors: readonly Flavor[],
  current: Resources,
): Resources {
  if (flavorName) {
    const flavor = flavors.find((f) => f.name === flavorName);
    if (!flavor)
      throw invalidArgument([
        { field: 'flavor', description: `unknown flavor "${flavorName}"; this site has ${flavors.map((f) => f.name).join(', ')}` },
      ]);
    if ((flavor.resources?.gpus ?? 0) !== current.gpus) {
      throw invalidArgument([
        {
          field: 'flavor',
          description: `"${flavorName}" has ${flavor.resources?.gpus ?? 0} GPUs, the instance ${current.gpus}: devices cannot change while it runs`,
        },
      ]);
    }
    return { ...current, cpuMillis: flavor.resources!.cpuMillis, memoryBytes: flavor.resources!.memoryBytes, pids: flavor.resources!.pids };
  }
  if (!resources || (!resources.cpuMillis && !resources.memoryBytes)) {
    throw invalidArgument([{ field: 'flavor', description: 'required (or resources with cpu_millis and/or memory_bytes)' }]);
  }
  const v: FieldViolation[] = [];
  if (resources.memoryBytes && resources.memoryBytes < 6 * 2 ** 20)
    v.push({ field: 'resources.memory_bytes', description: 'at least 6 MiB' });
  if (resources.cpuMillis && resources.cpuMillis < 10)
    v.push({ field: 'resources.cpu_millis', description: 'at least 10 (a hundredth of a CPU)' });
  if (v.length) throw invalidArgument(v);
  return { ...current, cpuMillis: resources.cpuMillis || current.cpuMillis, memoryBytes: resources.memoryBytes || current.memoryBytes };
}
