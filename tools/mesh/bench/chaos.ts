// Chaos benchmark (BENCH.md "ha"): the mesh highly available (three routed NATS
// servers with every stream and bucket in three copies, two replicas of image-sync, the
// scheduler and the orchestrator, three node agents on the one Docker engine) under a steady
// load from 20 projects, while the run kills, in turn, a NATS server, the scheduler's leader,
// an orchestrator replica and a node agent (kill -9, then the piece started again; the agent
// only after its node was declared lost, so its instances move and the node is fenced). The
// same workload then runs again without faults, on the same mesh, for comparison.
//
// Size: BENCH_SCALE=1 is 10,000 claims and 50 deployments
// over 10 minutes; this 2-core machine creates about 3 containers/s, so a run here uses
// BENCH_SCALE (claims, deployments and the submission phase scale; the phase is at least
// 90 s, so every kill fits; BENCH_DURATION_S sets it), a round of the four kills per 2 minutes.
// Claims are light: busybox (the mesh's trusted image) looping on `sleep 1`, flavor m1.tiny,
// restart_on_failure, on nodes advertising room for all of them;
// the run releases (cancels) each claim as soon as the scheduler reports its instance RUNNING.
// A deployment is a TOSCA Compute of two httpd instances, deleted once DEPLOYED.
//
// Measured: `lost` (claims never seen RUNNING, deployments never DEPLOYED), `duplicated`
// (instances for which the engine started more containers than the scheduler made placements,
// counted from docker events), `failover_p99_s` (each kill to the next placement; for the
// orchestrator, to the next step of a deployment under way at the kill), and
// `placements_per_s_during_faults` (placements between the first kill and 10 s after the last,
// beside the same window of the run without faults). `reconcile_1000_s` is not measured here:
// it is read from `npm run bench:reconcile -w services/container-runtime`'s
// bench/results/reconcile.json (BENCH_RECONCILE_FILE to read another). Prints Markdown tables;
// writes bench/results/ha.json.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { staticTokenFile } from '@lapis/platform/testing';
import { docker } from '@lapis/testenv';
import { MESH_TOKENS, REPO_ROOT, startMesh } from '../src/mesh';
import { percentile, runWorkload, type Project, type RunResult } from './chaos-workload';

const scale = Number(process.env.BENCH_SCALE ?? 1);
const PROJECTS = 20;
const claims = Math.max(PROJECTS, Math.round(10_000 * scale));
const deployments = Math.max(4, Math.round(50 * scale));
// BENCH_DURATION_S stretches a small run's submission phase to the pace this machine keeps.
const durationMs = Number(process.env.BENCH_DURATION_S ?? Math.max(90, 600 * scale)) * 1000;
const faultRounds = Math.max(1, Math.round(durationMs / 120_000));
// The scheduler declares a node lost after this; a killed agent stays away a little longer.
// Not 5 s: a scheduler whose own NATS server was killed misses every heartbeat while it
// reconnects, and at 5 s it declared all three nodes lost at once on this loaded machine.
const NODE_LOST_MS = 15_000;
const NODES = 3;

const say = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);

function reconcileFigure(): { value: number; source: string } | undefined {
  const file = process.env.BENCH_RECONCILE_FILE ?? join(REPO_ROOT, 'bench/results/reconcile.json');
  if (!existsSync(file)) return undefined;
  const figures = JSON.parse(readFileSync(file, 'utf8')) as { reconcile_1000_s?: number; at?: string };
  return figures.reconcile_1000_s === undefined
    ? undefined
    : { value: figures.reconcile_1000_s, source: `${file} (${figures.at ?? 'undated'})` };
}

async function main(): Promise<void> {
  const projects: Project[] = Array.from({ length: PROJECTS }, (_, i) => ({ project: `chaos-${i + 1}`, token: `chaos-token-${i + 1}` }));
  const tokens = staticTokenFile([
    ...Object.values(MESH_TOKENS),
    ...projects.map((p, i) => ({ token: p.token, user: `chaos-user-${i + 1}`, projects: [p.project] })),
  ]);
  say(
    `chaos: ${claims} claims and ${deployments} deployments from ${PROJECTS} projects over ${durationMs / 1000} s, ${faultRounds} round(s) of kills`,
  );
  const mesh = await startMesh({
    natsServers: 3,
    replicas: 2,
    nodes: NODES,
    // The OCCI gateway is stateless and not on this workload's path: left out to spare the CPUs.
    services: ['image-sync', 'container-runtime', 'scheduler', 'tosca-orchestrator'],
    progress: say,
    env: { LAPIS_STATIC_TOKENS_FILE: tokens },
    serviceEnv: {
      // Room for every claim at once on each node (the containers use almost nothing).
      'container-runtime': {
        LAPIS_NODE_CPU_MILLIS: String(1000 * claims),
        LAPIS_NODE_MEMORY_BYTES: String(2 ** 40),
        LAPIS_STOP_TIMEOUT_S: '1',
      },
      scheduler: { LAPIS_SCHEDULER_NODE_LOST_MS: String(NODE_LOST_MS) },
    },
  });
  // Interrupted: the mesh is stopped (its processes, containers, networks) before exiting.
  const interrupted = () => void mesh.stop().finally(() => process.exit(130));
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const plan = {
    claims,
    deployments,
    durationMs,
    projects,
    adminToken: MESH_TOKENS.admin.token,
    faultRounds,
    nodeAwayMs: NODE_LOST_MS + 3_000,
    settleMs: Number(process.env.BENCH_SETTLE_S ?? 300) * 1000,
    progress: say,
  };
  let faults: RunResult;
  let calm: RunResult;
  try {
    say('run with faults');
    faults = await runWorkload(mesh, { ...plan, name: 'faults', faults: true });
    say('run without faults');
    calm = await runWorkload(mesh, { ...plan, name: 'calm', faults: false });
  } finally {
    await mesh.stop();
  }
  report(faults, calm, await leftOnEngine(mesh.nodeNames));
}

/** Containers and networks of the mesh's nodes still on the engine once it stopped. */
async function leftOnEngine(nodes: string[]): Promise<number> {
  let left = 0;
  for (const node of nodes) {
    for (const kind of [
      ['ps', '-aq'],
      ['network', 'ls', '-q'],
    ]) {
      left += (await docker([...kind, '--filter', `label=lapis.node=${node}`])).split('\n').filter(Boolean).length;
    }
  }
  return left;
}

function report(faults: RunResult, calm: RunResult, leftAfterStop: number): void {
  const failovers = faults.kills.map((k) => k.failoverS);
  const reconcile = reconcileFigure();
  const figures = {
    lost: faults.lost.length,
    duplicated: faults.duplicated.length,
    failover_p99_s: Number(percentile(failovers, 99).toFixed(2)),
    failover_p50_s: Number(percentile(failovers, 50).toFixed(2)),
    ...(reconcile ? { reconcile_1000_s: reconcile.value } : {}),
    placements_per_s_during_faults: Number(faults.placementsPerS.toFixed(2)),
    placements_per_s_no_faults: Number(calm.placementsPerS.toFixed(2)),
    lost_no_faults: calm.lost.length,
    duplicated_no_faults: calm.duplicated.length,
    leftovers: faults.leftovers,
    leftovers_no_faults: calm.leftovers,
    left_after_stop: leftAfterStop,
    kills: faults.kills.length,
    claims,
    deployments,
    projects: PROJECTS,
    nodes: NODES,
    duration_s: durationMs / 1000,
    scale,
    machine: { nproc: cpus().length, memory_gb: Math.round(totalmem() / 2 ** 30) },
    at: new Date().toISOString(),
  };
  const row = (name: string, a: string | number, b: string | number, goal: string) => `| ${name} | ${a} | ${b} | ${goal} |`;
  const lines = [
    `\nLapis HA under chaos: ${claims} claims and ${deployments} TOSCA deployments from ${PROJECTS} projects over ${durationMs / 1000} s (BENCH_SCALE=${scale}), 3 NATS servers (replicas 3), 2 replicas of each service, ${NODES} node agents; ${faults.kills.length} kills\n`,
    '| metric | with faults | without faults | goal |',
    '|---|---:|---:|---|',
    row('lost (claims + deployments never finished)', figures.lost, figures.lost_no_faults, '0'),
    row('duplicated (containers run twice)', figures.duplicated, figures.duplicated_no_faults, '0'),
    row('left after each run (its containers)', faults.leftovers, calm.leftovers, '0'),
    row('left once the mesh stopped (containers, networks of its nodes)', leftAfterStop, '', '0'),
    row('failover p99 s (kill to next placement / deployment step)', figures.failover_p99_s, '-', '<= 5'),
    row(
      'placements/s, fault window',
      figures.placements_per_s_during_faults,
      figures.placements_per_s_no_faults,
      `ratio ${(faults.placementsPerS / (calm.placementsPerS || 1)).toFixed(2)}`,
    ),
    row('claim submit to RUNNING p50 s', faults.claimRunP50S.toFixed(1), calm.claimRunP50S.toFixed(1), ''),
    row('claim submit to RUNNING p99 s', faults.claimRunP99S.toFixed(1), calm.claimRunP99S.toFixed(1), ''),
    row('deployment create to DEPLOYED p50 s', faults.deployP50S.toFixed(1), calm.deployP50S.toFixed(1), ''),
    row('run wall s', faults.wallS.toFixed(0), calm.wallS.toFixed(0), ''),
    row(
      'reconcile_1000_s (not re-measured here)',
      reconcile
        ? `${reconcile.value} from ${reconcile.source}`
        : 'no reconcile.json: run npm run bench:reconcile -w services/container-runtime',
      '-',
      '<= 5',
    ),
    '',
    '| kill | target | down s | failover s | to |',
    '|---|---|---:|---:|---|',
    ...faults.kills.map(
      (k) => `| ${k.kind} | ${k.target} | ${((k.back - k.at) / 1000).toFixed(1)} | ${k.failoverS.toFixed(2)} | next ${k.via} |`,
    ),
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  for (const [label, result] of [
    ['with faults', faults],
    ['without faults', calm],
  ] as const) {
    for (const what of [...result.lost.slice(0, 20), ...result.duplicated.slice(0, 20)]) process.stdout.write(`${label}: ${what}\n`);
  }
  mkdirSync(join(REPO_ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(REPO_ROOT, 'bench/results/ha.json'), `${JSON.stringify(figures, null, 2)}\n`);
}

main().catch((error) => {
  process.stderr.write(`benchmark failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
