// Pure part of lapis-run: from its arguments and the Slurm step's environment to the
// `docker run` arguments that put the step in a container with the job's allocation.

export interface StepRequest {
  image: string;
  command: string[];
  /** Extra NAME=VALUE variables for the container. */
  env: string[];
  /** uid:gid the container runs as; default the step's own user (files in the workdir stay theirs). */
  user?: string;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const USAGE = 'usage: lapis-run --image IMAGE [--env NAME=VALUE]... [--user UID:GID] -- COMMAND [ARG]...';

/** Parses `--image IMAGE [--env K=V]... [--user U:G] -- CMD...`. */
export function parseArgs(argv: readonly string[]): StepRequest {
  const env: string[] = [];
  let image: string | undefined;
  let user: string | undefined;
  let i = 0;
  const value = (flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v === '--') throw new UsageError(`${flag} needs a value\n${USAGE}`);
    i += 2;
    return v;
  };
  while (i < argv.length) {
    const arg = argv[i] as string;
    if (arg === '--') {
      i++;
      break;
    }
    if (arg === '--image') image = value(arg);
    else if (arg === '--env') {
      const e = value(arg);
      if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(e)) throw new UsageError(`--env takes NAME=VALUE, got "${e}"`);
      env.push(e);
    } else if (arg === '--user') {
      const u = value(arg);
      if (!/^\d+(:\d+)?$/.test(u)) throw new UsageError(`--user takes UID[:GID] (numbers), got "${u}"`);
      user = u;
    } else throw new UsageError(`unknown argument "${arg}"\n${USAGE}`);
  }
  if (!image) throw new UsageError(`--image is required\n${USAGE}`);
  const command = argv.slice(i);
  if (command.length === 0) throw new UsageError(`no command after --\n${USAGE}`);
  return { image, command, env, ...(user !== undefined ? { user } : {}) };
}

export interface Allocation {
  cpus?: number;
  memoryMb?: number;
  /** GPU indices on the node (GRES), as Slurm hands them to the step. */
  gpus?: string[];
}

function positiveInt(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  const n = Number(v);
  return n > 0 ? n : undefined;
}

/**
 * The job's allocation on this node, from the variables slurmstepd sets: CPUs from
 * SLURM_CPUS_ON_NODE, memory from SLURM_MEM_PER_NODE (MB) or SLURM_MEM_PER_CPU x CPUs,
 * GPUs from SLURM_STEP_GPUS / SLURM_JOB_GPUS (the GRES indices).
 */
export function allocationFromEnv(env: NodeJS.ProcessEnv): Allocation {
  const cpus = positiveInt(env.SLURM_CPUS_ON_NODE);
  const perNode = positiveInt(env.SLURM_MEM_PER_NODE);
  const perCpu = positiveInt(env.SLURM_MEM_PER_CPU);
  const memoryMb = perNode ?? (perCpu !== undefined && cpus !== undefined ? perCpu * cpus : undefined);
  const gpuList = (env.SLURM_STEP_GPUS ?? env.SLURM_JOB_GPUS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return {
    ...(cpus !== undefined ? { cpus } : {}),
    ...(memoryMb !== undefined ? { memoryMb } : {}),
    ...(gpuList.length > 0 ? { gpus: gpuList } : {}),
  };
}

/** A container name unique per job, step and task (Docker names allow [a-zA-Z0-9_.-]). */
export function containerName(env: NodeJS.ProcessEnv, pid: number): string {
  const part = (v: string | undefined, fallback: string): string => (v ?? fallback).replace(/[^a-zA-Z0-9_.-]/g, '_');
  return `lapis-slurm-${part(env.SLURM_JOB_ID, 'nojob')}-${part(env.SLURM_STEP_ID, 'nostep')}-${part(env.SLURM_PROCID, String(pid))}`;
}

export const JOB_LABEL = 'lapis.slurm.job';

export interface DockerRunInput {
  request: StepRequest;
  env: NodeJS.ProcessEnv;
  /** The step's working directory, mounted at the same path. */
  cwd: string;
  /** uid:gid of the step's user, used when the request names none. */
  defaultUser: string;
  name: string;
}

/** `docker run` arguments: limits, mount, labels, Slurm variables, then image and command. */
export function dockerRunArgs(input: DockerRunInput): string[] {
  const { request, env, cwd, name } = input;
  const alloc = allocationFromEnv(env);
  const args = ['run', '--rm', '--name', name, '--network', 'host'];
  args.push('--label', `${JOB_LABEL}=${env.SLURM_JOB_ID ?? ''}`);
  args.push('--label', `lapis.slurm.step=${env.SLURM_STEP_ID ?? ''}`);
  args.push('--label', `lapis.slurm.task=${env.SLURM_PROCID ?? ''}`);
  if (alloc.cpus !== undefined) args.push('--cpus', String(alloc.cpus));
  if (alloc.memoryMb !== undefined) {
    // No swap beyond the allocation: memory-swap equal to memory.
    args.push('--memory', `${alloc.memoryMb}m`, '--memory-swap', `${alloc.memoryMb}m`);
  }
  if (alloc.gpus) args.push('--gpus', `"device=${alloc.gpus.join(',')}"`);
  args.push('--volume', `${cwd}:${cwd}`, '--workdir', cwd);
  args.push('--user', request.user ?? input.defaultUser);
  // The step's Slurm variables, so the program sees its job as it would outside a container.
  for (const key of Object.keys(env).sort()) if (key.startsWith('SLURM_')) args.push('--env', key);
  for (const e of request.env) args.push('--env', e);
  args.push(request.image, ...request.command);
  return args;
}
