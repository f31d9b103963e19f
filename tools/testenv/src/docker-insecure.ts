// Lets a Docker engine pull from one plain-HTTP registry beyond loopback: Docker allows only
// 127.0.0.0/8 without TLS, and a registry the pods of a cluster reach must listen elsewhere (the
// node bridge). As a site does for a Docker node, the registry goes into insecure-registries of
// the engine's daemon.json; the engine reloads it on SIGHUP (running containers are untouched).
// Undo sets the list back, reloads, and puts the file back as it was (or removes it).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dockerApi, type DockerEngine } from './docker.js';
import { waitFor } from './ports.js';

const DEFAULT_CONFIG = '/etc/docker/daemon.json';
const DEFAULT_HOST = 'unix:///var/run/docker.sock';

interface Dockerd {
  pid: number;
  configFile: string;
  /** Given on the command line, a reload with the same key in the file would be refused. */
  insecureFlag: boolean;
}

/** The values of a dockerd option in argv: `--opt=v`, `--opt v` (and `-H v` for --host). */
function optionValues(argv: string[], long: string, short?: string): string[] {
  const values: string[] = [];
  argv.forEach((arg, i) => {
    if (arg.startsWith(`${long}=`)) values.push(arg.slice(long.length + 1));
    else if ((arg === long || (short && arg === short)) && argv[i + 1]) values.push(argv[i + 1]!);
  });
  return values;
}

/** The dockerd process serving `socketPath`, found by its command line. */
function findDockerd(socketPath: string): Dockerd {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch {
      continue; // gone meanwhile
    }
    if (path.basename(argv[0] ?? '') !== 'dockerd') continue;
    const hosts = optionValues(argv, '--host', '-H');
    if (!(hosts.length ? hosts : [DEFAULT_HOST]).includes(`unix://${socketPath}`)) continue;
    return {
      pid: Number(entry),
      configFile: optionValues(argv, '--config-file')[0] ?? DEFAULT_CONFIG,
      insecureFlag: optionValues(argv, '--insecure-registry').length > 0,
    };
  }
  throw new Error(`no dockerd process serves ${socketPath}: cannot let it pull over plain HTTP`);
}

async function isInsecure(engine: DockerEngine, registry: string): Promise<boolean> {
  const { body } = await dockerApi(engine.socketPath, 'GET', '/info');
  const info = JSON.parse(body) as { RegistryConfig?: { IndexConfigs?: Record<string, { Secure?: boolean }> } };
  return info.RegistryConfig?.IndexConfigs?.[registry]?.Secure === false;
}

async function reload(engine: DockerEngine, dockerd: Dockerd, registry: string, insecure: boolean): Promise<void> {
  process.kill(dockerd.pid, 'SIGHUP');
  await waitFor(async () => (await isInsecure(engine, registry)) === insecure, {
    timeoutMs: 15_000,
    intervalMs: 200,
    what: `dockerd ${dockerd.pid} to reload ${dockerd.configFile} (${registry} ${insecure ? '' : 'no longer '}insecure; its log says why not)`,
  });
}

/**
 * Lets the engine pull from `registry` ("host:port") over plain HTTP until the returned undo
 * runs. The engine must have been started without --insecure-registry flags.
 */
export async function allowInsecureRegistry(engine: DockerEngine, registry: string): Promise<() => Promise<void>> {
  const dockerd = findDockerd(engine.socketPath);
  if (dockerd.insecureFlag)
    throw new Error(`dockerd ${dockerd.pid} has --insecure-registry flags: a reload would refuse the same key in ${dockerd.configFile}`);
  const original = fs.existsSync(dockerd.configFile) ? fs.readFileSync(dockerd.configFile, 'utf8') : undefined;
  const madeDir = !fs.existsSync(path.dirname(dockerd.configFile));
  const config = (original ? JSON.parse(original) : {}) as { 'insecure-registries'?: string[] };
  const before = config['insecure-registries'] ?? [];
  if (before.includes(registry) && (await isInsecure(engine, registry))) return async () => {}; // the site's own setting: kept
  const write = (list: string[]) => {
    fs.mkdirSync(path.dirname(dockerd.configFile), { recursive: true });
    fs.writeFileSync(dockerd.configFile, `${JSON.stringify({ ...config, 'insecure-registries': list }, null, 2)}\n`);
  };
  const undo = async () => {
    // The list is set back explicitly: a reload without the key keeps the registries it has.
    write(before);
    await reload(engine, dockerd, registry, false);
    if (original !== undefined) fs.writeFileSync(dockerd.configFile, original);
    else fs.rmSync(dockerd.configFile, { force: true });
    if (madeDir) fs.rmdirSync(path.dirname(dockerd.configFile));
  };
  write([...before, registry]);
  try {
    await reload(engine, dockerd, registry, true);
  } catch (e) {
    await undo().catch(() => {});
    throw e;
  }
  return undo;
}
