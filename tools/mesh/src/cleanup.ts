// What a local run leaves on the host when its services could not clean up themselves (a
// service or NATS gone, a crash, a kill): containers and networks labelled with the run's node,
// mounts under the runtime's state directory, loop devices backed by its volume files. Found
// through the engine and the kernel alone, so it works with nothing of Lapis running.
import { readFile } from 'node:fs/promises';
import { docker, run } from '@lapis/testenv';

export interface Leftovers {
  containers: string[];
  networks: string[];
  mounts: string[];
  loopDevices: string[];
}

const lines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

/** Mount points at or under `dir`, deepest first (so a volume goes before the mount it is in). */
async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const points = text
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => !!p)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

async function loopDevicesUnder(dir: string): Promise<string[]> {
  const { stdout } = await run('losetup', ['--json', '--list']).catch(() => ({ stdout: '' }));
  if (!stdout.trim()) return [];
  const parsed = JSON.parse(stdout) as { loopdevices: Array<{ name: string; 'back-file': string | null }> };
  return parsed.loopdevices.filter((l) => (l['back-file'] ?? '').startsWith(`${dir}/`)).map((l) => l.name);
}

/**
 * Removes what the node `node` (runtime state in `runtimeDir`) left behind and says what that
 * was. Containers first (they hold the mounts), then networks, mounts, loop devices.
 */
export async function removeLeftovers(node: string, runtimeDir: string): Promise<Leftovers> {
  const label = `label=lapis.node=${node}`;
  const containers = lines(await docker(['ps', '-aq', '--filter', label]));
  if (containers.length > 0) await docker(['rm', '-f', '-v', ...containers]);
  const networks = lines(await docker(['network', 'ls', '-q', '--filter', label]));
  for (const network of networks) await docker(['network', 'rm', network]).catch(() => undefined);
  const mounts = await mountsUnder(runtimeDir);
  for (const mount of mounts) {
    // Lazy as a last resort: a mount still busy is detached now and goes when it is free.
    await run('umount', [mount]).catch(() => run('umount', ['-l', mount]));
  }
  const loopDevices = await loopDevicesUnder(runtimeDir);
  for (const device of loopDevices) await run('losetup', ['-d', device]);
  return { containers, networks, mounts, loopDevices };
}

/** "2 containers, 1 mount" or undefined when nothing was left. */
export function describeLeftovers(found: Leftovers): string | undefined {
  const parts = (
    [
      [found.containers.length, 'container'],
      [found.networks.length, 'network'],
      [found.mounts.length, 'mount'],
      [found.loopDevices.length, 'loop device'],
    ] as const
  )
    .filter(([count]) => count > 0)
    .map(([count, what]) => `${count} ${what}${count === 1 ? '' : 's'}`);
  return parts.length > 0 ? parts.join(', ') : undefined;
}
