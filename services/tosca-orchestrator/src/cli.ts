// Offline command line: validate and translate TOSCA templates without the mesh.
//   node dist/src/cli.js validate FILE [--inputs FILE] [--mirror DIR] [--json] [--quiet]
//   node dist/src/cli.js translate --to hot|radl|k8s FILE [--inputs FILE] [--mirror DIR]
// Diagnostics go to stderr as file:line:col: severity: message; exit 1 when invalid, 2 on misuse.
import { readFileSync } from 'node:fs';
import { dirname, basename, relative } from 'node:path';
import { parse } from 'yaml';
import { ImportFiles } from './adapters/import-files';
import { formatDiagnostic, type Diagnostic } from './domain/diagnostics';
import { isDict } from './domain/registry';
import { targets, translate, type Target } from './domain/translate';
import { processTemplate } from './domain/validate';

const usage = `usage:
  tosca validate FILE [--inputs FILE] [--mirror DIR] [--json] [--quiet]
  tosca translate --to hot|radl|k8s FILE [--inputs FILE] [--mirror DIR]
FILE is a YAML service template or a CSAR archive (.csar/.zip).
URL imports resolve from --mirror or LAPIS_TOSCA_IMPORT_MIRROR (<dir>/<host>/<path>), never the network.`;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env): CliResult {
  const out: string[] = [];
  const err: string[] = [];
  const fail = (message: string): CliResult => ({ code: 2, stdout: '', stderr: `${message}\n${usage}\n` });
  const [command, ...rest] = argv;
  if (command !== 'validate' && command !== 'translate') return fail(command ? `unknown command "${command}"` : 'no command');
  const options: Record<string, string | boolean> = {};
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (arg === '--json' || arg === '--quiet') options[arg.slice(2)] = true;
    else if (arg.startsWith('--')) {
      const [key, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
      const value = inline ?? rest[++i];
      if (value === undefined) return fail(`--${key} needs a value`);
      options[key] = value;
    } else positional.push(arg);
  }
  if (positional.length !== 1) return fail('give exactly one template FILE');
  const file = positional[0]!;
  let inputs: Record<string, unknown> | undefined;
  if (typeof options.inputs === 'string') {
    try {
      const parsed: unknown = parse(readFileSync(options.inputs, 'utf8'));
      if (parsed !== null && !isDict(parsed)) return fail(`inputs file ${options.inputs} must be a YAML map`);
      inputs = (parsed as Record<string, unknown> | null) ?? {};
    } catch (error) {
      return fail(`cannot read inputs file ${options.inputs}: ${(error as Error).message}`);
    }
  }
  let target: Target | undefined;
  if (command === 'translate') {
    if (typeof options.to !== 'string' || !targets.includes(options.to as Target)) return fail('translate needs --to hot, radl or k8s');
    target = options.to as Target;
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    return fail(`cannot read ${file}: ${(error as Error).message}`);
  }
  const isCsar = /\.(csar|zip)$/i.test(file) || (bytes[0] === 0x50 && bytes[1] === 0x4b);
  const shown = relative(process.cwd(), file) || basename(file);
  const result = processTemplate({
    ...(isCsar ? { csar: new Uint8Array(bytes) } : { text: bytes.toString('utf8') }),
    fileName: isCsar ? basename(file) : shown,
    // The loader names relative imports by joining them to the file's name as shown (relative to
    // the working directory), so they are read from there, not from the template's directory.
    imports: new ImportFiles({
      baseDir: isCsar ? dirname(file) : process.cwd(),
      mirror: typeof options.mirror === 'string' ? options.mirror : env.LAPIS_TOSCA_IMPORT_MIRROR || undefined,
    }),
    inputs,
  });
  const shownDiagnostics = result.diagnostics.filter((d: Diagnostic) => d.severity === 'error' || !options.quiet);
  if (options.json && command === 'validate') {
    out.push(
      JSON.stringify({ valid: result.valid, diagnostics: result.diagnostics, deploymentOrder: result.topology?.order ?? [] }, null, 2),
    );
  } else {
    for (const d of shownDiagnostics) err.push(formatDiagnostic(d));
  }
  if (!result.valid) {
    if (!options.json) err.push(`${shown}: invalid (${result.diagnostics.filter((d) => d.severity === 'error').length} errors)`);
    return { code: 1, stdout: out.join('\n') + (out.length ? '\n' : ''), stderr: err.join('\n') + (err.length ? '\n' : '') };
  }
  if (command === 'validate' && !options.json)
    out.push(`${shown}: valid; deployment order: ${result.topology?.order.join(', ') || '(no nodes)'}`);
  if (target) out.push(translate(result.topology!, target).trimEnd());
  return { code: 0, stdout: out.join('\n') + (out.length ? '\n' : ''), stderr: err.join('\n') + (err.length ? '\n' : '') };
}

if (require.main === module) {
  const result = runCli(process.argv.slice(2));
  process.stdout.write(result.stdout);
  process.stderr.write(result.stderr);
  process.exitCode = result.code;
}
