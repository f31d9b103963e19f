// Mesh benchmark (BENCH.md "mesh"): time from CreateDeployment to every instance RUNNING for
// templates of 1, 10 and 50 instances (scaled by BENCH_SCALE), against starting the same
// containers (the runtime's project network, mount points and limits) directly with the docker
// CLI, ten at a time; plain `docker run`s on the default bridge are shown beside them. Best of
// BENCH_ROUNDS (2) rounds. Prints a Markdown table; writes bench/results/mesh.json.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VOLUME_MOUNT_ROOT } from '@lapis/platform';
import { docker } from '@lapis/testenv';
import { deploy, undeploy } from '../src/example';
import { REPO_ROOT, startMesh, type Mesh } from '../src/mesh';

const execFileAsync = promisify(execFile);
const scale = Number(process.env.BENCH_SCALE ?? 1);
const sizes = [1, 10, 50].map((n) => Math.max(1, Math.round(n * scale)));
const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 2));

const template = (count: number) => `tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    server:
      type: tosca.nodes.indigo.Compute
      capabilities:
        host: { properties: { num_cpus: 1, mem_size: 64 MB } }
        os: { properties: { image: "lapis/httpd:1.36" } }
        scalable: { properties: { count: ${count} } }
`;

/**
 * Starts `count` containers directly with the docker CLI, ten at a time, and returns the
 * seconds it took. `same` makes them the containers the runtime makes (its project network
 * with an alias, the rslave mount point and the read-only metadata directory, the pids
 * limit); without it they are plain `docker run`s on the default bridge.
 */
async function direct(mesh: Mesh, count: number, same: boolean): Promise<number> {
  const image = `${mesh.site.host}/lapis/httpd:1.36`;
  await docker(['pull', '-q', image]);
  const names = Array.from({ length: count }, (_, i) => `lapis-bench-direct-${i}`);
  const root = mkdtempSync(join(tmpdir(), 'lapis-bench-direct-'));
  const network = 'lapis-bench-direct';
  if (same) {
    await docker(['network', 'create', network]);
    // One shared mount over all the mount points, made before the clock starts.
    await execFileAsync('mount', ['--bind', '--make-rshared', root, root]);
    for (const name of names) for (const dir of ['mnt', 'etc']) mkdirSync(join(root, name, dir), { recursive: true });
  }
  const flags = (name: string) =>
    same
      ? [
          '--network',
          network,
          '--network-alias',
          name,
          '--pids-limit',
          '4096',
          '--label',
          'lapis.bench=direct',
          '--mount',
          `type=bind,source=${join(root, name, 'mnt')},target=${VOLUME_MOUNT_ROOT},bind-propagation=rslave`,
          '--mount',
          `type=bind,source=${join(root, name, 'etc')},target=/etc/lapis,readonly`,
        ]
      : [];
  try {
    const started = Date.now();
    // Ten at a time, as the runtime agent creates them.
    for (let i = 0; i < names.length; i += 10) {
      await Promise.all(
        names
          .slice(i, i + 10)
          .map((name) => docker(['run', '-d', '--name', name, '--cpus', '1', '--memory', '64m', ...flags(name), image])),
      );
    }
    return (Date.now() - started) / 1000;
  } finally {
    await docker(['rm', '-f', ...names]).catch(() => undefined);
    if (same) {
      await docker(['network', 'rm', network]).catch(() => undefined);
      await execFileAsync('umount', [root]).catch(() => undefined);
    }
    rmSync(root, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const mesh = await startMesh({
    services: ['image-sync', 'container-runtime', 'scheduler', 'tosca-orchestrator'],
    serviceEnv: {
      'container-runtime': { LAPIS_NODE_CPU_MILLIS: String(1000 * Math.max(...sizes)), LAPIS_NODE_MEMORY_BYTES: String(64 * 2 ** 30) },
    },
  });
  const rows: Array<{ n: number; mesh: number; direct: number; plain: number }> = [];
  try {
    for (const n of sizes) {
      const row = { n, mesh: Infinity, direct: Infinity, plain: Infinity };
      // Rounds in turn, the best of each side kept: a neighbour's burst on a small shared
      // machine slows one run, not the figure.
      for (let round = 0; round < rounds; round++) {
        const started = Date.now();
        const deployment = await deploy(mesh, template(n), `bench-${n}.yaml`, 600_000);
        row.mesh = Math.min(row.mesh, (Date.now() - started) / 1000);
        // The next run gets the whole node, as the direct run does.
        await undeploy(mesh, deployment.id, 600_000);
        row.direct = Math.min(row.direct, await direct(mesh, n, true));
        row.plain = Math.min(row.plain, await direct(mesh, n, false));
      }
      rows.push(row);
    }
  } finally {
    await mesh.stop();
  }
  const at = (n: number) => rows.find((r) => r.n === n);
  const largest = rows[rows.length - 1]!;
  const figures = {
    deploy_1_s: at(sizes[0]!)?.mesh,
    deploy_10_s: at(sizes[1]!)?.mesh,
    deploy_50_s: at(sizes[2]!)?.mesh,
    overhead_ratio: Number((largest.mesh / largest.direct).toFixed(3)),
    direct_50_s: largest.direct,
    plain_docker_run_50_s: largest.plain,
    machine: { nproc: cpus().length, memory_gb: Math.round(totalmem() / 2 ** 30) },
    at: new Date().toISOString(),
  };
  process.stdout.write(
    `\nLapis mesh: CreateDeployment until every instance RUNNING, against \`docker run\` (10 at a time) of the same containers (project network, mount points, limits) and of plain ones (default bridge); best of ${rounds} rounds; goal: mesh / same containers <= 1.3\n\n`,
  );
  process.stdout.write(
    '| instances | mesh s | direct, same containers s | ratio | direct, plain docker run s | ratio |\n|---:|---:|---:|---:|---:|---:|\n',
  );
  for (const r of rows)
    process.stdout.write(
      `| ${r.n} | ${r.mesh.toFixed(2)} | ${r.direct.toFixed(2)} | ${(r.mesh / r.direct).toFixed(2)} | ${r.plain.toFixed(2)} | ${(r.mesh / r.plain).toFixed(2)} |\n`,
    );
  mkdirSync(join(REPO_ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(REPO_ROOT, 'bench/results/mesh.json'), `${JSON.stringify(figures, null, 2)}\n`);
}

main().catch((error) => {
  process.stderr.write(`benchmark failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
