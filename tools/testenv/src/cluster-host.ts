// What a real node changes on the host, recorded before it starts and put back after it stops:
// the sysctls the kubelet rewrites, the KUBE-* and CNI-* iptables chains (and the rules that
// jump to them; nothing else, Docker's chains stay as they are), the CNI bridge, mounts under
// the cluster's directories, the kubepods cgroups, and the directories kubelet and the CNI
// plugins make at fixed places (/var/lib/cni, /var/log/containers, /var/log/pods).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { run } from './proc.js';

/** Sysctls the kubelet (setupKernelTunables) or kube-proxy may write. */
const SYSCTLS = [
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
  'net.ipv4.ip_forward',
  'net.ipv4.conf.all.route_localnet',
  'net.bridge.bridge-nf-call-iptables',
  'net.bridge.bridge-nf-call-ip6tables',
];

/** Fixed places the kubelet, containerd's CRI plugin or the CNI plugins create. */
const FIXED_DIRS = ['/var/lib/cni', '/var/log/containers', '/var/log/pods', '/var/lib/kubelet', '/etc/cni', '/opt/cni'];

/** Shared with the Docker engine's containerd (shim sockets): removed only when left empty. */
const SHARED_DIRS = ['/run/containerd/s', '/run/containerd'];

const OUR_CHAIN = /^(KUBE|CNI)-/;
const TABLES = ['filter', 'nat', 'mangle', 'raw'];
const CGROUP_ROOT = '/sys/fs/cgroup';

export interface HostSnapshot {
  sysctls: Record<string, string>;
  /** Which of FIXED_DIRS existed. */
  dirs: Record<string, boolean>;
  /** Our chains (KUBE-*, CNI-*) by family and table: should be none. */
  chains: string[];
  /** kubepods cgroups that existed (one per controller): should be none. */
  cgroups: string[];
  links: string[];
}

function readSysctl(key: string): string | undefined {
  try {
    return fs.readFileSync(path.join('/proc/sys', ...key.split('.')), 'utf8').trim();
  } catch {
    return undefined; // not on this kernel (e.g. br_netfilter not loaded)
  }
}

async function iptablesSave(family: 'iptables' | 'ip6tables', table: string): Promise<string> {
  try {
    return (await run(`${family}-save`, ['-t', table])).stdout;
  } catch {
    return ''; // no such table or family here
  }
}

/** Our chains as "iptables nat KUBE-SERVICES" lines. */
export async function ourChains(): Promise<string[]> {
  const out: string[] = [];
  for (const family of ['iptables', 'ip6tables'] as const) {
    for (const table of TABLES) {
      for (const m of (await iptablesSave(family, table)).matchAll(/^:(\S+)/gm))
        if (OUR_CHAIN.test(m[1] as string)) out.push(`${family} ${table} ${m[1]}`);
    }
  }
  return out.sort();
}

function kubepodsCgroups(): string[] {
  let controllers: string[];
  try {
    controllers = fs.readdirSync(CGROUP_ROOT);
  } catch {
    return [];
  }
  return controllers.map((c) => path.join(CGROUP_ROOT, c, 'kubepods')).filter((p) => fs.existsSync(p));
}

async function linkNames(): Promise<string[]> {
  const { stdout } = await run('ip', ['-o', 'link', 'show']);
  return stdout
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
    .filter((n): n is string => !!n)
    .sort();
}

export async function snapshotHost(): Promise<HostSnapshot> {
  const sysctls: Record<string, string> = {};
  for (const key of SYSCTLS) {
    const v = readSysctl(key);
    if (v !== undefined) sysctls[key] = v;
  }
  return {
    sysctls,
    dirs: Object.fromEntries([...FIXED_DIRS, ...SHARED_DIRS].map((d) => [d, fs.existsSync(d)])),
    chains: await ourChains(),
    cgroups: kubepodsCgroups(),
    links: await linkNames(),
  };
}

/**
 * Splits an iptables-save rule into arguments: words, with "double quoted" parts (comments)
 * kept whole and \" inside them unescaped.
 */
export function splitRule(line: string): string[] {
  const args: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (quoted) {
      if (ch === '\\' && i + 1 < line.length) cur += line[++i];
      else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') {
      quoted = inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) args.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (inWord) args.push(cur);
  return args;
}

/** Deletes every KUBE-* and CNI-* chain and each rule elsewhere that jumps to one; nothing else. */
export async function removeOurChains(): Promise<string[]> {
  const problems: string[] = [];
  for (const family of ['iptables', 'ip6tables'] as const) {
    for (const table of TABLES) {
      const saved = await iptablesSave(family, table);
      const chains = [...saved.matchAll(/^:(\S+)/gm)].map((m) => m[1] as string).filter((c) => OUR_CHAIN.test(c));
      if (chains.length === 0) continue;
      for (const line of saved.split('\n')) {
        const args = splitRule(line);
        if (args[0] !== '-A' || OUR_CHAIN.test(args[1] ?? '')) continue;
        const target = args.findIndex((a, i) => (a === '-j' || a === '-g') && OUR_CHAIN.test(args[i + 1] ?? ''));
        if (target < 0) continue;
        await run(family, ['-t', table, '-D', ...args.slice(1)]).catch((e: unknown) =>
          problems.push(`${family} -t ${table} -D ${args.slice(1).join(' ')}: ${String(e)}`),
        );
      }
      for (const chain of chains) await run(family, ['-t', table, '-F', chain]).catch(() => undefined);
      for (const chain of chains)
        await run(family, ['-t', table, '-X', chain]).catch((e: unknown) =>
          problems.push(`${family} -t ${table} -X ${chain}: ${String(e)}`),
        );
    }
  }
  return problems;
}

/** Mount points at or under any of dirs, deepest first. */
export function mountsUnder(dirs: string[]): string[] {
  let info = '';
  try {
    info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const unescapeOctal = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const points = info
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => !!p)
    .map(unescapeOctal)
    .filter((p) => dirs.some((d) => p === d || p.startsWith(`${d}/`)));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

async function unmountUnder(dirs: string[]): Promise<string[]> {
  const problems: string[] = [];
  for (let round = 0; round < 3; round++) {
    const points = mountsUnder(dirs);
    if (points.length === 0) return [];
    for (const p of points) {
      await run('umount', [p]).catch(() =>
        run('umount', ['-l', p]).catch((e: unknown) => (round === 2 ? problems.push(`umount ${p}: ${String(e)}`) : 0)),
      );
    }
  }
  return problems;
}

/** The directories right under dir ([] when it is gone). */
async function subdirectories(dir: string): Promise<string[]> {
  const entries = await fsp.readdir(dir, { withFileTypes: true }).catch(() => [] as fs.Dirent[]);
  return entries.filter((e) => e.isDirectory()).map((e) => path.join(dir, e.name));
}

/** SIGKILLs every process in a cgroup tree. */
async function killProcessesIn(dir: string): Promise<void> {
  for (const sub of await subdirectories(dir)) await killProcessesIn(sub);
  const procs = await fsp.readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  for (const pid of procs.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

/** rmdir a cgroup tree bottom up (a cgroup dir holds only kernel files; rmdir removes it). */
async function removeCgroupTree(dir: string): Promise<void> {
  for (const sub of await subdirectories(dir)) await removeCgroupTree(sub);
  for (let i = 0; i < 20; i++) {
    try {
      await fsp.rmdir(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      await new Promise((r) => setTimeout(r, 250)); // a process may still be leaving it
    }
  }
  await fsp.rmdir(dir);
}

export interface RestoreOptions {
  before: HostSnapshot;
  /** The cluster's own directories (kubelet root, containerd state, volumes): unmounted, removed. */
  dirs: string[];
  /** Directories to unmount but keep (containerd's content store, cached across runs). */
  keepDirs?: string[];
  bridge: string;
  /** The CNI network name (its host-local leases live in /var/lib/cni/networks/NAME). */
  network: string;
}

/** Puts the host back as `before` found it; resolves to what could not be undone ([] when all). */
export async function restoreHost(o: RestoreOptions): Promise<string[]> {
  const problems: string[] = [];
  problems.push(...(await unmountUnder([...o.dirs, ...(o.keepDirs ?? [])])));
  // Host ends of pod veths whose namespaces are gone have gone with them; the rest go here.
  const { stdout } = await run('ip', ['-o', 'link', 'show', 'master', o.bridge]).catch(() => ({ stdout: '' }));
  for (const m of stdout.matchAll(/^\d+:\s+([^:@\s]+)/gm)) await run('ip', ['link', 'del', m[1] as string]).catch(() => undefined);
  if (!o.before.links.includes(o.bridge)) await run('ip', ['link', 'del', o.bridge]).catch(() => undefined);
  problems.push(...(await removeOurChains()));
  for (const cg of kubepodsCgroups()) {
    if (o.before.cgroups.includes(cg)) continue;
    await killProcessesIn(cg); // a dead run's pods outlive their killed shims
    await removeCgroupTree(cg).catch((e: unknown) => problems.push(`rmdir ${cg}: ${String(e)}`));
  }
  for (const [key, value] of Object.entries(o.before.sysctls)) {
    if (readSysctl(key) === value) continue;
    try {
      fs.writeFileSync(path.join('/proc/sys', ...key.split('.')), value);
    } catch (e) {
      problems.push(`sysctl ${key}=${value}: ${String(e)}`);
    }
  }
  for (const [dir, existed] of Object.entries(o.before.dirs)) {
    if (existed) continue;
    if (SHARED_DIRS.includes(dir)) await fsp.rmdir(dir).catch(() => undefined);
    else await fsp.rm(dir, { recursive: true, force: true });
  }
  if (o.before.dirs['/var/lib/cni']) {
    await fsp.rm(path.join('/var/lib/cni/networks', o.network), { recursive: true, force: true });
    const results = await fsp.readdir('/var/lib/cni/results').catch(() => [] as string[]);
    for (const r of results) if (r.startsWith(`${o.network}-`)) await fsp.rm(path.join('/var/lib/cni/results', r), { force: true });
  }
  for (const dir of o.dirs)
    await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 }).catch((e: unknown) => problems.push(`rm -r ${dir}: ${String(e)}`));
  return problems;
}

/** How the host differs from `before` (sysctls, dirs, chains, cgroups, links); [] when it does not. */
export async function hostDifferences(before: HostSnapshot, ignoreLinks: (name: string) => boolean = () => false): Promise<string[]> {
  const now = await snapshotHost();
  const diffs: string[] = [];
  for (const [k, v] of Object.entries(before.sysctls)) if (now.sysctls[k] !== v) diffs.push(`sysctl ${k}: ${v} -> ${now.sysctls[k]}`);
  for (const [d, e] of Object.entries(before.dirs))
    if (!SHARED_DIRS.includes(d) && now.dirs[d] !== e) diffs.push(`${d}: ${e ? 'was there, now gone' : 'is new'}`);
  const chains = new Set(before.chains);
  for (const c of now.chains) if (!chains.has(c)) diffs.push(`new chain ${c}`);
  for (const c of now.cgroups) if (!before.cgroups.includes(c)) diffs.push(`new cgroup ${c}`);
  const links = new Set(before.links);
  for (const l of now.links) if (!links.has(l) && !ignoreLinks(l)) diffs.push(`new link ${l}`);
  return diffs;
}
