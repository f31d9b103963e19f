// Child processes owned by testenv: long-running daemons with their output in a log file
// (spawnLogged) and short commands whose output we read (run). Every child is tracked so
// that none outlives this Node process, even when a test run ends without calling stop().
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { GiveUp } from './ports.js';

/** How a child ended: exit code or signal, or the error that kept it from starting. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

export interface Supervised {
  readonly pid: number | undefined;
  /** The command line, for messages. */
  readonly command: string;
  readonly logFile: string;
  /** Set once the process has ended. */
  readonly exitInfo: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;
  /** Throws GiveUp (which ends a waitFor at once) when the process has already ended. */
  failIfExited(): void;
  /** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. Idempotent. */
  stop(): Promise<void>;
}

export interface SpawnLoggedOptions {
  /** stdout and stderr are appended here. */
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Time between SIGTERM and SIGKILL in stop(); default 5 s. */
  graceMs?: number;
  /**
   * Signal sent when this Node process exits with the child still running. SIGKILL by
   * default; dockerd gets SIGTERM so that it still stops containerd and its containers.
   */
  exitSignal?: NodeJS.Signals;
}

// Children still running, with the signal each gets if we exit first, and temp dirs to
// remove then (those of servers nobody stopped).
const live = new Map<ChildProcess, NodeJS.Signals>();
const dirsToRemove = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: we can send signals and remove files, not wait.
  process.on('exit', () => {
    for (const [child, signal] of live) {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    }
    for (const dir of dirsToRemove) {
      try {
        fs.rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
      } catch {
        // a dying child may still write into it; nothing more we can do on the way out
      }
    }
  });
}

function track(child: ChildProcess, exitSignal: NodeJS.Signals): void {
  installExitHook();
  live.set(child, exitSignal);
}

/** Removes dir when this process exits, unless forgetOnExit(dir) came first. */
export function removeOnExit(dir: string): void {
  installExitHook();
  dirsToRemove.add(dir);
}

export function forgetOnExit(dir: string): void {
  dirsToRemove.delete(dir);
}

export function describeCommand(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].join(' ');
}

/** The last lines of a log file, for error messages ('' when it cannot be read). */
export function tailFile(file: string, lines = 15): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function describeExit(info: ExitInfo): string {
  if (info.error) return `failed to start (${info.error.message})`;
  return info.signal ? `was killed by ${info.signal}` : `exited with code ${info.code}`;
}

/** Starts a daemon with stdout and stderr appended to opts.logFile. */
export function spawnLogged(cmd: string, args: readonly string[], opts: SpawnLoggedOptions): Supervised {
  const command = describeCommand(cmd, args);
  const graceMs = opts.graceMs ?? 5000;
  const fd = fs.openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: opts.env, cwd: opts.cwd });
  } finally {
    fs.closeSync(fd); // the child holds its own copy
  }
  track(child, opts.exitSignal ?? 'SIGKILL');

  let exitInfo: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    const settle = (info: ExitInfo): void => {
      if (exitInfo) return;
      exitInfo = info;
      live.delete(child);
      resolve(info);
    };
    child.once('exit', (code, signal) => settle({ code, signal }));
    // 'error' without a pid means it never started (e.g. ENOENT); a failed kill() also
    // emits 'error', but then the process is still there and 'exit' will follow.
    child.on('error', (error) => {
      if (child.pid === undefined) settle({ code: null, signal: null, error });
    });
  });

  let stopping: Promise<void> | undefined;
  return {
    pid: child.pid,
    command,
    logFile: opts.logFile,
    get exitInfo() {
      return exitInfo;
    },
    exited,
    failIfExited() {
      if (!exitInfo) return;
      const tail = tailFile(opts.logFile);
      throw new GiveUp(
        `\`${command}\` ${describeExit(exitInfo)} (log: ${opts.logFile})${tail ? `\n--- last lines of the log ---\n${tail}` : ''}`,
      );
    },
    stop() {
      stopping ??= (async () => {
        if (exitInfo) return;
        child.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const gone = await Promise.race([
          exited.then(() => true),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(false), graceMs);
          }),
        ]);
        clearTimeout(timer);
        if (!gone) {
          child.kill('SIGKILL');
          await exited;
        }
      })();
      return stopping;
    },
  };
}

export interface RunOptions {
  /** Written to the command's stdin (which is then closed). */
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill the command (SIGKILL) after this long; no limit by default. */
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** A command that did not succeed; message names it, how it ended, and its stderr. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly command: string,
    readonly code: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

/** Runs a command to completion and returns its output; rejects unless it exits with 0. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const command = describeCommand(cmd, args);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env, cwd: opts.cwd });
    track(child, 'SIGKILL');
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    let settled = false;
    const finish = (error: Error | undefined, result?: RunResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      live.delete(child);
      if (error) reject(error);
      else resolve(result as RunResult);
    };
    child.on('error', (e) => {
      if (child.pid === undefined) finish(new CommandError(`could not run \`${command}\`: ${e.message}`, command, null, '', ''));
    });
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) return finish(undefined, { stdout, stderr });
      const how = timedOut ? `timed out after ${opts.timeoutMs} ms` : signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const detail = (stderr.trim() || stdout.trim()).split('\n').slice(-15).join('\n');
      finish(new CommandError(`\`${command}\` ${how}${detail ? `:\n${detail}` : ''}`, command, code, stdout, stderr));
    });
    // A command that exits without reading its input would otherwise crash us with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input);
  });
}
