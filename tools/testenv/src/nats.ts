// NATS with JetStream (Debian nats-server), on a free loopback port with its store in a temp dir.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureCommands } from './apt.js';
import { freePort, tryConnect, waitFor } from './ports.js';
import { forgetOnExit, removeOnExit, run, spawnLogged, type Supervised } from './proc.js';

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
  /**
   * More server configuration, for example the `authorization { users = [...] }` block that
   * @lapis/platform's natsAuthorization() makes. Written to DIR/nats.conf (mode 0600).
   */
  config?: string;
  /** Serve TLS only, with a certificate for 127.0.0.1 and localhost made by openssl in DIR/tls. */
  tls?: boolean;
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
  /** With `tls`: the CA certificate a client checks the server's against. */
  caFile?: string;
  /** Stops the server (SIGTERM, SIGKILL after 5 s) and removes the dir if testenv made it. */
  stop(): Promise<void>;
  /**
   * Stops the server and starts it again on the same port and store, after `downMs` (default
   * 0) without a server: how long clients see NATS unavailable.
   */
  restart(downMs?: number): Promise<void>;
  /** Kills the server at once (SIGKILL, as a crash), keeping its store; restart() brings it back. */
  kill(): Promise<void>;
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

/**
 * A throw-away CA and a server certificate signed by it, for 127.0.0.1 and localhost (openssl,
 * Debian's). The keys stay in `dir`, readable by the owner only.
 */
export async function makeTlsFiles(dir: string): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const { openssl } = await ensureCommands({ openssl: 'openssl' });
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const f = (name: string) => path.join(dir, name);
  const days = ['-days', '30'];
  await run(openssl, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.crt'),
    '-subj',
    '/CN=lapis-test-ca',
    ...days,
  ]);
  await run(openssl, [
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    f('server.key'),
    '-out',
    f('server.csr'),
    '-subj',
    '/CN=nats',
  ]);
  await fs.writeFile(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await run(openssl, [
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('server.crt'),
    '-extfile',
    f('server.ext'),
    ...days,
  ]);
  for (const key of ['ca.key', 'server.key']) await fs.chmod(f(key), 0o600);
  return { caFile: f('ca.crt'), certFile: f('server.crt'), keyFile: f('server.key') };
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
  let caFile: string | undefined;
  if (opts.config !== undefined || opts.tls) {
    const parts = [opts.config ?? ''];
    if (opts.tls) {
      const tls = await makeTlsFiles(path.join(dir, 'tls'));
      caFile = tls.caFile;
      parts.push(`tls {\n  cert_file: ${JSON.stringify(tls.certFile)}\n  key_file: ${JSON.stringify(tls.keyFile)}\n  timeout: 5\n}\n`);
    }
    // Passwords may be in it: readable by the owner only.
    const configFile = path.join(dir, 'nats.conf');
    await fs.writeFile(configFile, parts.join('\n'), { mode: 0o600 });
    await fs.chmod(configFile, 0o600);
    args.unshift('-c', configFile);
  }

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
    ...(caFile !== undefined ? { caFile } : {}),
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
    async kill() {
      if (proc.pid !== undefined && !proc.exitInfo) process.kill(proc.pid, 'SIGKILL');
      await proc.exited;
    },
    async restart(downMs = 0) {
      if (stopped) throw new Error(`NATS on port ${port} was stopped; it cannot be restarted`);
      await proc.stop();
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      proc = await launch();
    },
  };
}
