// NATS with JetStream (Debian nats-server), on a free loopback port with its store in a temp dir.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureCommands } from './apt.js';
import { freePort, tryConnect, waitFor } from './ports.js';
import { forgetOnExit, removeOnExit, spawnLogged, type Supervised } from './proc.js';

/** The variable through which a test run hands its shared NATS to the tests (mocha-hooks). */
export const TEST_NATS_URL_ENV = 'LAPIS_TEST_NATS_URL';

export interface StartNatsOptions {
  /** Client port; a free one by default. */
  port?: number;
  /** Store and log directory; a fresh temp dir by default. A given dir is never removed. */
  dir?: string;
  /** Also serve the HTTP monitoring endpoints (/varz, /jsz) on a free port. */
  monitor?: boolean;
  /** How long to wait for the server to accept connections; default 20 s. */
  timeoutMs?: number;
}

export interface NatsServer {
  /** nats://127.0.0.1:PORT */
  url: string;
  port: number;
  /** JetStream store (DIR/jetstream) and the log (DIR/nats.log). */
  dir: string;
  logFile: string;
  /** http://127.0.0.1:PORT of the monitoring endpoints, when asked for. */
  monitorUrl?: string;
  /** Stops the server (SIGTERM, SIGKILL after 5 s) and removes the dir if testenv made it. */
  stop(): Promise<void>;
  /** Stops the server and starts it again on the same port and store. */
  restart(): Promise<void>;
}

// What nats-server logs once it listens for clients.
const READY_LINE = 'Server is ready';

async function fileSize(file: string): Promise<number> {
  try {
    return (await fs.stat(file)).size;
  } catch {
    return 0;
  }
}

async function logSince(file: string, offset: number): Promise<string> {
  const handle = await fs.open(file, 'r');
  try {
    const { size } = await handle.stat();
    const buf = Buffer.alloc(Math.max(0, size - offset));
    await handle.read(buf, 0, buf.length, offset);
    return buf.toString('utf8');
  } finally {
    await handle.close();
  }
}

export async function startNats(opts: StartNatsOptions = {}): Promise<NatsServer> {
  const { 'nats-server': bin } = await ensureCommands({ 'nats-server': 'nats-server' });
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'lapis-nats-')));
  await fs.mkdir(dir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const monitorPort = opts.monitor ? await freePort() : undefined;
  const logFile = path.join(dir, 'nats.log');
  const timeoutMs = opts.timeoutMs ?? 20_000;
  // -a keeps it on loopback; the monitoring listener follows -a too.
  const args = ['-js', '-sd', dir, '-a', '127.0.0.1', '-p', String(port)];
  if (monitorPort !== undefined) args.push('-m', String(monitorPort));

  const launch = async (): Promise<Supervised> => {
    // Only this launch's part of the log counts (restart() appends to it).
    const logStart = await fileSize(logFile);
    const proc = spawnLogged(bin, args, { logFile, graceMs: 5000 });
    try {
      await waitFor(
        async () => {
          proc.failIfExited();
          await tryConnect('127.0.0.1', port);
          // The port alone could be another server's (a taken --port): ours says so in its log.
          if (!(await logSince(logFile, logStart)).includes(READY_LINE)) throw new Error(`no "${READY_LINE}" in ${logFile} yet`);
          return true;
        },
        { timeoutMs, what: `\`${proc.command}\` to accept connections on 127.0.0.1:${port} (log: ${logFile})` },
      );
    } catch (e) {
      await proc.stop();
      throw e;
    }
    return proc;
  };

  let proc = await launch();
  if (ownDir) removeOnExit(dir);
  let stopped: Promise<void> | undefined;
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    dir,
    logFile,
    ...(monitorPort !== undefined ? { monitorUrl: `http://127.0.0.1:${monitorPort}` } : {}),
    stop() {
      stopped ??= (async () => {
        await proc.stop();
        if (ownDir) {
          await fs.rm(dir, { recursive: true, force: true });
          forgetOnExit(dir);
        }
      })();
      return stopped;
    },
    async restart() {
      if (stopped) throw new Error(`NATS on port ${port} was stopped; it cannot be restarted`);
      await proc.stop();
      proc = await launch();
    },
  };
}
