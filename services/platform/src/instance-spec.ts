// The rules of an InstanceSpec that do not depend on a site's flavors, shared by every service
// that takes one (the scheduler at SubmitClaim, the container runtime at CreateInstance), so a
// spec the scheduler accepts is never refused by the runtime after it was placed.
//
//   name         RFC 1123 label (it is the hostname): lower case letters, digits and "-",
//                1 to 63, starting and ending with a letter or digit. Required unless the
//                caller fills in a name itself (`nameOptional`, see defaultInstanceName).
//   image        required, no white space.
//   labels       at most MAX_LABELS; keys are lower case letters, digits, ".", "_", "-" and
//                at most one "/", 1 to 63, starting and ending with a letter or digit; keys
//                under a reserved prefix (RESERVED_LABEL_PREFIXES: Lapis's own container labels
//                and pod labels, Kubernetes' annotation prefixes, since the runtime copies labels
//                onto pods) are refused; values at most 253 characters without control
//                characters.
//   environment  names are [A-Za-z_][A-Za-z0-9_]*; LAPIS_* is set by Lapis.
//   ssh keys     one OpenSSH public key line each.
//   user data    at most 64 KiB.
//   ports        container port 1..65535, host port 0..65535; where the caller knows the
//                site's host port range (`hostPorts`), a host port outside it is refused, and
//                with no range (the default) every port mapping is (0 would be picked from it).
//   volumes      volume ids of 1 to 64 letters, digits, "-", "_"; mount points one level
//                under /mnt.
import { type InstanceSpec, PortProtocol } from '@lapis/proto/lapis/common/v1/common';
import type { FieldViolation } from './errors';

/** RFC 1123 label. */
export const INSTANCE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const LABEL_KEY = /^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/;
/** Label keys Lapis and Kubernetes keep for themselves ("lapis." covers "lapis.dev/"). */
export const RESERVED_LABEL_PREFIXES: readonly string[] = ['lapis.', 'kubernetes.io/', 'k8s.io/'];
/** Subdomains of these are reserved too (for example node.kubernetes.io/). */
const RESERVED_LABEL_DOMAINS: readonly string[] = ['.kubernetes.io/', '.k8s.io/'];
export const MAX_LABELS = 64;
export const MAX_LABEL_VALUE = 253;
export const MAX_USER_DATA = 64 * 1024;
export const VOLUME_MOUNT_ROOT = '/mnt';
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const VOLUME_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MOUNT_PATH = /^\/mnt\/[A-Za-z0-9._-]{1,64}$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Host ports the site admin lets instances publish, inclusive. */
export interface HostPortRange {
  min: number;
  max: number;
}

/** "30000-32767" -> { min, max }; "" -> undefined (no host ports). Throws on anything else. */
export function parseHostPortRange(text: string): HostPortRange | undefined {
  if (text.trim() === '') return undefined;
  const match = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  const min = Number(match?.[1]);
  const max = Number(match?.[2]);
  if (!match || min < 1 || max > 65535 || min > max)
    throw new Error(`${JSON.stringify(text)} is not a port range such as 30000-32767 (1 to 65535, low-high)`);
  return { min, max };
}

/** A config check (loadConfig's cross-checks) for LAPIS_HOST_PORTS, which the scheduler and the runtime share. */
export function checkHostPortsVariable(config: { LAPIS_HOST_PORTS: string }): string | undefined {
  try {
    parseHostPortRange(config.LAPIS_HOST_PORTS);
    return undefined;
  } catch (error) {
    return `LAPIS_HOST_PORTS=${(error as Error).message}`;
  }
}

export interface InstanceSpecRules {
  /** The caller names an unnamed instance itself (defaultInstanceName): an empty name is fine. */
  nameOptional?: boolean;
  /** Prefix of the field paths (default "spec"). */
  field?: string;
  /**
   * The site's host port range, where the caller knows it (the scheduler, the runtime): null
   * means none may be published. Undefined leaves host ports to whoever knows.
   */
  hostPorts?: HostPortRange | null;
}

/** Why a label key is refused, or '' when it is fine. */
export function labelKeyProblem(key: string): string {
  if (!LABEL_KEY.test(key) || key.indexOf('/') !== key.lastIndexOf('/')) {
    return 'not a valid label key: lower case letters, digits, ".", "_", "-" and at most one "/", 1 to 63 characters, starting and ending with a letter or digit';
  }
  const reserved = RESERVED_LABEL_PREFIXES.find((p) => key.startsWith(p)) ?? RESERVED_LABEL_DOMAINS.find((d) => key.includes(d));
  if (reserved)
    return `the prefix ${reserved.startsWith('.') ? `*${reserved}` : reserved} is reserved (reserved: ${[...RESERVED_LABEL_PREFIXES, ...RESERVED_LABEL_DOMAINS.map((d) => `*${d}`)].join(', ')})`;
  return '';
}

/** Every rule the spec breaks, as field violations for invalidArgument; [] when none. */
export function validateInstanceSpec(spec: InstanceSpec, rules: InstanceSpecRules = {}): FieldViolation[] {
  const at = rules.field ?? 'spec';
  const v: FieldViolation[] = [];
  if (spec.name === '') {
    if (!rules.nameOptional)
      v.push({
        field: `${at}.name`,
        description: 'required: the instance name is its hostname (lower case letters, digits and "-", 1 to 63 characters)',
      });
  } else if (!INSTANCE_NAME.test(spec.name)) {
    v.push({
      field: `${at}.name`,
      description: `"${spec.name}" is not a valid name: lower case letters, digits and "-", 1 to 63 characters, starting and ending with a letter or digit (it is the hostname)`,
    });
  }
  if (!spec.image) v.push({ field: `${at}.image`, description: 'required: an image reference from the trusted catalogue' });
  else if (/\s/.test(spec.image)) v.push({ field: `${at}.image`, description: `"${spec.image}" is not an image reference` });
  const labels = Object.entries(spec.labels ?? {});
  if (labels.length > MAX_LABELS) v.push({ field: `${at}.labels`, description: `${labels.length} labels; at most ${MAX_LABELS}` });
  for (const [key, value] of labels) {
    const problem = labelKeyProblem(key);
    if (problem) v.push({ field: `${at}.labels[${key}]`, description: problem });
    if (value.length > MAX_LABEL_VALUE)
      v.push({ field: `${at}.labels[${key}]`, description: `the value has ${value.length} characters; at most ${MAX_LABEL_VALUE}` });
    else if (CONTROL.test(value))
      v.push({ field: `${at}.labels[${key}]`, description: 'the value must not contain control characters (new lines, tabs, ...)' });
  }
  for (const key of Object.keys(spec.environment ?? {})) {
    if (!ENV_NAME.test(key)) v.push({ field: `${at}.environment[${key}]`, description: 'not a valid variable name' });
    else if (key.startsWith('LAPIS_')) v.push({ field: `${at}.environment[${key}]`, description: 'LAPIS_* variables are set by Lapis' });
  }
  (spec.sshPublicKeys ?? []).forEach((key, i) => {
    if (!/^(ssh-|ecdsa-|sk-)\S+ \S+/.test(key) || /[\r\n]/.test(key))
      v.push({ field: `${at}.ssh_public_keys[${i}]`, description: 'not an OpenSSH public key line' });
  });
  const userData = spec.userData?.length ?? 0;
  if (userData > MAX_USER_DATA) v.push({ field: `${at}.user_data`, description: `${userData} bytes; at most ${MAX_USER_DATA}` });
  const published = new Set<string>();
  (spec.ports ?? []).forEach((p, i) => {
    const field = `${at}.ports[${i}].host_port`;
    if (!p.containerPort || p.containerPort > 65535)
      v.push({ field: `${at}.ports[${i}].container_port`, description: 'must be 1 to 65535' });
    if (p.hostPort > 65535) v.push({ field, description: 'must be 0 to 65535' });
    else if (rules.hostPorts === null)
      v.push({
        field,
        description:
          'this site publishes no host ports (its admin sets a range, LAPIS_HOST_PORTS); instances of a project reach each other on its network without them',
      });
    else if (rules.hostPorts && p.hostPort && (p.hostPort < rules.hostPorts.min || p.hostPort > rules.hostPorts.max)) {
      v.push({
        field,
        description: `host port ${p.hostPort} is outside this site's range ${rules.hostPorts.min}-${rules.hostPorts.max} (0 picks a free one in it)`,
      });
    } else if (p.hostPort) {
      const key = hostPortKey(p);
      if (published.has(key)) v.push({ field, description: `host port ${key} is asked for twice` });
      published.add(key);
    }
  });
  (spec.volumes ?? []).forEach((m, i) => {
    if (!VOLUME_ID.test(m.volumeId))
      v.push({ field: `${at}.volumes[${i}].volume_id`, description: `"${m.volumeId}" is not an id: 1 to 64 letters, digits, "-" or "_"` });
    if (m.mountPath) v.push(...checkMountPath(m.mountPath, `${at}.volumes[${i}].mount_path`));
  });
  return v;
}

/** "8080/tcp": a host port and its protocol, as two instances on one node may not share it. */
export const hostPortKey = (p: { hostPort: number; protocol: number }): string =>
  `${p.hostPort}/${p.protocol === PortProtocol.UDP ? 'udp' : 'tcp'}`;

/** A volume's mount point: one level under /mnt, where the instance's one propagated mount is. */
export function checkMountPath(path: string, field: string): FieldViolation[] {
  if (!MOUNT_PATH.test(path) || path.endsWith('/.') || path.endsWith('/..')) {
    return [
      {
        field,
        description: `"${path}" is not a mount point: volumes appear one level under ${VOLUME_MOUNT_ROOT}, for example ${VOLUME_MOUNT_ROOT}/data`,
      },
    ];
  }
  return [];
}

/** The name an instance submitted without one gets: "i-" and the start of its id, as a label. */
export function defaultInstanceName(id: string): string {
  const tail = id
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 8)
    .replace(/-+$/, '');
  return `i-${tail || 'x'}`;
}
