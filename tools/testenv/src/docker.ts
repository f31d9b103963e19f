// A Docker engine: the one already answering on the socket, or dockerd (Debian docker.io)
// started by us. The `docker` CLI may be on PATH without any engine behind it.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureCommands } from './apt.js';
import { waitFor } from './ports.js';
import { run, spawnLogged, type RunOptions } from './proc.js';

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

export interface DockerEngine {
  socketPath: string;
  /** true when testenv started dockerd; only then does stop() stop it. */
  startedByUs: boolean;
  /** dockerd's log when we started it. */
  logFile?: string;
  stop(): Promise<void>;
}

export interface EnsureDockerOptions {
  /** Default: the unix socket of DOCKER_HOST, else /var/run/docker.sock. */
  socketPath?: string;
  /** How long dockerd gets to answer /_ping; default 60 s. */
  timeoutMs?: number;
}

function socketFromEnv(): string | undefined {
  const host = process.env.DOCKER_HOST;
  return host?.startsWith('unix://') ? host.slice('unix://'.length) : undefined;
}

/** One request to the Engine API over its unix socket. */
export function dockerApi(
  socketPath: string,
  method: string,
  urlPath: string,
  timeoutMs = 5000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path: urlPath, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath} on ${socketPath} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** true when an engine answers GET /_ping on the socket. */
export async function pingDocker(socketPath: string): Promise<boolean> {
  try {
    return (await dockerApi(socketPath, 'GET', '/_ping', 2000)).status === 200;
  } catch {
    return false;
  }
}

const DOCKERD_PID_FILE = '/var/run/docker.pid';

/**
 * Waits while the pid file names a live dockerd that does not answer (one stopping, or one
 * starting); removes a stale pid file. Resolves true when that engine answered meanwhile.
 */
async function engineStillStopping(timeoutMs: number, socketPath: string): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let pid: number;
    try {
      pid = Number.parseInt(fs.readFileSync(DOCKERD_PID_FILE, 'utf8'), 10);
    } catch {
      return false; // no pid file: no engine
    }
    if (!Number.isInteger(pid)) return false;
    try {
      process.kill(pid, 0);
    } catch {
      fs.rmSync(DOCKERD_PID_FILE, { force: true });
      return false;
    }
    if (await pingDocker(socketPath)) return true;
    if (Date.now() > deadline) throw new Error(`dockerd pid ${pid} (${DOCKERD_PID_FILE}) neither answers nor exits`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

export async function ensureDocker(opts: EnsureDockerOptions = {}): Promise<DockerEngine> {
  const socketPath = opts.socketPath ?? socketFromEnv() ?? DEFAULT_DOCKER_SOCKET;
  if (await pingDocker(socketPath)) {
    return { socketPath, startedByUs: false, stop: async () => {} };
  }
  // Another process's engine may be stopping (it holds the pid file until it has): wait for it,
  // or take it if it comes back; a pid file whose process is dead is stale.
  if (await engineStillStopping(opts.timeoutMs ?? 60_000, socketPath)) {
    return { socketPath, startedByUs: false, stop: async () => {} };
  }
  // The CLI comes along: tests and image.ts drive the engine through it.
  const { dockerd } = await ensureCommands({ dockerd: 'docker.io', docker: 'docker.io' });
  // Outside the temp dirs we remove, so it can still be read after a failed run.
  const logFile = path.join(os.tmpdir(), 'lapis-testenv-dockerd.log');
  fs.writeFileSync(logFile, '');
  // dockerd stops its containers and containerd on SIGTERM; give it time for that, and
  // send SIGTERM rather than SIGKILL if this process exits first, or containerd is orphaned.
  const proc = spawnLogged(dockerd, ['--host', `unix://${socketPath}`], { logFile, graceMs: 30_000, exitSignal: 'SIGTERM' });
  try {
    await waitFor(
      async () => {
        proc.failIfExited();
        return pingDocker(socketPath);
      },
      {
        timeoutMs: opts.timeoutMs ?? 60_000,
        what: `\`${proc.command}\` to answer GET /_ping on ${socketPath} (log: ${logFile})`,
        intervalMs: 250,
      },
    );
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return { socketPath, startedByUs: true, logFile, stop: () => proc.stop() };
}

let shared: Promise<DockerEngine> | undefined;

/**
 * The engine every test in this process shares: found or started on the first call. A
 * failure is kept too, so that later tests fail fast with the same message.
 */
export function sharedDocker(): Promise<DockerEngine> {
  shared ??= ensureDocker();
  return shared;
}

/** Stops the shared engine if testenv started it (mocha-hooks calls this at the end of a run). */
export async function stopSharedDocker(): Promise<void> {
  const engine = shared;
  shared = undefined;
  if (!engine) return;
  try {
    await (await engine).stop();
  } catch {
    // it never started: nothing to stop
  }
}

/**
 * Runs the docker CLI against the engine's socket and returns its stdout; the error names
 * the command and carries its stderr.
 */
export async function docker(args: readonly string[], opts: RunOptions & { engine?: DockerEngine } = {}): Promise<string> {
  const engine = opts.engine ?? (await sharedDocker());
  const { docker: cli } = await ensureCommands({ docker: 'docker.io' });
  const env = { ...process.env, ...opts.env, DOCKER_HOST: `unix://${engine.socketPath}` };
  return (await run(cli, args, { ...opts, env })).stdout;
}
