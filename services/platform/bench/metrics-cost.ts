// What metrics cost (issue 21): the scheduler's and the runtime's benchmarks, each run with
// metrics off and on (BENCH_METRICS, which starts telemetry in both runs and, when on, exports
// through Prometheus and scrapes every 5 s, BENCH_SCRAPE_MS), taking turns in one run on one
// machine so both see the same load. Prints a Markdown table and writes
// bench/results/metrics-cost.json. Goal: under 3% on each figure. Knobs: BENCH_ROUNDS (2:
// off,on then on,off), BENCH_SCALE (0.2 here: 20,000 claims on 1,000 nodes, 10 instances),
// passed on to the benchmarks; BENCH_SERVICES (scheduler,container-runtime) to run fewer.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../../../..');
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 2));
const SCALE = process.env.BENCH_SCALE ?? '0.2';
const SERVICES = (process.env.BENCH_SERVICES ?? 'scheduler,container-runtime').split(',') as Array<Figure['service']>;

/** A figure of a benchmark's results file, and whether more is better. */
interface Figure {
  service: 'scheduler' | 'container-runtime';
  key: string;
  higherIsBetter: boolean;
}

const FIGURES: Figure[] = [
  { service: 'scheduler', key: 'placements_per_s', higherIsBetter: true },
  { service: 'scheduler', key: 'cycle_p99_ms', higherIsBetter: false },
  { service: 'scheduler', key: 'scheduler_cpu_ms_per_placement', higherIsBetter: false },
  { service: 'container-runtime', key: 'create_running_p50_ms', higherIsBetter: false },
  { service: 'container-runtime', key: 'ratio_p50', higherIsBetter: false },
];

function runBenchmark(service: Figure['service'], metrics: 'on' | 'off'): Record<string, number> {
  process.stderr.write(`metrics-cost: ${service} with metrics ${metrics}\n`);
  const result = spawnSync('npm', ['run', '--silent', 'bench', '-w', `services/${service}`], {
    cwd: ROOT,
    env: { ...process.env, BENCH_METRICS: metrics, BENCH_SCALE: SCALE },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (result.status !== 0) throw new Error(`the ${service} benchmark (metrics ${metrics}) exited with ${result.status}`);
  return JSON.parse(readFileSync(join(ROOT, 'bench/results', `${service}.json`), 'utf8')) as Record<string, number>;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

function main(): void {
  const runs: Record<string, Record<'on' | 'off', Array<Record<string, number>>>> = {
    scheduler: { on: [], off: [] },
    'container-runtime': { on: [], off: [] },
  };
  for (let round = 0; round < ROUNDS; round++) {
    // Taking turns, and the other way round every other round, so neither always runs first.
    const order: Array<'on' | 'off'> = round % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
    for (const service of SERVICES) {
      for (const metrics of order) runs[service]![metrics].push(runBenchmark(service, metrics));
    }
  }
  const figures: Record<string, unknown> = { rounds: ROUNDS, scale: Number(SCALE) };
  const lines = ['| benchmark | figure | metrics off | metrics on | cost |', '|---|---|---|---|---|'];
  for (const f of FIGURES.filter((figure) => SERVICES.includes(figure.service))) {
    const off = median(runs[f.service]!.off.map((r) => r[f.key]!));
    const on = median(runs[f.service]!.on.map((r) => r[f.key]!));
    // Cost: how much worse the figure is with metrics on (negative: better, i.e. noise).
    const cost = f.higherIsBetter ? (off - on) / off : (on - off) / off;
    figures[`${f.service}_${f.key}_off`] = off;
    figures[`${f.service}_${f.key}_on`] = on;
    figures[`${f.service}_${f.key}_cost_pct`] = Number((cost * 100).toFixed(2));
    lines.push(`| ${f.service} | ${f.key} | ${off.toFixed(2)} | ${on.toFixed(2)} | ${(cost * 100).toFixed(1)}% |`);
  }
  figures.machine = { nproc: cpus().length, memory_bytes: totalmem() };
  figures.at = new Date().toISOString();
  process.stdout.write(
    `\nMetrics on vs off (medians of ${ROUNDS} runs each, BENCH_SCALE=${SCALE}; goal: cost under 3%)\n\n${lines.join('\n')}\n`,
  );
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/metrics-cost.json'), `${JSON.stringify(figures, null, 2)}\n`);
}

main();
