// The director's view of Slurm and its two changes to it, through Slurm's own commands
// (execFile, no shell): `scontrol -o show node` (one line per node), `squeue` with a
// '|'-separated format, `scontrol update nodename=X state=drain|resume`.
import { execFile } from 'node:child_process';
import type { SlurmNode } from './domain.js';

/** Parses `scontrol -o show node` (one node per line, KEY=VALUE; Reason= is last and may hold spaces). */
export function parseNodes(text: string): SlurmNode[] {
  const nodes: SlurmNode[] = [];
  for (const line of text.split('\n')) {
    const name = /(?:^|\s)NodeName=(\S+)/.exec(line)?.[1];
    if (!name) continue;
    const [state = 'UNKNOWN', ...flags] = (/\sState=(\S+)/.exec(line)?.[1] ?? 'UNKNOWN').split('+');
    const reasonRaw = /\sReason=(.*)$/.exec(line)?.[1] ?? '';
    nodes.push({
      name,
      state: state.replace(/\*$/, ''),
      flags,
      reason: reasonRaw.replace(/\s*\[[^\]]*\]\s*$/, '').trim(),
      cpuAlloc: Number(/\sCPUAlloc=(\d+)/.exec(line)?.[1] ?? 0),
      partitions: (/\sPartitions=(\S+)/.exec(line)?.[1] ?? '').split(',').filter(Boolean),
    });
  }
  return nodes;
}

/**
 * Pending reasons (squeue %r) of jobs that more nodes would not help: held, waiting on
 * another job, a start time, a limit of the user or account, a down partition.
 */
const NOT_FOR_NODES =
  /^(Dependency|DependencyNeverSatisfied|JobHeld(User|Admin)|BeginTime|PartitionDown|PartitionInactive|PartitionTimeLimit|Reservation|QOS.*|Assoc.*|.*Limit|launch failed.*|BadConstraints|InvalidAccount|InvalidQOS)$/;

/**
 * The nodes asked for (%D, at least 1) by the jobs in `squeue -h -t PENDING -o '%i|%D|%r'`
 * output that wait for nodes: a job that needs four nodes wants four, not one.
 */
export function parsePendingJobNodes(text: string): number {
  let n = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [, nodes = '', ...rest] = line.split('|');
    if (NOT_FOR_NODES.test(rest.join('|').trim())) continue;
    const asked = Number.parseInt(nodes, 10);
    n += Number.isFinite(asked) && asked > 0 ? asked : 1;
  }
  return n;
}

export interface SlurmCommands {
  scontrol: string;
  squeue: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export class SlurmAdapter {
  constructor(private readonly c: SlurmCommands) {}

  private run(cmd: string, args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(
        cmd,
        args,
        { env: this.c.env ?? process.env, timeout: this.c.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) => {
          if (error) reject(new Error(`${cmd} ${args.join(' ')}: ${String(stderr).trim() || error.message}`));
          else resolve(String(stdout));
        },
      );
    });
  }

  async nodes(): Promise<SlurmNode[]> {
    return parseNodes(await this.run(this.c.scontrol, ['-o', 'show', 'node']));
  }

  async pendingJobNodes(partition: string): Promise<number> {
    return parsePendingJobNodes(await this.run(this.c.squeue, ['-h', '-t', 'PENDING', '-p', partition, '-o', '%i|%D|%r']));
  }

  async drain(node: string, reason: string): Promise<void> {
    await this.run(this.c.scontrol, ['update', `nodename=${node}`, 'state=drain', `reason=${reason}`]);
  }

  async resume(node: string): Promise<void> {
    await this.run(this.c.scontrol, ['update', `nodename=${node}`, 'state=resume']);
  }
}
