// Parse+validate benchmark: generated templates of 100, 1,000 and 10,000 node templates (times
// BENCH_SCALE), Lapis in-process against OpenStack tosca-parser (installed from PyPI into the
// benchmark's own virtual environment) on the same files: time ratio and verdict agreement.
// Markdown table to stdout; figures to bench/results/tosca-orchestrator.json. Asserts nothing.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { processTemplate } from '../src/domain/validate';

const scale = Number(process.env.BENCH_SCALE ?? '1');
const sizes = [100, 1000, 10000].map((n) => Math.max(3, Math.round((n * scale) / 3) * 3));
// tosca-parser is slow on big templates: compare it up to this many node templates.
const peerMax = Number(process.env.BENCH_PEER_MAX_NODES ?? String(Math.max(1000, 1000 * scale)));
// Warm figure: the median of this many runs after the warm-up (the same for every size; 15
// rather than 5 so one run that a neighbour's process or a GC slows does not move it).
const repeats = Number(process.env.BENCH_REPEATS ?? '15');
// The orchestrator is a long-running service: measure it warm, after the JIT has compiled the
// hot paths (up to BENCH_WARMUP runs or 2 s); its first, cold run is shown too.
const warmups = Number(process.env.BENCH_WARMUP ?? '20');
// tosca-parser parses each template this many times in its process; its figure is the median.
const peerRepeats = Number(process.env.BENCH_PEER_REPEATS ?? '3');
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

interface PeerResult { valid: boolean; seconds: number; first_seconds: number; error?: string }

function runPeer(python: string, files: string[]): Map<string, PeerResult> {
  const out = new Map<string, PeerResult>();
  const stdout = execFileSync(python, [join(__dirname, '..', '..', 'bench', 'peer.py'), ...files], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 3_600_000, env: { ...process.env, PEER_REPEATS: String(peerRepeats) } });
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as PeerResult & { file: string };
    out.set(r.file, r);
  }
  return out;
}

function lapisOnce(text: string, file: string): { valid: boolean; ms: number; errors: string[] } {
  const started = process.hrtime.bigint();
  const result = processTemplate({ text, fileName: file });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  return { valid: result.valid, ms, errors: result.diagnostics.filter((d) => d.severity === 'error').map((d) => d.code) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function main(): void {
  const dir = mkdtempSync(join(tmpdir(), 'lapis-tosca-bench-'));
  try {
    const python = peerPython();
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
      let coldMs = 0;
      const lapis = files.map(({ v, file, text }) => {
        if (v === 'valid') {
          coldMs = lapisOnce(text, file).ms;
          const until = Date.now() + 2000;
          for (let i = 1; i < warmups && Date.now() < until; i++) lapisOnce(text, file);
        }
        const runs = v === 'valid' ? Array.from({ length: repeats }, () => lapisOnce(text, file)) : [lapisOnce(text, file)];
        return { v, file, valid: runs[0]!.valid, ms: median(runs.map((r) => r.ms)), errors: runs[0]!.errors };
      });
      const peer = python && n <= peerMax ? runPeer(python, files.map((f) => f.file)) : undefined;
      const valid = lapis[0]!;
      const peerValid = peer?.get(valid.file);
      const ratio = peerValid ? (peerValid.seconds * 1000) / valid.ms : undefined;
      let sizeAgree = 0;
      let sizeCompared = 0;
      for (const l of lapis) {
        const p = peer?.get(l.file);
        if (!p) continue;
        if (p.error && /Traceback|AttributeError|TypeError|KeyError/.test(p.error)) {
          peerCrashes++;
          continue;
        }
        sizeCompared++;
        const expected = l.v === 'valid';
        if (p.valid === l.valid && l.valid === expected) sizeAgree++;
        else disagreements.push(`${n}/${l.v}: lapis ${l.valid ? 'valid' : `invalid (${l.errors.join(',')})`}, tosca-parser ${p.valid ? 'valid' : `invalid (${p.error})`}`);
      }
      agree += sizeAgree;
      compared += sizeCompared;
      rows.push(`| ${n.toLocaleString('en')} | ${valid.ms.toFixed(1)} | ${coldMs.toFixed(1)} | ${((valid.ms * 1000) / n).toFixed(1)} | ${peerValid ? (peerValid.seconds * 1000).toFixed(0) : 'not run'} | ${peerValid ? (peerValid.first_seconds * 1000).toFixed(0) : '-'} | ${ratio ? `${ratio.toFixed(0)}x` : '-'} | ${peer ? `${sizeAgree}/${sizeCompared}` : '-'} | ${lapis.filter((l) => l.v !== 'valid' && !l.valid).length}/${variants.length - 1} |`);
      figures[`lapis_ms_${n}`] = valid.ms;
      figures[`lapis_first_run_ms_${n}`] = coldMs;
      if (peerValid) {
        figures[`tosca_parser_ms_${n}`] = peerValid.seconds * 1000;
        figures[`tosca_parser_first_run_ms_${n}`] = peerValid.first_seconds * 1000;
      }
      if (ratio !== undefined && n === sizes[1]) figures.speedup_vs_tosca_parser = ratio;
      if (peerValid && n === sizes[1]) figures.speedup_first_run = (peerValid.first_seconds * 1000) / coldMs;
      if (n === sizes[1]) figures.ms_per_1000_nodes = (valid.ms * 1000) / n;
    }
    figures.templates = sizes.length * variants.length;
    if (compared) figures.verdict_agreement = agree / compared;
    process.stdout.write(`\n### tosca-orchestrator: parse + validate (BENCH_SCALE=${scale}, node ${process.execArgv.join(' ') || '(no flags)'}, warm = median of ${repeats} after up to ${warmups} warm-up runs or 2 s; tosca-parser: median of ${peerRepeats} in one process)\n\n`);
    process.stdout.write('| node templates | Lapis ms (warm, median) | Lapis ms (first run) | Lapis µs/node | tosca-parser ms (median) | tosca-parser ms (first run) | speedup (warm) | verdicts agree (6 templates) | Lapis rejects broken variants |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n');
    process.stdout.write(`${rows.join('\n')}\n\n`);
    process.stdout.write(`verdict agreement: ${compared ? `${agree}/${compared}` : 'n/a'}${peerCrashes ? ` (tosca-parser crashed on ${peerCrashes}, not counted)` : ''}\n`);
    for (const d of disagreements) process.stdout.write(`  disagreement: ${d}\n`);
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(join(resultsDir, 'tosca-orchestrator.json'), `${JSON.stringify({ ...figures, machine: { nproc: cpus().length, memory_bytes: totalmem() }, at: new Date().toISOString() }, null, 2)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) main();
