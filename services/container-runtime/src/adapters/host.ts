// The node's own storage, driven with the real tools: volume files (sparse file -> loop
// device -> ext4), the instances directory (one mount with shared propagation; each
// instance's mount point in it is where its attached volumes are mounted), and the metadata
// directory (user data, SSH keys). Tenants' data and secrets: root only (0700 directories,
// 0600 files), whatever the umask.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { failedPrecondition } from '@lapis/platform';
import type { NodeStorage } from './backend';

const exec = promisify(execFile);

export interface LoopDevice {
  device: string;
  backingFile: string;
}

export interface InstanceDirs {
  mountDir: string;
  metadataDir: string;
}

export class HostStorage implements NodeStorage {
  readonly volumesDir: string;
  readonly instancesDir: string;
  private sharedMountChange: Promise<void> = Promise.resolve();

  constructor(readonly stateDir: string) {
    this.volumesDir = join(stateDir, 'volumes');
    this.instancesDir = join(stateDir, 'instances');
  }

  async init(): Promise<void> {
    for (const dir of [this.volumesDir, this.instancesDir]) await privateDir(dir);
  }

  volumeFile = (volumeId: string) => join(this.volumesDir, `${volumeId}.img`);
  instanceDirs = (instanceId: string): InstanceDirs => ({
    mountDir: join(this.instancesDir, instanceId, 'mnt'),
    metadataDir: join(this.instancesDir, instanceId, 'etc'),
  });
  /** The secret part of the instance's spec, for adopting its container: outside what the container mounts. */
  private secretsFile = (instanceId: string) => join(this.instancesDir, instanceId, 'secrets.pb');
  attachPoint = (instanceId: string, name: string) => join(this.instanceDirs(instanceId).mountDir, name);

  /**
   * The instance's directories. Its mount point lies under the instances directory, which is
   * bound onto itself once and made rshared: a volume mounted there later propagates into the
   * instance's rslave bind mount, with no mount (and no process spawned) per instance.
   */
  async prepareInstance(instanceId: string, metadata: Record<string, string | Buffer>, secrets: Uint8Array): Promise<InstanceDirs> {
    const dirs = this.instanceDirs(instanceId);
    await privateDir(join(this.instancesDir, instanceId));
    // The mount point is seen as /mnt inside (where other users of the instance may look); its parent keeps the host out.
    await fs.mkdir(dirs.mountDir, { recursive: true });
    await privateDir(dirs.metadataDir);
    for (const [name, content] of Object.entries(metadata)) await privateFile(join(dirs.metadataDir, name), content);
    await privateFile(this.secretsFile(instanceId), secrets);
    await this.exclusively(async () => {
      if (!(await this.mountPoints()).includes(this.instancesDir))
        await run('mount', ['--bind', '--make-rshared', this.instancesDir, this.instancesDir]);
    });
    return dirs;
  }

  /**
   * Unmounts whatever is left under the instance, then removes its directories; the last
   * instance of the node also takes the shared mount of the instances directory.
   */
  /** The secrets kept when the instance was prepared, if its directory is still there. */
  async keptSecrets(instanceId: string): Promise<Buffer | undefined> {
    return fs.readFile(this.secretsFile(instanceId)).catch(() => undefined);
  }

  async releaseInstance(instanceId: string): Promise<void> {
    const root = join(this.instancesDir, instanceId);
    const mounts = (await this.mountPoints()).filter((m) => m === root || m.startsWith(`${root}/`));
    // Deepest first: attached volumes, then a mount point of its own (made by earlier versions).
    for (const mount of mounts.sort((a, b) => b.length - a.length)) await this.unmount(mount);
    await fs.rm(root, { recursive: true, force: true });
    await this.exclusively(async () => {
      if ((await this.instanceIdsOnDisk()).length === 0 && (await this.mountPoints()).includes(this.instancesDir))
        await this.unmount(this.instancesDir);
    });
  }

  /** Runs the changes of the shared mount one at a time (a create and the last delete may overlap). */
  private exclusively(work: () => Promise<void>): Promise<void> {
    const next = this.sharedMountChange.then(work);
    this.sharedMountChange = next.catch(() => undefined);
    return next;
  }

  async createVolumeFile(volumeId: string, sizeBytes: number, filesystem: string): Promise<void> {
    const file = this.volumeFile(volumeId);
    const handle = await fs.open(file, 'wx', 0o600);
    try {
      await handle.truncate(sizeBytes);
    } finally {
      await handle.close();
    }
    try {
      await run(`mkfs.${filesystem}`, ['-q', '-F', '-L', volumeId.slice(0, 16), file]);
    } catch (error) {
      await fs.rm(file, { force: true });
      throw error;
    }
  }

  async deleteVolumeFile(volumeId: string): Promise<void> {
    await fs.rm(this.volumeFile(volumeId), { force: true });
  }

  async volumeFiles(): Promise<string[]> {
    return (await fs.readdir(this.volumesDir)).filter((f) => f.endsWith('.img')).map((f) => f.slice(0, -4));
  }

  /** Loop device -> mount into the instance's propagated mount point. Undone on failure. */
  async attach(volumeId: string, instanceId: string, name: string, readOnly: boolean): Promise<string> {
    const target = this.attachPoint(instanceId, name);
    const { mountDir } = this.instanceDirs(instanceId);
    const mounts = await this.mountPoints();
    const prepared = await fs.stat(mountDir).then(
      () => true,
      () => false,
    );
    if (!prepared || !(mounts.includes(this.instancesDir) || mounts.includes(mountDir))) {
      throw failedPrecondition(`instance ${instanceId} has no propagated mount point on this node`, 'NO_MOUNT_POINT');
    }
    const device = (await run('losetup', ['--find', '--show', ...(readOnly ? ['--read-only'] : []), this.volumeFile(volumeId)])).trim();
    try {
      await fs.mkdir(target, { recursive: true });
      await run('mount', ['-t', 'ext4', ...(readOnly ? ['-o', 'ro'] : []), device, target]);
      return device;
    } catch (error) {
      await fs.rmdir(target).catch(() => undefined);
      await run('losetup', ['-d', device]).catch(() => undefined);
      throw error;
    }
  }

  /** Unmounts the volume from the instance (if mounted) and frees its loop devices. */
  async detach(volumeId: string, instanceId: string, name: string): Promise<void> {
    const target = this.attachPoint(instanceId, name);
    if ((await this.mountPoints()).includes(target)) await this.unmount(target);
    await fs.rmdir(target).catch(() => undefined);
    await this.freeLoops(volumeId);
  }

  async freeLoops(volumeId: string): Promise<void> {
    const file = this.volumeFile(volumeId);
    for (const loop of await this.loopDevices()) if (loop.backingFile === file) await run('losetup', ['-d', loop.device]);
  }

  async isMounted(path: string): Promise<boolean> {
    return (await this.mountPoints()).includes(path);
  }

  /** Mount points under the state directory. */
  async mountPoints(): Promise<string[]> {
    const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
    return text
      .split('\n')
      .map((line) => line.split(' ')[4])
      .filter((p): p is string => !!p)
      .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
      .filter((p) => p === this.stateDir || p.startsWith(`${this.stateDir}/`));
  }

  /** Loop devices backed by this node's volume files. */
  async loopDevices(): Promise<LoopDevice[]> {
    const { stdout } = await exec('losetup', ['--json', '--list']).catch(() => ({ stdout: '' }));
    if (!stdout.trim()) return [];
    const parsed = JSON.parse(stdout) as { loopdevices: Array<{ name: string; 'back-file': string | null }> };
    return parsed.loopdevices
      .map((l) => ({ device: l.name, backingFile: (l['back-file'] ?? '').replace(/ \(deleted\)$/, '') }))
      .filter((l) => l.backingFile.startsWith(`${this.volumesDir}/`));
  }

  async freeBytes(): Promise<number> {
    const stat = await fs.statfs(this.volumesDir);
    return stat.bavail * stat.bsize;
  }

  async instanceIdsOnDisk(): Promise<string[]> {
    return fs.readdir(this.instancesDir).catch(() => []);
  }

  private async unmount(path: string): Promise<void> {
    try {
      await run('umount', [path]);
    } catch {
      // Busy (a process inside holds it): detach it lazily so nothing stays mounted on the host side.
      await run('umount', ['-l', path]);
    }
  }
}

/** A directory only root may enter (mode set even where it exists, or the umask narrowed it). */
async function privateDir(path: string): Promise<void> {
  await fs.mkdir(path, { recursive: true, mode: 0o700 });
  await fs.chmod(path, 0o700);
}

/** A file only root may read, also when it was there before with a wider mode. */
async function privateFile(path: string, content: string | Uint8Array): Promise<void> {
  await fs.writeFile(path, content, { mode: 0o600 });
  await fs.chmod(path, 0o600);
}

async function run(command: string, args: string[]): Promise<string> {
  try {
    return (await exec(command, args)).stdout;
  } catch (error) {
    const stderr = String((error as { stderr?: string }).stderr ?? '').trim();
    throw new Error(`${command} ${args.join(' ')}: ${stderr || (error as Error).message}`);
  }
}
