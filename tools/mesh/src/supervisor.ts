// What `make up` and `make kube-up` share: a detached supervisor process (`serve`) that records
// its phase and progress in a JSON status file, and the short-lived commands (up, down, status)
// that start it, follow it and stop it.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface SupervisorStatus {
  pid: number;
  phase: 'starting' | 'ready' | 'failed' | 'stopping';
  progress: string[];
  error?: string;
  summary?: Record<string, string>;
  outputs?: Record<string, unknown>;
  /** The services' processes, for `down` to kill if the supervisor cannot stop them. */
  pids?: Record<string, number>;
}

export interface SupervisorOptions {
  /** What runs, in sentences: "Lapis", "Lapis on Kubernetes". */
  name: string;
  /** The first line of the summary. */
  headline: string;
  /** The command that starts it and the one that stops it, for the messages. */
  upCommand: string;
  downCommand: string;
  statusFile: string;
  logFile: string;
  /** The script whose `serve` command is the supervisor. */
  script: string;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

export class Supervisor {
  constructor(readonly options: SupervisorOptions) {}

  read(): SupervisorStatus | undefined {
    const file = this.options.statusFile;
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as SupervisorStatus) : undefined;
  }

  write(status: SupervisorStatus): void {
    writeFileSync(this.options.statusFile, JSON.stringify(status, null, 2));
  }

  forget(): void {
    rmSync(this.options.statusFile, { force: true });
  }

  /** The supervisor's own status, and a progress callback that records and logs each line. */
  begin(): { status: SupervisorStatus; progress: (line: string) => void } {
    const status: SupervisorStatus = { pid: process.pid, phase: 'starting', progress: [] };
    const progress = (line: string) => {
      const text = line.replace(/^@lapis\/testenv: /, '');
      status.progress.push(text);
      this.write(status);
      process.stdout.write(`${new Date().toISOString()} ${text}\n`);
    };
    this.write(status);
    return { status, progress };
  }

  printSummary(status: SupervisorStatus): void {
    const rows = Object.entries(status.summary ?? {});
    const width = Math.max(...rows.map(([k]) => k.length));
    process.stdout.write(`\n${this.options.headline}:\n\n`);
    for (const [key, value] of rows) process.stdout.write(`  ${key.padEnd(width)}  ${value}\n`);
    if (status.outputs) {
      process.stdout.write('\nExample deployment outputs:\n');
      for (const [key, value] of Object.entries(status.outputs)) process.stdout.write(`  ${key}: ${JSON.stringify(value)}\n`);
    }
    process.stdout.write(`\nStop it with: ${this.options.downCommand}\n`);
  }

  /** Starts the supervisor detached and follows its progress until it is ready or failed. */
  async up(): Promise<number> {
    const { name, logFile, script, statusFile } = this.options;
    mkdirSync(dirname(statusFile), { recursive: true });
    const current = this.read();
    if (current && alive(current.pid) && current.phase !== 'failed') {
      process.stdout.write(`${name} already runs (pid ${current.pid}).\n`);
      if (current.phase === 'ready') this.printSummary(current);
      return 0;
    }
    const started = Date.now();
    const log = openSync(logFile, 'w');
    const child = spawn(process.execPath, [script, 'serve'], { detached: true, stdio: ['ignore', log, log], env: process.env });
    child.unref();
    let shown = 0;
    for (;;) {
      await sleep(300);
      const status = this.read();
      if (status && status.pid === child.pid) {
        for (const line of status.progress.slice(shown)) process.stdout.write(`  ... ${line}\n`);
        shown = status.progress.length;
        if (status.phase === 'ready') {
          this.printSummary(status);
          process.stdout.write(`(up in ${Math.round((Date.now() - started) / 1000)} s)\n`);
          return 0;
        }
        if (status.phase === 'failed') {
          process.stderr.write(`\n${name} did not start:\n${status.error}\nLog: ${logFile}\n`);
          return 1;
        }
      }
      if (!alive(child.pid!)) {
        process.stderr.write(`\nthe supervisor exited early; log: ${logFile}\n${readFileSync(logFile, 'utf8').slice(-3000)}\n`);
        return 1;
      }
    }
  }

  /**
   * Asks the supervisor to stop (SIGTERM) and waits for it; past `limitMs` it and the
   * processes it recorded are killed. Returns the supervisor's log lines written meanwhile
   * that match `worthSaying`, for the person who asked.
   */
  async stop(status: SupervisorStatus, worthSaying: RegExp, limitMs = 180_000): Promise<string[]> {
    const { logFile } = this.options;
    const logFrom = statSync(logFile, { throwIfNoEntry: false })?.size ?? 0;
    process.kill(status.pid, 'SIGTERM');
    for (let waited = 0; alive(status.pid) && waited < limitMs; waited += 300) await sleep(300);
    const killed = [status.pid, ...Object.values(status.pids ?? {})].filter(alive);
    if (killed.length > 0) {
      const names = Object.entries(status.pids ?? {})
        .filter(([, pid]) => alive(pid))
        .map(([name]) => name);
      const minutes = Math.round(limitMs / 60_000);
      process.stderr.write(
        `still running after ${minutes} minutes, killed (SIGKILL): the supervisor${names.length ? `, ${names.join(', ')}` : ''}\n`,
      );
      for (const pid of killed) process.kill(pid, 'SIGKILL');
      await sleep(500);
    }
    return readFileSync(logFile, 'utf8')
      .slice(logFrom)
      .split('\n')
      .filter((line) => worthSaying.test(line));
  }

  statusCommand(): number {
    const { name, upCommand } = this.options;
    const status = this.read();
    if (!status || !alive(status.pid)) {
      process.stdout.write(`${name} is not running (${upCommand} starts it).\n`);
      return 1;
    }
    process.stdout.write(`${name}: ${status.phase} (pid ${status.pid})\n`);
    if (status.phase === 'ready') this.printSummary(status);
    return 0;
  }

  /** The command line: `serve` runs the supervisor itself; up, down and status talk to it. */
  main(commands: { serve: () => Promise<void>; down: () => Promise<number> }, usage: string): void {
    const command = process.argv[2];
    if (command === 'serve') void commands.serve();
    else if (command === 'up') this.up().then((code) => process.exit(code));
    else if (command === 'down') commands.down().then((code) => process.exit(code));
    else if (command === 'status') process.exit(this.statusCommand());
    else {
      process.stderr.write(`usage: ${usage} up | down | status\n`);
      process.exit(2);
    }
  }
}
