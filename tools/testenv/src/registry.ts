// An OCI registry (Debian docker-registry, distribution 2.8) on a free loopback port, with
// its storage in a temp dir, optionally behind htpasswd basic auth. Docker pushes to it
// without TLS settings because loopback registries are insecure-allowed.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureCommands } from './apt.js';
import { freePort, waitFor } from './ports.js';
import { forgetOnExit, removeOnExit, run, spawnLogged } from './proc.js';

export interface RegistryAuth {
  username: string;
  password: string;
}

export interface StartRegistryOptions {
  auth?: RegistryAuth;
  /** The address it listens on; default 127.0.0.1 (a real cluster's pods reach the bridge's address). */
  address?: string;
  /** How long to wait for GET /v2/ to answer; default 20 s. */
  timeoutMs?: number;
}

export interface Registry {
  /** http://ADDRESS:PORT (ADDRESS 127.0.0.1 unless asked otherwise) */
  url: string;
  /** ADDRESS:PORT, as it appears in image references */
  host: string;
  port: number;
  /** Config, htpasswd, log (registry.log) and storage (data/); removed by stop(). */
  dir: string;
  logFile: string;
  auth?: RegistryAuth;
  stop(): Promise<void>;
}

// JSON strings are valid YAML double-quoted scalars: no hand-made escaping.
const q = (s: string): string => JSON.stringify(s);

function configYaml(dir: string, host: string, htpasswdFile: string | undefined): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${q(path.join(dir, 'data'))}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${q(host)}`,
    // Signs upload state between requests; random so no two instances share it.
    `  secret: ${q(randomBytes(24).toString('hex'))}`,
  ];
  if (htpasswdFile) {
    lines.push('auth:', '  htpasswd:', '    realm: "lapis-testenv"', `    path: ${q(htpasswdFile)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A bcrypt htpasswd line (distribution accepts nothing else), made by apache2-utils. */
async function htpasswdLine(auth: RegistryAuth): Promise<string> {
  const { htpasswd } = await ensureCommands({ htpasswd: 'apache2-utils' });
  // -i reads the password from stdin, so it never shows in a process list.
  const { stdout } = await run(htpasswd, ['-niB', auth.username], { input: auth.password });
  return `${stdout.trim()}\n`;
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<Registry> {
  const { 'docker-registry': bin } = await ensureCommands({ 'docker-registry': 'docker-registry' });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lapis-registry-'));
  const port = await freePort();
  const host = `${opts.address ?? '127.0.0.1'}:${port}`;
  const url = `http://${host}`;
  const logFile = path.join(dir, 'registry.log');
  const configFile = path.join(dir, 'config.yml');
  let htpasswdFile: string | undefined;
  if (opts.auth) {
    htpasswdFile = path.join(dir, 'htpasswd');
    await fs.writeFile(htpasswdFile, await htpasswdLine(opts.auth), { mode: 0o600 });
  }
  await fs.writeFile(configFile, configYaml(dir, host, htpasswdFile));

  // REGISTRY_* variables override the config file; one left in the environment must not
  // move this instance to another port or storage.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
  const proc = spawnLogged(bin, ['serve', configFile], { logFile, env, graceMs: 5000 });
  const ready = opts.auth ? 401 : 200;
  try {
    await waitFor(
      async () => {
        proc.failIfExited();
        const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status !== ready) throw new Error(`GET /v2/ answered ${res.status}, expected ${ready}`);
        return true;
      },
      { timeoutMs: opts.timeoutMs ?? 20_000, what: `\`${proc.command}\` to answer GET ${url}/v2/ (log: ${logFile})` },
    );
  } catch (e) {
    await proc.stop();
    throw e; // the dir stays, with the log the error names
  }

  removeOnExit(dir);
  let stopped: Promise<void> | undefined;
  return {
    url,
    host,
    port,
    dir,
    logFile,
    ...(opts.auth ? { auth: opts.auth } : {}),
    stop() {
      stopped ??= (async () => {
        await proc.stop();
        await fs.rm(dir, { recursive: true, force: true });
        forgetOnExit(dir);
      })();
      return stopped;
    },
  };
}
