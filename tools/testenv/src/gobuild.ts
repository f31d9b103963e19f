// Building test tools with the machine's Go from the Go module proxy, shared by the
// Kubernetes tools (kube.ts) and grpcurl (grpcurl.ts): where binaries are cached, one build at a
// time per cache directory (a lock file), every go command's output appended to a build log.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findCommand } from './apt.js';
import { run, spawnLogged, tailFile } from './proc.js';

/** Overrides where built binaries are cached (default /var/cache/lapis-testenv, or ~/.cache/lapis-testenv). */
export const TESTENV_CACHE_ENV = 'LAPIS_TESTENV_CACHE';

export function cacheRoot(): string {
  const fromEnv = process.env[TESTENV_CACHE_ENV];
  if (fromEnv) return path.resolve(fromEnv);
  const system = '/var/cache/lapis-testenv';
  try {
    fs.mkdirSync(system, { recursive: true });
    fs.accessSync(system, fs.constants.W_OK);
    return system;
  } catch {
    return path.join(os.homedir(), '.cache', 'lapis-testenv');
  }
}

export function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs task while holding DIR/.build.lock (created exclusively, holding our pid). Another
 * process's lock is waited for; one left by a process that is gone is taken over. `what` names
 * the build in the timeout's message.
 */
export async function withBuildLock<T>(dir: string, timeoutMs: number, what: string, task: () => Promise<T>): Promise<T> {
  const lock = path.join(dir, '.build.lock');
  const me = `${process.pid} ${os.hostname()}\n`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await fsp.writeFile(lock, me, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = '';
    try {
      holder = await fsp.readFile(lock, 'utf8');
    } catch {
      continue; // released between our two calls
    }
    const [pidText, host] = holder.trim().split(' ');
    const pid = Number(pidText);
    const stale = holder !== '' && host === os.hostname() && Number.isInteger(pid) && !pidAlive(pid);
    if (stale) {
      // Move it aside first: of two processes taking over the same stale lock, one wins the
      // rename; the other then finds the winner's fresh lock and puts it back.
      const aside = `${lock}.stale.${process.pid}`;
      try {
        await fsp.rename(lock, aside);
        if ((await fsp.readFile(aside, 'utf8')) === holder) await fsp.rm(aside, { force: true });
        else await fsp.rename(aside, lock);
      } catch {
        // someone else moved it; try again
      }
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${lock} (held by pid ${pidText} on ${host}: another process is building ${what}; see ${path.join(dir, 'build.log')})`,
      );
    }
    await sleep(2000);
  }
  try {
    return await task();
  } finally {
    await fsp.rm(lock, { force: true });
  }
}

export interface GoEnv {
  go: string;
  env: NodeJS.ProcessEnv;
  modCache: string;
  /** What is being built, for error messages ("the Kubernetes test tools"). */
  what: string;
}

export async function findGo(what: string): Promise<GoEnv> {
  const go = findCommand('go') ?? (isExecutable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
  if (!go) {
    throw new Error(
      `${what} are built with Go (1.24 or later), and this machine has no \`go\` on PATH or in /usr/local/go/bin; install Go from https://go.dev/dl/`,
    );
  }
  // Static binaries; no VCS stamping (the module cache is no repository).
  const env: NodeJS.ProcessEnv = { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false', GO111MODULE: 'on' };
  const { stdout } = await run(go, ['env', 'GOMODCACHE'], { env });
  return { go, env, modCache: stdout.trim(), what };
}

/** Runs a go command with its output appended to the build log; rejects naming the log. */
export async function goLogged(g: GoEnv, args: string[], cwd: string, log: string, env: NodeJS.ProcessEnv = g.env): Promise<void> {
  await fsp.appendFile(log, `\n### ${new Date().toISOString()} (in ${cwd})\n$ go ${args.join(' ')}\n`);
  const proc = spawnLogged(g.go, args, { logFile: log, cwd, env, graceMs: 2000 });
  const info = await proc.exited;
  if (info.code !== 0) {
    const how = info.error
      ? `could not start (${info.error.message})`
      : info.signal
        ? `was killed by ${info.signal}`
        : `exited with code ${info.code}`;
    throw new Error(
      `building ${g.what} failed: \`go ${args.join(' ')}\` in ${cwd} ${how} (log: ${log})\n--- last lines of the log ---\n${tailFile(log, 25)}`,
    );
  }
}

/** `go install pkg@version` into binDir/name (through a scratch GOBIN, so a failed build leaves nothing). */
export async function goInstall(g: GoEnv, pkg: string, binDir: string, name: string, work: string, log: string): Promise<void> {
  const out = path.join(work, `install-${name}`);
  await fsp.rm(out, { recursive: true, force: true });
  await fsp.mkdir(out, { recursive: true });
  await goLogged(g, ['install', '-ldflags=-s -w', pkg], work, log, { ...g.env, GOBIN: out });
  await fsp.rename(path.join(out, name), path.join(binDir, name));
  await fsp.rm(out, { recursive: true, force: true });
}
