// Flavors are the site's named instance sizes, one YAML file shared by the scheduler (room,
// quotas) and the runtime (cgroup limits):
//
//   flavors:
//     - name: m1.small
//       cpus: 1            # or cpu_millis: 500
//       memory: 2Gi        # bytes, or with a unit: Ki Mi Gi Ti (and k M G T)
//       pids: 1024         # optional
//       disk: 10Gi         # optional
//       gpus: 1            # optional
//       devices: [{ kind: infiniband }]   # optional: gpu | infiniband | generic
//       capabilities: [NET_RAW]           # optional: Linux capabilities beyond the runtime's
//                                         # default set (without "CAP_"); the only way to more
//       read_only_root: true              # optional: read-only root filesystem
import { DeviceKind, type DeviceRequest, type Flavor } from '@lapis/proto/lapis/common/v1/common';

const UNITS: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
const NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

/** Linux capabilities by name (capabilities(7), without "CAP_"): what a flavor may grant. */
export const LINUX_CAPABILITIES: readonly string[] = [
  'AUDIT_CONTROL',
  'AUDIT_READ',
  'AUDIT_WRITE',
  'BLOCK_SUSPEND',
  'BPF',
  'CHECKPOINT_RESTORE',
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'IPC_LOCK',
  'IPC_OWNER',
  'KILL',
  'LEASE',
  'LINUX_IMMUTABLE',
  'MAC_ADMIN',
  'MAC_OVERRIDE',
  'MKNOD',
  'NET_ADMIN',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_RAW',
  'PERFMON',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_CHROOT',
  'SYS_MODULE',
  'SYS_NICE',
  'SYS_PACCT',
  'SYS_PTRACE',
  'SYS_RAWIO',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'SYSLOG',
  'WAKE_ALARM',
];

/** "2Gi" -> 2147483648; a plain number is taken as it is. Throws on anything else. */
export function parseQuantity(value: unknown): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  const match = typeof value === 'string' ? /^(\d+(?:\.\d+)?)\s*(|k|M|G|T|Ki|Mi|Gi|Ti)$/.exec(value.trim()) : null;
  if (!match) throw new Error(`${JSON.stringify(value)} is not a quantity such as 512Mi or 2Gi`);
  return Math.round(Number(match[1]) * UNITS[match[2]!]!);
}

export function parseFlavors(doc: unknown, source: string): Flavor[] {
  const entries = (doc as { flavors?: unknown })?.flavors;
  if (!Array.isArray(entries)) throw new Error(`${source}: expected a "flavors" list`);
  const seen = new Set<string>();
  return entries.map((raw: Record<string, unknown>, i) => {
    const where = `${source}: flavors[${i}]`;
    const field = <T>(key: string, parse: (v: unknown) => T, fallback?: T): T => {
      if (raw?.[key] === undefined) {
        if (fallback === undefined) throw new Error(`${where}.${key}: required`);
        return fallback;
      }
      try {
        return parse(raw[key]);
      } catch (error) {
        throw new Error(`${where}.${key}: ${(error as Error).message}`);
      }
    };
    const name = field('name', (v) => {
      if (typeof v !== 'string' || !NAME.test(v)) throw new Error('lower case letters, digits, dots and dashes');
      return v;
    });
    if (seen.has(name)) throw new Error(`${where}.name: "${name}" is defined twice`);
    seen.add(name);
    const cpuMillis = raw?.cpu_millis !== undefined ? field('cpu_millis', parseQuantity) : Math.round(field('cpus', parseQuantity) * 1000);
    if (cpuMillis <= 0) throw new Error(`${where}.cpus: must be more than 0`);
    const gpus = field('gpus', parseQuantity, 0);
    const devices: DeviceRequest[] = field('devices', parseDevices, []);
    if (gpus > 0 && !devices.some((d) => d.kind === DeviceKind.GPU)) {
      devices.push({ kind: DeviceKind.GPU, vendor: '', count: gpus, ids: [], cdiNames: [] });
    }
    return {
      name,
      description: typeof raw.description === 'string' ? raw.description : '',
      resources: {
        cpuMillis,
        memoryBytes: field('memory', parseQuantity),
        gpus,
        pids: field('pids', parseQuantity, 0),
        diskBytes: field('disk', parseQuantity, 0),
      },
      devices,
      capabilities: field('capabilities', parseCapabilities, []),
      readOnlyRootFilesystem: field(
        'read_only_root',
        (v) => {
          if (typeof v !== 'boolean') throw new Error('true or false');
          return v;
        },
        false,
      ),
    };
  });
}

/** ["NET_RAW", "cap_sys_ptrace"] -> ["NET_RAW", "SYS_PTRACE"]; a name capabilities(7) lacks (or "ALL") is refused. */
function parseCapabilities(value: unknown): string[] {
  if (!Array.isArray(value)) throw new Error('expected a list of capability names, for example [NET_RAW]');
  return [
    ...new Set(
      value.map((c, i) => {
        const name = String(c).toUpperCase().replace(/^CAP_/, '');
        if (!LINUX_CAPABILITIES.includes(name))
          throw new Error(`[${i}]: ${JSON.stringify(c)} is not a Linux capability (capabilities(7), for example NET_RAW)`);
        return name;
      }),
    ),
  ];
}

function parseDevices(value: unknown): DeviceRequest[] {
  if (!Array.isArray(value)) throw new Error('expected a list');
  const kinds: Record<string, DeviceKind> = { gpu: DeviceKind.GPU, infiniband: DeviceKind.INFINIBAND, generic: DeviceKind.GENERIC };
  return value.map((d: Record<string, unknown>, i) => {
    const kind = kinds[String(d?.kind)];
    if (kind === undefined) throw new Error(`[${i}].kind: one of ${Object.keys(kinds).join(', ')}`);
    const strings = (v: unknown) => (Array.isArray(v) ? v.map(String) : []);
    return { kind, vendor: String(d.vendor ?? ''), count: Number(d.count ?? 0), ids: strings(d.ids), cdiNames: strings(d.cdi_names) };
  });
}
