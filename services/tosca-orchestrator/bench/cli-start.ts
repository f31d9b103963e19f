// Benchmark (not a test): how long `lapisctl tosca validate` takes as a process, start-up above
// all, against bare Node (`node -e 0`) in the same run: the commands take turns, round after
// round, so the machine's load falls on each alike. Also the orchestrator's own offline command
// line, and ten templates in one call. Prints a Markdown table; merges its figures
// (cli_start_ratio and the milliseconds) into bench/results/tosca-orchestrator.json.
//   BENCH_CLI_RUNS (default 30): runs of each command.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { conformanceDir } from '../test/helpers';

const runs = Number(process.env.BENCH_CLI_RUNS ?? '30');
const repoRoot = resolve(__dirname, '..', '..', '..', '..');
const resultsFile = join(repoRoot, 'bench', 'results', 'tosca-orchestrator.json');
const lapisctl = join(repoRoot, 'tools', 'lapisctl', 'dist', 'src', 'main.js');
const offlineCli = resolve(__dirname, '..', 'src', 'cli.js');

const template = join(conformanceDir, 'dependency-order', 'template.yaml');
const tenTemplates = ['dependency-order', 'networks', 'functions', 'docker-app-volume', 'short-type-names']
  .flatMap((name) => [name, name])
  .map((name) => join(conformanceDir, name, 'template.yaml'));

interface Case {
  name: string;
  argv: string[];
  /** The exit code expected (a run that fails is not a measurement). */
  code: number;
}

const cases: Case[] = [
  { name: 'node -e 0 (bare Node)', argv: ['-e', '0'], code: 0 },
  { name: 'lapisctl tosca validate (1 template)', argv: [lapisctl, 'tosca', 'validate', template], code: 0 },
  { name: 'tosca-orchestrator cli.js validate (1 template)', argv: [offlineCli, 'validate', template], code: 0 },
  { name: 'lapisctl tosca validate (10 templates, one call)', argv: [lapisctl, 'tosca', 'validate', ...tenTemplates], code: 0 },
];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

function once(c: Case): number {
  const started = process.hrtime.bigint();
  const r = spawnSync(process.execPath, c.argv, { stdio: 'pipe', cwd: repoRoot });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== c.code) throw new Error(`${c.name} exited ${r.status}: ${r.stderr.toString().slice(0, 500)}`);
  return ms;
}

function main(): void {
  if (!existsSync(lapisctl)) throw new Error(`${lapisctl} is not built (make build)`);
  for (const c of cases) once(c); // the file cache warm for every command
  const times = cases.map(() => [] as number[]);
  for (let r = 0; r < runs; r++) for (const [i, c] of cases.entries()) times[i]!.push(once(c));
  const bare = median(times[0]!);
  const rows = cases.map((c, i) => {
    const m = median(times[i]!);
    return `| ${c.name} | ${m.toFixed(0)} | ${percentile(times[i]!, 0.9).toFixed(0)} | ${(m / bare).toFixed(2)} |`;
  });
  process.stdout.write(
    `\n### tosca validate start-up against bare Node (${runs} rounds, the commands taking turns; node ${process.version}, ${cpus().length} cores)\n\n` +
      `| command | median ms | p90 ms | / node -e 0 |\n|---|---:|---:|---:|\n${rows.join('\n')}\n`,
  );
  const figures = {
    node_bare_ms: bare,
    cli_start_ms: median(times[1]!),
    cli_start_ratio: median(times[1]!) / bare,
    offline_cli_start_ms: median(times[2]!),
    cli_ten_templates_ms: median(times[3]!),
  };
  // Merged into the service's figures (the parse benchmark writes the rest).
  let previous: Record<string, unknown> = {};
  try {
    previous = JSON.parse(readFileSync(resultsFile, 'utf8')) as Record<string, unknown>;
  } catch {
    // No earlier figures: these alone.
  }
  mkdirSync(join(repoRoot, 'bench', 'results'), { recursive: true });
  writeFileSync(
    resultsFile,
    `${JSON.stringify({ ...previous, ...figures, machine: { nproc: cpus().length, memory_bytes: totalmem() }, at: new Date().toISOString() }, null, 2)}\n`,
  );
}

if (require.main === module) {
  try {
    main();
  } catch (error) {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  }
}
