// Parse+validate benchmark: generated templates of 100, 1,000 and 10,000 node templates (times
// BENCH_SCALE), Lapis in-process against OpenStack tosca-parser (installed from PyPI into the
// benchmark's own virtual environment) on the same files: time ratio and verdict agreement. Then
// the INDIGO-style templates of the conformance folder, importing INDIGO's types file (through
// Lapis' import mirror; tosca-parser reads the same file from its path).
// Markdown tables to stdout; figures to bench/results/tosca-orchestrator.json. Asserts nothing.
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { ImportFiles } from '../src/adapters/import-files';
import { yamlThreadIfUseful } from '../src/adapters/yaml-thread';
import { processTemplate } from '../src/domain/validate';
import { conformanceDir, indigoMirror, indigoTypesFile } from '../test/helpers';

const scale = Number(process.env.BENCH_SCALE ?? '1');
const sizes = [100, 1000, 10000].map((n) => Math.max(3, Math.round((n * scale) / 3) * 3));
// tosca-parser is slow on big templates: compare it up to this many node templates.
const peerMax = Number(process.env.BENCH_PEER_MAX_NODES ?? String(Math.max(1000, 1000 * scale)));
// Lapis' figure in a round: the median of this many warm runs (15 rather than 5, so one run that
// a GC slows does not move it).
const repeats = Number(process.env.BENCH_REPEATS ?? '15');
// Rounds: Lapis' warm runs, then one tosca-parser parse, again and again. On a shared 2-core
// machine a neighbour's burst lasts seconds; alternating puts both sides under the same ones, and
// each figure (and the speedup) is the median over the rounds.
const rounds = Number(process.env.BENCH_ROUNDS ?? '7');
// The orchestrator is a long-running service: measure it warm, after the JIT has compiled the
// hot paths (up to BENCH_WARMUP runs or 2 s); its first, cold run is shown too.
const warmups = Number(process.env.BENCH_WARMUP ?? '20');
const resultsDir = resolve(__dirname, '..', '..', '..', '..', 'bench', 'results');

type Variant = 'valid' | 'unknown_property' | 'bad_constraint' | 'bad_scalar' | 'unknown_target' | 'unknown_type';
const variants: Variant[] = ['valid', 'unknown_property', 'bad_constraint', 'bad_scalar', 'unknown_target', 'unknown_type'];

/** n node templates: groups of server (Compute) + volume (BlockStorage) + app (SoftwareComponent). */
export function generate(n: number, variant: Variant): string {
  const groups = Math.max(1, Math.floor(n / 3));
  const broken = Math.floor(groups / 2);
  const lines = [
    'tosca_definitions_version: tosca_simple_yaml_1_0',
    'description: generated benchmark template',
    'topology_template:',
    '  inputs:',
    '    cpus: { type: integer, default: 2 }',
    '  node_templates:',
  ];
  for (let i = 0; i < groups; i++) {
    const bad = i === broken;
    lines.push(
      `    server_${i}:`,
      `      type: ${bad && variant === 'unknown_type' ? 'tosca.nodes.Komputer' : 'tosca.nodes.Compute'}`,
      '      capabilities:',
      '        host:',
      `          properties: { num_cpus: ${bad && variant === 'bad_constraint' ? 0 : '{ get_input: cpus }'}, mem_size: ${bad && variant === 'bad_scalar' ? 'lots' : '2 GB'}, disk_size: 10 GB }`,
      '        os:',
      '          properties: { type: linux, distribution: ubuntu, version: "22.04" }',
      '      requirements:',
      `        - local_storage: { node: volume_${i}, relationship: { type: tosca.relationships.AttachesTo, properties: { location: /data } } }`,
      `    volume_${i}:`,
      '      type: tosca.nodes.BlockStorage',
      '      properties: { size: 10 GB }',
      `    app_${i}:`,
      '      type: tosca.nodes.SoftwareComponent',
      `      properties: { component_version: "1.0.${i}"${bad && variant === 'unknown_property' ? ', colour: red' : ''} }`,
      '      requirements:',
      `        - host: ${bad && variant === 'unknown_target' ? 'nowhere' : `server_${i}`}`,
      ...(i % 10 !== 0 ? [`        - dependency: app_${i - 1}`] : []),
    );
  }
  return `${lines.join('\n')}\n`;
}

function peerPython(): string | undefined {
  const venv = process.env.BENCH_TOSCA_PARSER_VENV ?? join(tmpdir(), 'lapis-bench-tosca-parser-venv');
  const python = join(venv, 'bin', 'python');
  try {
    if (!existsSync(python)) execFileSync('python3', ['-m', 'venv', venv], { stdio: 'ignore' });
    execFileSync(join(venv, 'bin', 'pip'), ['install', '-q', 'tosca-parser'], { stdio: 'ignore', timeout: 600_000 });
    return python;
  } catch (error) {
    process.stderr.write(`tosca-parser could not be installed (${(error as Error).message}); peer columns left empty\n`);
    return undefined;
  }
}

interface PeerResult {
  valid: boolean;
  seconds: number;
  error?: string;
  crashed: boolean;
}

/** tosca-parser in one Python process for the whole run (bench/peer.py): a path in, a verdict out. */
class Peer {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;

  constructor(python: string) {
    this.child = spawn(python, [join(__dirname, '..', '..', 'bench', 'peer.py')], { stdio: 'pipe' });
    this.child.stderr.pipe(process.stderr);
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  async parse(file: string): Promise<PeerResult> {
    this.child.stdin.write(`${file}\n`);
    const line = await this.lines.next();
    if (line.done) throw new Error(`tosca-parser stopped (exit ${String(this.child.exitCode)})`);
    return JSON.parse(line.value) as PeerResult;
  }

  close(): void {
    this.child.stdin.end();
  }
}

// As the service reads templates: big ones with its helper thread (where there is a second
// core). Each round also measures one thread alone, so both figures stand side by side.
const parallel = yamlThreadIfUseful();

function lapisOnce(text: string, file: string, threads: 'service' | 'one' = 'service'): { valid: boolean; ms: number; errors: string[] } {
  const started = process.hrtime.bigint();
  const result = processTemplate({ text, fileName: file, parallel: threads === 'service' ? parallel : undefined });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  return { valid: result.valid, ms, errors: result.diagnostics.filter((d) => d.severity === 'error').map((d) => d.code) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// Any version of INDIGO's types file: tosca-parser reads the local copy instead.
const indigoTypesUrls = /https:\/\/raw\.githubusercontent\.com\/indigo-dc\/tosca-types\/[^/\s]+\/custom_types\.yaml/g;

/**
 * The INDIGO-style conformance templates, as a user sends them: Lapis reads INDIGO's types from
 * its import mirror (the tests' mirror: the master file, so indigo-types-builtin, which names
 * another version, gets Lapis' built-in INDIGO types as it does in the tests), tosca-parser from
 * the file's path (it would fetch the URL). Same rounds as above. Their verdicts are shown, not
 * counted in the agreement on generated templates.
 */
async function indigoTemplates(
  dir: string,
  peer: Peer | undefined,
): Promise<{ rows: string[]; figures: Record<string, number> } | undefined> {
  if (!existsSync(indigoTypesFile)) {
    process.stderr.write(`INDIGO's types file is not at ${indigoTypesFile} (set LAPIS_INDIGO_TYPES_FILE): INDIGO templates left out\n`);
    return undefined;
  }
  const imports = new ImportFiles({ mirror: indigoMirror() });
  const cases = readdirSync(conformanceDir)
    .filter((c) => c.startsWith('indigo-'))
    .sort()
    .map((name) => {
      const text = readFileSync(join(conformanceDir, name, 'template.yaml'), 'utf8');
      const peerFile = join(dir, `${name}.yaml`);
      writeFileSync(peerFile, text.replace(indigoTypesUrls, indigoTypesFile));
      return { name, text, peerFile };
    });
  const lapisOnceWithImports = (text: string) => {
    const started = process.hrtime.bigint();
    const result = processTemplate({ text, fileName: 'template.yaml', imports });
    return { valid: result.valid, ms: Number(process.hrtime.bigint() - started) / 1e6 };
  };
  const rows: string[] = [];
  const lapisAll: number[] = [];
  const peerAll: number[] = [];
  for (const c of cases) {
    const cold = lapisOnceWithImports(c.text);
    const verdict = peer ? await peer.parse(c.peerFile) : undefined;
    for (let i = 0; i < warmups; i++) lapisOnceWithImports(c.text);
    const lapisRounds: number[] = [];
    const peerRounds: number[] = [];
    for (let r = 0; r < rounds; r++) {
      lapisRounds.push(median(Array.from({ length: repeats }, () => lapisOnceWithImports(c.text).ms)));
      if (peer) peerRounds.push((await peer.parse(c.peerFile)).seconds * 1000);
    }
    const lapisMs = median(lapisRounds);
    const peerMs = peer ? median(peerRounds) : undefined;
    lapisAll.push(lapisMs);
    if (peerMs !== undefined) peerAll.push(peerMs);
    const peerVerdict = !verdict ? '-' : verdict.valid ? 'valid' : `invalid: ${verdict.error ?? ''}`;
    rows.push(
      `| ${c.name} | ${lapisMs.toFixed(2)} | ${cold.ms.toFixed(1)} | ${peerMs !== undefined ? peerMs.toFixed(0) : 'not run'} | ${peerMs !== undefined ? `${(peerMs / lapisMs).toFixed(0)}x` : '-'} | ${cold.valid ? 'valid' : 'invalid'} | ${peerVerdict} |`,
    );
  }
  const figures: Record<string, number> = { indigo_ms: median(lapisAll) };
  if (peerAll.length) {
    figures.indigo_tosca_parser_ms = median(peerAll);
    figures.indigo_speedup_vs_tosca_parser = median(peerAll) / median(lapisAll);
  }
  return { rows, figures };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lapis-tosca-bench-'));
  const python = peerPython();
  const peer = python ? new Peer(python) : undefined;
  try {
    // Warm up the built-in types and the JIT.
    lapisOnce(generate(30, 'valid'), 'warmup.yaml');
    const rows: string[] = [];
    const figures: Record<string, number> = {};
    let agree = 0;
    let compared = 0;
    let peerCrashes = 0;
    const disagreements: string[] = [];
    for (const n of sizes) {
      const files = variants.map((v) => {
        const file = join(dir, `n${n}_${v}.yaml`);
        writeFileSync(file, generate(n, v));
        return { v, file, text: readFileSync(file, 'utf8') };
      });
      const valid = files[0]!;
      const withPeer = peer && n <= peerMax ? peer : undefined;
      // Verdicts: every variant once on each side (the valid one's runs are the first, cold ones).
      const coldMs = lapisOnce(valid.text, valid.file).ms;
      const lapis = files.map(({ v, file, text }) => ({ v, file, ...lapisOnce(text, file) }));
      const peerVerdicts = new Map<string, PeerResult>();
      if (withPeer) for (const { file } of files) peerVerdicts.set(file, await withPeer.parse(file));
      // Warm-up, then the rounds.
      const until = Date.now() + 2000;
      for (let i = 0; i < warmups && Date.now() < until; i++) {
        lapisOnce(valid.text, valid.file);
        lapisOnce(valid.text, valid.file, 'one');
      }
      const lapisRounds: number[] = [];
      const oneThreadRounds: number[] = [];
      const peerRounds: number[] = [];
      const ratios: number[] = [];
      const oneThreadRatios: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const ms = median(Array.from({ length: repeats }, () => lapisOnce(valid.text, valid.file).ms));
        const oneMs = median(Array.from({ length: repeats }, () => lapisOnce(valid.text, valid.file, 'one').ms));
        lapisRounds.push(ms);
        oneThreadRounds.push(oneMs);
        if (!withPeer) continue;
        const peerMs = (await withPeer.parse(valid.file)).seconds * 1000;
        peerRounds.push(peerMs);
        ratios.push(peerMs / ms);
        oneThreadRatios.push(peerMs / oneMs);
      }
      const lapisMs = median(lapisRounds);
      const oneThreadMs = median(oneThreadRounds);
      const peerMs = withPeer ? median(peerRounds) : undefined;
      const peerFirstMs = withPeer ? peerVerdicts.get(valid.file)!.seconds * 1000 : undefined;
      const ratio = withPeer ? median(ratios) : undefined;
      const oneThreadRatio = withPeer ? median(oneThreadRatios) : undefined;
      let sizeAgree = 0;
      let sizeCompared = 0;
      for (const l of lapis) {
        const p = peerVerdicts.get(l.file);
        if (!p) continue;
        if (p.crashed) {
          peerCrashes++;
          continue;
        }
        sizeCompared++;
        const expected = l.v === 'valid';
        if (p.valid === l.valid && l.valid === expected) sizeAgree++;
        else
          disagreements.push(
            `${n}/${l.v}: lapis ${l.valid ? 'valid' : `invalid (${l.errors.join(',')})`}, tosca-parser ${p.valid ? 'valid' : `invalid (${p.error})`}`,
          );
      }
      agree += sizeAgree;
      compared += sizeCompared;
      const range = ratios.length ? `${Math.min(...ratios).toFixed(0)}-${Math.max(...ratios).toFixed(0)}x` : '-';
      const times = (x: number | undefined) => (x !== undefined ? `${x.toFixed(0)}x` : '-');
      rows.push(
        `| ${n.toLocaleString('en')} | ${lapisMs.toFixed(1)} | ${oneThreadMs.toFixed(1)} | ${coldMs.toFixed(1)} | ${((lapisMs * 1000) / n).toFixed(1)} | ${peerMs !== undefined ? peerMs.toFixed(0) : 'not run'} | ${peerFirstMs !== undefined ? peerFirstMs.toFixed(0) : '-'} | ${times(ratio)} | ${range} | ${times(oneThreadRatio)} | ${withPeer ? `${sizeAgree}/${sizeCompared}` : '-'} | ${lapis.filter((l) => l.v !== 'valid' && !l.valid).length}/${variants.length - 1} |`,
      );
      figures[`lapis_ms_${n}`] = lapisMs;
      figures[`lapis_one_thread_ms_${n}`] = oneThreadMs;
      figures[`lapis_first_run_ms_${n}`] = coldMs;
      if (peerMs !== undefined && peerFirstMs !== undefined) {
        figures[`tosca_parser_ms_${n}`] = peerMs;
        figures[`tosca_parser_first_run_ms_${n}`] = peerFirstMs;
      }
      if (ratio !== undefined && n === sizes[1]) {
        figures.speedup_vs_tosca_parser = ratio;
        figures.speedup_one_thread = oneThreadRatio!;
        figures.speedup_min = Math.min(...ratios);
        figures.speedup_max = Math.max(...ratios);
        figures.speedup_first_run = peerFirstMs! / coldMs;
      }
      if (n === sizes[1]) figures.ms_per_1000_nodes = (lapisMs * 1000) / n;
    }
    figures.templates = sizes.length * variants.length;
    if (compared) figures.verdict_agreement = agree / compared;
    process.stdout.write(
      `\n### tosca-orchestrator: parse + validate (BENCH_SCALE=${scale}, node ${process.execArgv.join(' ') || '(no flags)'}; helper thread: ${parallel ? `yes, for templates of ${parallel.minLength / 1024} KiB or more` : 'no (one core)'}; ${rounds} rounds, each Lapis' median of ${repeats} warm runs (as the service, then one thread alone) then one tosca-parser parse; figures and speedups: medians over the rounds)\n\n`,
    );
    process.stdout.write(
      '| node templates | Lapis ms (warm) | Lapis ms, one thread | Lapis ms (first run) | Lapis µs/node | tosca-parser ms | tosca-parser ms (first run) | speedup | speedup, slowest-fastest round | speedup, one thread | verdicts agree (6 templates) | Lapis rejects broken variants |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n',
    );
    process.stdout.write(`${rows.join('\n')}\n\n`);
    process.stdout.write(
      `verdict agreement: ${compared ? `${agree}/${compared}` : 'n/a'}${peerCrashes ? ` (tosca-parser crashed on ${peerCrashes}, not counted)` : ''}\n`,
    );
    for (const d of disagreements) process.stdout.write(`  disagreement: ${d}\n`);
    const indigo = await indigoTemplates(dir, peer);
    if (indigo) {
      Object.assign(figures, indigo.figures);
      process.stdout.write(
        `\n### INDIGO-style templates (test/conformance/indigo-*), importing INDIGO's types file (Lapis: through its import mirror, warm; ${rounds} rounds of ${repeats} runs, medians)\n\n`,
      );
      process.stdout.write(
        '| template | Lapis ms (warm) | Lapis ms (first run) | tosca-parser ms | speedup | Lapis | tosca-parser |\n|---|---:|---:|---:|---:|---|---|\n',
      );
      process.stdout.write(`${indigo.rows.join('\n')}\n`);
    }
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(
      join(resultsDir, 'tosca-orchestrator.json'),
      `${JSON.stringify({ ...figures, machine: { nproc: cpus().length, memory_bytes: totalmem() }, at: new Date().toISOString() }, null, 2)}\n`,
    );
  } finally {
    peer?.close();
    parallel?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  });
}
