// A one-node Slurm cluster on loopback (Debian slurm-wlm + munge): slurmctld and slurmd with
// their config, state, spool, logs and pid files in a temp dir, on free ports. Slurm's own
// commands (sbatch, srun, squeue, ...) reach it through SLURM_CONF.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureCommands } from './apt.js';
import { freePort, waitFor } from './ports.js';
import { forgetOnExit, removeOnExit, run, spawnLogged, tailFile, type RunResult, type Supervised } from './proc.js';

/** The node name and the partition every cluster from startSlurm has. */
export const SLURM_NODE = 'localhost';
export const SLURM_PARTITION = 'batch';

const MUNGE_SOCKET = '/run/munge/munge.socket.2';

export interface StartSlurmOptions {
  /** CPUs of the one node; default 2. */
  cpus?: number;
  /** Memory of the node in MB; default 8000. */
  realMemoryMb?: number;
  /** How long the daemons get to show the node idle; default 60 s. */
  timeoutMs?: number;
  /** More slurm.conf lines, appended (e.g. `Epilog=/path/to/script`). */
  extraConf?: readonly string[];
  /**
   * Node names of the cluster, all on this host (one slurmd per name with its own port,
   * Slurm's multiple-slurmd mode); default the one node `localhost`. Each node has `cpus`
   * and `realMemoryMb`; all are in the `batch` partition.
   */
  nodes?: readonly string[];
}

export interface SbatchOptions {
  /** Extra sbatch arguments (e.g. ['--mem=100M', '-c', '1', '-o', 'out.txt']). */
  args?: readonly string[];
  /** The job's working directory (sbatch runs there); default the cluster's temp dir. */
  cwd?: string;
}

export interface SlurmJob {
  id: string;
  /** PENDING, RUNNING, COMPLETING, ... as squeue prints it. */
  state: string;
  name: string;
}

export interface SlurmCluster {
  /** Path of the slurm.conf. */
  conf: string;
  /** The temp dir with the config, state, spool and logs. */
  dir: string;
  /** process.env plus SLURM_CONF: run Slurm commands with it. */
  env: NodeJS.ProcessEnv;
  /** Absolute paths of the Slurm commands (sbin may not be on PATH). */
  bin: Record<SlurmCommand, string>;
  slurmctldLog: string;
  /** The first node's slurmd log (each node has slurmd-<node>.log). */
  slurmdLog: string;
  /** The node names (default ['localhost']). */
  nodes: string[];
  /** Submits a batch script (its text, with its #! line); resolves to the job id. */
  sbatch(script: string, opts?: SbatchOptions): Promise<string>;
  /** The jobs slurmctld knows that have not ended. */
  squeue(): Promise<SlurmJob[]>;
  scancel(id: string, args?: readonly string[]): Promise<void>;
  /** `sinfo -h -N -o '%N %T'`: node name and state per line. */
  sinfo(): Promise<string>;
  /** A job's JobState from `scontrol show job` (COMPLETED, CANCELLED, FAILED, ...; also for ended jobs). */
  jobState(id: string): Promise<string>;
  /** Waits until the job's state is one of `states`; resolves to that state. */
  waitForJob(id: string, states: readonly string[], timeoutMs?: number): Promise<string>;
  /** Runs one of the Slurm commands with this cluster's SLURM_CONF. */
  command(name: SlurmCommand, args: readonly string[], opts?: { cwd?: string; input?: string; timeoutMs?: number }): Promise<RunResult>;
  /** Cancels jobs left, stops slurmd and slurmctld (and munged if we started it), removes the dir. */
  stop(): Promise<void>;
}

const COMMANDS = {
  slurmctld: 'slurm-wlm',
  slurmd: 'slurm-wlm',
  sbatch: 'slurm-wlm',
  srun: 'slurm-wlm',
  squeue: 'slurm-wlm',
  scancel: 'slurm-wlm',
  sinfo: 'slurm-wlm',
  scontrol: 'slurm-wlm',
  munged: 'munge',
  munge: 'munge',
} as const;
export type SlurmCommand = keyof typeof COMMANDS;

/** true when a munged answers on the default socket (a credential can be made). */
async function mungeWorks(munge: string): Promise<boolean> {
  try {
    await run(munge, ['-n'], { timeoutMs: 5000 });
    return true;
  } catch {
    return false;
  }
}

/** Starts munged unless one answers; resolves to it when we started it. */
async function ensureMunged(munged: string, munge: string, logFile: string, timeoutMs: number): Promise<Supervised | undefined> {
  if (await mungeWorks(munge)) return undefined;
  await fs.mkdir('/run/munge', { recursive: true });
  // munged refuses a socket dir it does not own; Debian's munge user owns the key too.
  await run('chown', ['munge:munge', '/run/munge']).catch(() => undefined);
  // A socket left by a munged that died would make a new one refuse to start without --force.
  const proc = spawnLogged(munged, ['--foreground', '--force'], { logFile, graceMs: 5000 });
  try {
    await waitFor(
      async () => {
        proc.failIfExited();
        await fs.access(MUNGE_SOCKET);
        return mungeWorks(munge);
      },
      { timeoutMs, what: `\`${proc.command}\` to answer on ${MUNGE_SOCKET} (log: ${logFile})`, intervalMs: 200 },
    );
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return proc;
}

function slurmConf(
  dir: string,
  ctldPort: number,
  slurmdPorts: number[],
  nodes: readonly string[],
  cpus: number,
  memMb: number,
  extra: readonly string[],
): string {
  const multi = nodes.length > 1;
  // Several slurmd on one host: each node its own port, pid and log file (%n is the node name).
  const nodeLines = nodes.map(
    (n, i) =>
      `NodeName=${n}${multi ? ` NodeHostname=localhost` : ''} NodeAddr=127.0.0.1${multi ? ` Port=${slurmdPorts[i]}` : ''} CPUs=${cpus} RealMemory=${memMb} State=UNKNOWN`,
  );
  return [
    '# Written by @lapis/testenv startSlurm(): a one-node cluster on loopback.',
    'ClusterName=lapis-testenv',
    `SlurmctldHost=${SLURM_NODE}(127.0.0.1)`,
    'SlurmUser=root',
    'SlurmdUser=root',
    'AuthType=auth/munge',
    'CredType=cred/munge',
    `SlurmctldPort=${ctldPort}`,
    `SlurmdPort=${slurmdPorts[0]}`,
    `StateSaveLocation=${dir}/state`,
    `SlurmdSpoolDir=${dir}/spool/%n`,
    `SlurmctldPidFile=${dir}/slurmctld.pid`,
    `SlurmdPidFile=${dir}/slurmd${multi ? '-%n' : ''}.pid`,
    `SlurmctldLogFile=${dir}/slurmctld.log`,
    `SlurmdLogFile=${dir}/slurmd${multi ? '-%n' : ''}.log`,
    'SlurmctldDebug=info',
    'SlurmdDebug=info',
    'ProctrackType=proctrack/linuxproc',
    'TaskPlugin=task/none',
    'JobAcctGatherType=jobacct_gather/none',
    'AccountingStorageType=accounting_storage/none',
    'MpiDefault=none',
    'SelectType=select/cons_tres',
    'SelectTypeParameters=CR_Core_Memory',
    'SchedulerType=sched/backfill',
    'PriorityType=priority/multifactor',
    'ReturnToService=2',
    // Ended jobs stay visible to scontrol for a while; killed steps get 5 s after SIGTERM.
    'MinJobAge=300',
    'KillWait=5',
    'SlurmdTimeout=60',
    'SlurmdParameters=config_overrides',
    ...nodeLines,
    `PartitionName=${SLURM_PARTITION} Nodes=${nodes.join(',')} Default=YES MaxTime=INFINITE State=UP`,
    ...extra,
    '',
  ].join('\n');
}

export async function startSlurm(opts: StartSlurmOptions = {}): Promise<SlurmCluster> {
  const bin = await ensureCommands(COMMANDS);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lapis-slurm-'));
  removeOnExit(dir);
  const procs: Supervised[] = [];
  let munged: Supervised | undefined;
  const conf = path.join(dir, 'slurm.conf');
  const env: NodeJS.ProcessEnv = { ...process.env, SLURM_CONF: conf };

  const command: SlurmCluster['command'] = (name, args, o = {}) =>
    run(bin[name], args, { env, cwd: o.cwd ?? dir, input: o.input, timeoutMs: o.timeoutMs ?? 30_000 });

  const squeue = async (): Promise<SlurmJob[]> => {
    const { stdout } = await command('squeue', ['-h', '-o', '%i|%T|%j']);
    return stdout
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => {
        const [id = '', state = '', name = ''] = l.trim().split('|');
        return { id, state, name };
      });
  };

  const shutdown = async (): Promise<void> => {
    // Jobs first, so that no slurmstepd (and nothing a step started) outlives the cluster.
    const ctld = procs[0];
    if (ctld && !ctld.exitInfo) {
      try {
        if ((await squeue()).length > 0) {
          await command('scancel', ['--full', '--partition', SLURM_PARTITION]);
          await waitFor(async () => (await squeue()).length === 0, { timeoutMs: 30_000, what: 'the jobs left to end' });
        }
      } catch {
        // stop the daemons anyway
      }
    }
    for (const p of [...procs].reverse()) await p.stop();
    await munged?.stop();
    await fs.rm(dir, { recursive: true, force: true });
    forgetOnExit(dir);
  };

  try {
    const nodes = opts.nodes && opts.nodes.length > 0 ? [...opts.nodes] : [SLURM_NODE];
    const ctldPort = await freePort();
    const slurmdPorts: number[] = [];
    for (let i = 0; i < nodes.length; i++) slurmdPorts.push(await freePort());
    const cpus = opts.cpus ?? 2;
    await fs.mkdir(path.join(dir, 'state'));
    await fs.mkdir(path.join(dir, 'spool'));
    await fs.writeFile(conf, slurmConf(dir, ctldPort, slurmdPorts, nodes, cpus, opts.realMemoryMb ?? 8000, opts.extraConf ?? []));
    munged = await ensureMunged(bin.munged, bin.munge, path.join(dir, 'munged.log'), timeoutMs);

    const slurmctldLog = path.join(dir, 'slurmctld.log');
    const slurmdLog = path.join(dir, nodes.length > 1 ? `slurmd-${nodes[0]}.log` : 'slurmd.log');
    // -D: stay in the foreground (so proc.ts tracks them); -i: ignore any state (it is a fresh dir).
    procs.push(spawnLogged(bin.slurmctld, ['-D', '-i', '-f', conf], { logFile: path.join(dir, 'slurmctld.out'), env, graceMs: 10_000 }));
    for (const node of nodes) {
      const out = path.join(dir, nodes.length > 1 ? `slurmd-${node}.out` : 'slurmd.out');
      procs.push(spawnLogged(bin.slurmd, ['-D', '-N', node, '-f', conf], { logFile: out, env, graceMs: 10_000 }));
    }

    let lastSinfo = '';
    await waitFor(
      async () => {
        for (const p of procs) p.failIfExited();
        lastSinfo = (await command('sinfo', ['-h', '-N', '-o', '%N %T'], { timeoutMs: 5000 })).stdout.trim();
        return nodes.every((n) => new RegExp(`^${n.replace(/[.]/g, '\\.')} idle$`, 'm').test(lastSinfo));
      },
      { timeoutMs, what: `the Slurm node(s) to be idle (sinfo: "${lastSinfo}"; logs: ${slurmctldLog}, ${slurmdLog})`, intervalMs: 250 },
    );

    let stopped: Promise<void> | undefined;
    const jobState = async (id: string): Promise<string> => {
      const { stdout } = await command('scontrol', ['-o', 'show', 'job', id]);
      const m = /\bJobState=(\S+)/.exec(stdout);
      if (!m?.[1]) throw new Error(`no JobState in \`scontrol show job ${id}\`: ${stdout}`);
      return m[1];
    };
    return {
      conf,
      dir,
      env,
      bin,
      slurmctldLog,
      slurmdLog,
      nodes,
      command,
      async sbatch(script, o = {}) {
        const { stdout } = await command('sbatch', ['--parsable', ...(o.args ?? [])], { cwd: o.cwd ?? dir, input: script });
        const id = stdout.trim().split(';')[0] ?? '';
        if (!/^\d+$/.test(id)) throw new Error(`sbatch printed no job id: ${stdout}`);
        return id;
      },
      squeue,
      async scancel(id, args = []) {
        await command('scancel', [...args, id]);
      },
      async sinfo() {
        return (await command('sinfo', ['-h', '-N', '-o', '%N %T'])).stdout;
      },
      jobState,
      async waitForJob(id, states, ms = 60_000) {
        let state = '';
        await waitFor(
          async () => {
            state = await jobState(id);
            return states.includes(state);
          },
          { timeoutMs: ms, what: `job ${id} to be ${states.join(' or ')} (last: ${state})`, intervalMs: 250 },
        );
        return state;
      },
      stop() {
        stopped ??= shutdown();
        return stopped;
      },
    };
  } catch (e) {
    const logs = ['slurmctld.log', 'slurmd.log', ...(opts.nodes ?? []).map((n) => `slurmd-${n}.log`)]
      .map((f) => path.join(dir, f))
      .map((f) => `${f}:\n${tailFile(f, 10) || '(none)'}`)
      .join('\n');
    await shutdown().catch(() => undefined);
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- Slurm logs ---\n${logs}`);
  }
}
