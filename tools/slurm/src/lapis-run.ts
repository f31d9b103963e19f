#!/usr/bin/env node
// lapis-run: a Slurm step wrapper. `srun lapis-run --image IMAGE -- CMD...` runs CMD in a
// container with the job's CPU, memory and GPU allocation as limits, the working directory
// mounted at the same path, and its output on this process's stdout/stderr (so it lands in
// the job's output files). The container is removed when the command ends, fails, or the
// step is cancelled (SIGTERM/SIGINT/SIGHUP: `docker rm -f`); the epilog catches the rest.
// Before anything is created, image-sync's ResolveImage decides whether the image may run
// (trust.ts); a trusted image runs by its digest in the site registry.
import { spawn, spawnSync } from 'node:child_process';
import { containerName, dockerRunArgs, parseArgs, UsageError } from './step.js';
import { resolveImage, trustConfig, EXIT_UNAVAILABLE } from './trust.js';

async function main(): Promise<void> {
  let request: ReturnType<typeof parseArgs>;
  try {
    request = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`lapis-run: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(e instanceof UsageError ? 2 : 1);
  }
  let config: ReturnType<typeof trustConfig>;
  try {
    config = trustConfig(process.env);
  } catch (e) {
    process.stderr.write(`lapis-run: ${(e as Error).message}\n`);
    process.exit(EXIT_UNAVAILABLE);
  }
  const resolved = await resolveImage(request.image, config);
  if (!resolved.ok) {
    process.stderr.write(`lapis-run: ${resolved.message}\n`);
    process.exit(resolved.exitCode);
  }
  if (!resolved.trusted)
    process.stderr.write(
      `lapis-run: warning: image ${request.image} is not in the trusted catalogue; running it as given (LAPIS_ALLOW_UNTRUSTED_IMAGES)\n`,
    );
  request = { ...request, image: resolved.reference };
  const dockerCli = process.env.LAPIS_RUN_DOCKER ?? 'docker';
  const name = containerName(process.env, process.pid);
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const args = dockerRunArgs({ request, env: process.env, cwd: process.cwd(), defaultUser: `${uid}:${gid}`, name });

  // Slurm signals every process of the step, the CLI too (which forwards it to the container's
  // PID 1, which may ignore it): on a signal we remove the container ourselves, which ends the CLI.
  const child = spawn(dockerCli, args, { stdio: ['inherit', 'inherit', 'inherit'] });
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) return;
    signalled = signal;
    spawnSync(dockerCli, ['rm', '--force', name], { stdio: 'ignore', timeout: 20_000 });
    child.kill('SIGKILL');
  };
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(s, onSignal);

  child.on('error', (e) => {
    process.stderr.write(`lapis-run: could not run ${dockerCli}: ${e.message}\n`);
    process.exit(127);
  });
  child.on('exit', (code, signal) => {
    if (signalled) {
      process.exit(128 + (signalled === 'SIGINT' ? 2 : signalled === 'SIGHUP' ? 1 : 15));
    }
    // docker run exits 125-127 for its own failures, else with the command's status.
    process.exit(code ?? (signal ? 128 : 1));
  });
}

void main().catch((e: unknown) => {
  process.stderr.write(`lapis-run: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
