// The local base image: a busybox root filesystem imported into Docker. Nothing can be
// pulled here, so every image the tests use starts from this one (FROM it in a Dockerfile).
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureCommands, installPackages } from './apt.js';
import { docker, dockerApi, sharedDocker, type DockerEngine } from './docker.js';
import { run } from './proc.js';

export const BASE_IMAGE = 'lapis/busybox:testenv';

/** The unprivileged user the image has besides root (uid/gid 1000). */
export const BASE_IMAGE_USER = { name: 'lapis', uid: 1000, gid: 1000 } as const;

/**
 * true when the ELF file asks for no program interpreter (PT_INTERP), i.e. runs without
 * the host's libc. Debian's `busybox` is dynamic; only `busybox-static` fits in a bare rootfs.
 */
export async function isStaticElf(file: string): Promise<boolean> {
  const buf = await fs.readFile(file);
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) {
    throw new Error(`${file} is not a 64-bit little-endian ELF executable`);
  }
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    if (buf.readUInt32LE(phoff + i * phentsize) === 3 /* PT_INTERP */) return false;
  }
  return true;
}

async function staticBusybox(): Promise<string> {
  let { busybox } = await ensureCommands({ busybox: 'busybox-static' });
  if (!(await isStaticElf(busybox))) {
    await installPackages(['busybox-static']); // replaces the dynamic `busybox` package
    ({ busybox } = await ensureCommands({ busybox: 'busybox-static' }));
    if (!(await isStaticElf(busybox))) throw new Error(`${busybox} is still dynamically linked after installing busybox-static`);
  }
  return busybox;
}

/** Writes a minimal root filesystem into `root`: busybox, its applets, users, the usual dirs. */
async function buildRootfs(root: string, busybox: string): Promise<void> {
  for (const dir of ['bin', 'etc', 'dev', 'proc', 'sys', 'run', 'mnt', 'var/tmp', 'root', 'home/lapis', 'usr']) {
    await fs.mkdir(path.join(root, dir), { recursive: true });
  }
  await fs.mkdir(path.join(root, 'tmp'));
  await fs.chmod(path.join(root, 'tmp'), 0o1777);
  await fs.chmod(path.join(root, 'root'), 0o700);
  await fs.chown(path.join(root, 'home/lapis'), BASE_IMAGE_USER.uid, BASE_IMAGE_USER.gid);
  // One directory of binaries; the other usual places point at it (merged-/usr layout).
  await fs.symlink('bin', path.join(root, 'sbin'));
  await fs.symlink('../bin', path.join(root, 'usr/bin'));
  await fs.symlink('../bin', path.join(root, 'usr/sbin'));

  await fs.copyFile(busybox, path.join(root, 'bin/busybox'));
  await fs.chmod(path.join(root, 'bin/busybox'), 0o755);
  const { stdout } = await run(busybox, ['--list']);
  for (const applet of stdout.split('\n').map((s) => s.trim())) {
    if (applet && applet !== 'busybox' && !applet.includes('/')) {
      await fs.symlink('busybox', path.join(root, 'bin', applet));
    }
  }

  const etc = (name: string, text: string): Promise<void> => fs.writeFile(path.join(root, 'etc', name), text);
  await etc(
    'passwd',
    'root:x:0:0:root:/root:/bin/sh\n' +
      `lapis:x:${BASE_IMAGE_USER.uid}:${BASE_IMAGE_USER.gid}:lapis:/home/lapis:/bin/sh\n` +
      'nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  await etc('group', `root:x:0:\nlapis:x:${BASE_IMAGE_USER.gid}:\nnogroup:x:65534:\n`);
  await etc('shadow', 'root:*:19000:0:99999:7:::\nlapis:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n');
  await fs.chmod(path.join(root, 'etc/shadow'), 0o640);
}

async function imageExists(engine: DockerEngine, name: string): Promise<boolean> {
  const { status, body } = await dockerApi(engine.socketPath, 'GET', `/images/${name}/json`);
  if (status === 200) return true;
  if (status === 404) return false;
  throw new Error(`GET /images/${name}/json on ${engine.socketPath} answered ${status}: ${body.trim()}`);
}

async function importBaseImage(engine: DockerEngine, name: string): Promise<void> {
  const busybox = await staticBusybox();
  const { tar } = await ensureCommands({ tar: 'tar' });
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'lapis-image-'));
  try {
    const root = path.join(work, 'rootfs');
    await fs.mkdir(root);
    await buildRootfs(root, busybox);
    const tarball = path.join(work, 'rootfs.tar');
    // Numeric owners: the image must not depend on this host's user names.
    await run(tar, ['--numeric-owner', '-C', root, '-cf', tarball, '.']);
    await docker(
      [
        'import',
        '--change',
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        '--change',
        'CMD ["/bin/sh"]',
        '--change',
        'LABEL org.lapis.testenv.base=busybox',
        '--message',
        'lapis testenv base image (busybox-static)',
        tarball,
        name,
      ],
      { engine },
    );
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

const inFlight = new Map<string, Promise<string>>();

/**
 * Makes sure the local base image `name` exists (building it from busybox-static when it
 * does not) and resolves to its name. Kept between runs: it is a cache, not a test artefact.
 */
export function ensureBaseImage(name = BASE_IMAGE, opts: { engine?: DockerEngine } = {}): Promise<string> {
  let pending = inFlight.get(name);
  if (!pending) {
    pending = (async () => {
      const engine = opts.engine ?? (await sharedDocker());
      if (!(await imageExists(engine, name))) await importBaseImage(engine, name);
      return name;
    })().finally(() => inFlight.delete(name));
    inFlight.set(name, pending);
  }
  return pending;
}
