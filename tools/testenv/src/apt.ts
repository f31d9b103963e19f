// Finds the binaries testenv needs and installs the Debian packages that bring missing ones.
// A clean CI machine has none of them; nothing installed by hand is assumed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run, CommandError } from './proc.js';

// Debian keeps daemons (nats-server, dockerd) in sbin, which a non-login PATH may lack.
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Set to refuse installing anything (a workstation where apt-get is not ours to run). */
export const NO_APT_ENV = 'LAPIS_TESTENV_NO_APT';

function isExecutableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Absolute path of a binary on PATH (or in an sbin directory), or undefined. */
export function findCommand(name: string): string | undefined {
  if (name.includes('/')) return isExecutableFile(name) ? name : undefined;
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

// apt-get takes a lock; two installs at once would fail, so they queue here.
let queue: Promise<unknown> = Promise.resolve();
function serialized<T>(task: () => Promise<T>): Promise<T> {
  const result = queue.then(task);
  queue = result.catch(() => undefined);
  return result;
}

let updated = false; // `apt-get update` ran successfully in this process

const aptEnv = (): NodeJS.ProcessEnv => ({ ...process.env, DEBIAN_FRONTEND: 'noninteractive' });

async function installUnlocked(packages: readonly string[], why: string): Promise<void> {
  const names = packages.join(' ');
  if (process.env[NO_APT_ENV]) {
    throw new Error(`${why} is missing: install Debian package(s) ${names} (${NO_APT_ENV} is set, so testenv does not run apt-get)`);
  }
  if (process.getuid?.() !== 0) {
    throw new Error(`${why} is missing: install Debian package(s) ${names} (as root: apt-get install -y ${names})`);
  }
  const apt = findCommand('apt-get');
  if (!apt) throw new Error(`${why} is missing and this machine has no apt-get: install package(s) ${names} yourself`);
  try {
    if (!updated) {
      await run(apt, ['update'], { env: aptEnv() });
      updated = true;
    }
    await run(apt, ['install', '-y', '--no-install-recommends', ...packages], { env: aptEnv() });
  } catch (e) {
    const detail = e instanceof CommandError ? e.message : String(e);
    throw new Error(`could not install Debian package(s) ${names} (needed for ${why}): ${detail}`);
  }
}

/** Installs Debian packages (apt-get update at most once per process; one install at a time). */
export function installPackages(packages: readonly string[]): Promise<void> {
  return serialized(() => installUnlocked(packages, packages.join(', ')));
}

function lookup<K extends string>(commands: Record<K, string>): { paths: Partial<Record<K, string>>; missing: K[] } {
  const paths: Partial<Record<K, string>> = {};
  const missing: K[] = [];
  for (const name of Object.keys(commands) as K[]) {
    const found = findCommand(name);
    if (found) paths[name] = found;
    else missing.push(name);
  }
  return { paths, missing };
}

/**
 * Makes sure every binary is there, installing the Debian package given for each missing
 * one; resolves to their absolute paths (use them to spawn: sbin may not be on PATH).
 *
 *   const { 'nats-server': nats } = await ensureCommands({ 'nats-server': 'nats-server' });
 */
export async function ensureCommands<K extends string>(commands: Record<K, string>): Promise<Record<K, string>> {
  const first = lookup(commands);
  if (first.missing.length === 0) return first.paths as Record<K, string>;
  return serialized(async () => {
    // Another caller may have installed them while we queued.
    const before = lookup(commands);
    if (before.missing.length === 0) return before.paths as Record<K, string>;
    const packages = [...new Set(before.missing.map((name) => commands[name]))];
    await installUnlocked(packages, before.missing.map((name) => `\`${name}\``).join(', '));
    const after = lookup(commands);
    if (after.missing.length > 0) {
      const still = after.missing.map((name) => `\`${name}\` (package ${commands[name]})`).join(', ');
      throw new Error(`installed Debian package(s) ${packages.join(' ')}, but ${still} is still not on PATH or in an sbin directory`);
    }
    return after.paths as Record<K, string>;
  });
}
