// The largest claim the site could ever run. A claim is never refused for lack of room (it
// waits, and nodes join later), so the ceiling is not today's largest node: it is what no
// node could ever have (a site admin may lower it, claim_ceiling in the scheduler config).
// A claim above it would wait forever, and its numbers would overflow what the runtime hands
// to cgroups and Docker, so it is refused at submit, naming the field.
import type { Resources, DeviceRequest } from '@lapis/proto/lapis/common/v1/common';

export interface Ceiling {
  /** Thousandths of a CPU. */
  cpu: number;
  mem: number;
  gpus: number;
  disk: number;
  pids: number;
  /** Devices of one claim, all requests together. */
  devices: number;
}

const TiB = 2 ** 40;

export const DEFAULT_CEILING: Readonly<Ceiling> = Object.freeze({
  // Beyond the largest single-system machines built (thousands of cores, tens of TiB).
  cpu: 4096 * 1000,
  mem: 64 * TiB,
  gpus: 64,
  disk: 1024 * TiB,
  // Linux's PID_MAX_LIMIT on 64-bit: no cgroup can hold more.
  pids: 4_194_304,
  devices: 64,
});

export interface Violation {
  field: string;
  description: string;
}

/** What of a claim's own request is beyond the ceiling; [] when nothing is. */
export function beyondCeiling(resources: Resources | undefined, devices: readonly DeviceRequest[], ceiling: Ceiling): Violation[] {
  const v: Violation[] = [];
  const over = (field: string, value: number, max: number, what: string) => {
    if (value > max)
      v.push({ field: `spec.${field}`, description: `${value} is more than any node of this site could have (at most ${max} ${what})` });
  };
  if (resources) {
    over('resources.cpu_millis', resources.cpuMillis, ceiling.cpu, 'thousandths of a CPU');
    over('resources.memory_bytes', resources.memoryBytes, ceiling.mem, 'bytes');
    over('resources.gpus', resources.gpus, ceiling.gpus, 'GPUs');
    over('resources.disk_bytes', resources.diskBytes, ceiling.disk, 'bytes');
    over('resources.pids', resources.pids, ceiling.pids, 'processes');
  }
  let total = 0;
  devices.forEach((d, i) => {
    const count = d.ids.length || d.count || 1;
    total += count;
    over(`devices[${i}].count`, d.count, ceiling.devices, 'devices');
  });
  if (total > ceiling.devices && !v.some((x) => x.field.startsWith('spec.devices['))) {
    v.push({ field: 'spec.devices', description: `${total} devices in all; at most ${ceiling.devices}` });
  }
  return v;
}
