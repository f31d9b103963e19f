// Checks of what callers send, before anything is done: every problem is named by its field.
import { type FieldViolation, invalidArgument } from '@lapis/platform';
import type { Flavor, InstanceSpec, Resources } from '@lapis/proto/lapis/common/v1/common';

/** RFC 1123 label: the instance's name is also its hostname. */
export const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** Ids are KV keys, container names and subject tokens: keep them plain. */
export const ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Attached volumes appear under the instance's one propagated mount point, /mnt. */
export const MOUNT_ROOT = '/mnt';
const MOUNT_PATH = /^\/mnt\/[A-Za-z0-9._-]{1,64}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/;

export const defaultMountPath = (volumeId: string) => `${MOUNT_ROOT}/${volumeId}`;

export function checkMountPath(path: string, field: string): FieldViolation[] {
  if (path === `${MOUNT_ROOT}` || !MOUNT_PATH.test(path) || path.endsWith('/.') || path.endsWith('/..')) {
    return [{ field, description: `"${path}" is not a mount point: volumes appear one level under ${MOUNT_ROOT}, for example ${MOUNT_ROOT}/data` }];
  }
  return [];
}

export function checkId(id: string, field: string): FieldViolation[] {
  return ID.test(id) ? [] : [{ field, description: `"${id}" is not an id: 1 to 64 letters, digits, "-" or "_"` }];
}

export interface CheckedSpec {
  flavor?: Flavor;
  resources: Resources;
}

/** Validates a spec and works out the resources it gets; throws INVALID_ARGUMENT naming every bad field. */
export function checkSpec(spec: InstanceSpec | undefined, flavors: readonly Flavor[]): CheckedSpec {
  const v: FieldViolation[] = [];
  if (!spec) throw invalidArgument([{ field: 'spec', description: 'required' }]);
  if (!NAME.test(spec.name)) {
    v.push({ field: 'spec.name', description: `"${spec.name}" is not a valid name: lower case letters, digits and "-", 1 to 63 characters, starting and ending with a letter or digit (it is the hostname)` });
  }
  let flavor: Flavor | undefined;
  if (spec.flavor) {
    flavor = flavors.find((f) => f.name === spec.flavor);
    if (!flavor) v.push({ field: 'spec.flavor', description: `unknown flavor "${spec.flavor}"; this site has ${flavors.map((f) => f.name).join(', ')}` });
  } else if (!spec.resources?.cpuMillis || !spec.resources.memoryBytes) {
    v.push({ field: 'spec.flavor', description: 'required (or spec.resources with cpu_millis and memory_bytes)' });
  }
  if (!spec.image) v.push({ field: 'spec.image', description: 'required: an image reference from the trusted catalogue' });
  else if (/\s/.test(spec.image)) v.push({ field: 'spec.image', description: `"${spec.image}" is not an image reference` });
  for (const key of Object.keys(spec.environment)) {
    if (!ENV_NAME.test(key)) v.push({ field: `spec.environment[${key}]`, description: 'not a valid variable name' });
    if (key.startsWith('LAPIS_')) v.push({ field: `spec.environment[${key}]`, description: 'LAPIS_* variables are set by Lapis' });
  }
  for (const key of Object.keys(spec.labels)) {
    if (!LABEL_KEY.test(key) || key.startsWith('lapis.')) v.push({ field: `spec.labels[${key}]`, description: 'not a valid label key (lapis.* is reserved)' });
  }
  spec.sshPublicKeys.forEach((key, i) => {
    if (!/^(ssh-|ecdsa-|sk-)\S+ \S+/.test(key) || /[\r\n]/.test(key)) v.push({ field: `spec.ssh_public_keys[${i}]`, description: 'not an OpenSSH public key line' });
  });
  if (spec.userData.length > 64 * 1024) v.push({ field: 'spec.user_data', description: `${spec.userData.length} bytes; at most 65536` });
  spec.volumes.forEach((m, i) => {
    v.push(...checkId(m.volumeId, `spec.volumes[${i}].volume_id`));
    if (m.mountPath) v.push(...checkMountPath(m.mountPath, `spec.volumes[${i}].mount_path`));
  });
  spec.ports.forEach((p, i) => {
    if (!p.containerPort || p.containerPort > 65535) v.push({ field: `spec.ports[${i}].container_port`, description: 'must be 1 to 65535' });
    if (p.hostPort > 65535) v.push({ field: `spec.ports[${i}].host_port`, description: 'must be 0 to 65535' });
  });
  if (v.length) throw invalidArgument(v);
  const base = flavor?.resources ?? spec.resources!;
  return { flavor, resources: { cpuMillis: base.cpuMillis, memoryBytes: base.memoryBytes, gpus: base.gpus, pids: base.pids, diskBytes: base.diskBytes } };
}

/** Resources of a resize: a flavor, or explicit cpu/memory. */
export function checkResize(flavorName: string, resources: Resources | undefined, flavors: readonly Flavor[], current: Resources): Resources {
  if (flavorName) {
    const flavor = flavors.find((f) => f.name === flavorName);
    if (!flavor) throw invalidArgument([{ field: 'flavor', description: `unknown flavor "${flavorName}"; this site has ${flavors.map((f) => f.name).join(', ')}` }]);
    if ((flavor.resources?.gpus ?? 0) !== current.gpus) {
      throw invalidArgument([{ field: 'flavor', description: `"${flavorName}" has ${flavor.resources?.gpus ?? 0} GPUs, the instance ${current.gpus}: devices cannot change while it runs` }]);
    }
    return { ...current, cpuMillis: flavor.resources!.cpuMillis, memoryBytes: flavor.resources!.memoryBytes, pids: flavor.resources!.pids };
  }
  if (!resources || (!resources.cpuMillis && !resources.memoryBytes)) {
    throw invalidArgument([{ field: 'flavor', description: 'required (or resources with cpu_millis and/or memory_bytes)' }]);
  }
  const v: FieldViolation[] = [];
  if (resources.memoryBytes && resources.memoryBytes < 6 * 2 ** 20) v.push({ field: 'resources.memory_bytes', description: 'at least 6 MiB' });
  if (resources.cpuMillis && resources.cpuMillis < 10) v.push({ field: 'resources.cpu_millis', description: 'at least 10 (a hundredth of a CPU)' });
  if (v.length) throw invalidArgument(v);
  return { ...current, cpuMillis: resources.cpuMillis || current.cpuMillis, memoryBytes: resources.memoryBytes || current.memoryBytes };
}
