// Offline command line: validate and translate TOSCA templates without the mesh.
//   node dist/src/cli.js validate FILE... [--inputs FILE] [--input NAME=VALUE]... [--mirror DIR] [--json] [--quiet]
//   node dist/src/cli.js translate --to hot|radl|k8s FILE [--inputs FILE] [--input NAME=VALUE]... [--mirror DIR]
// Diagnostics go to stderr as file:line:col: severity: message; exit 1 when any file is invalid,
// 2 on misuse. Start-up is most of a validation's time, so this file loads only what
// validation needs: no gRPC, NATS or telemetry, and translation and YAML writing on demand.
import { readFileSync } from 'node:fs';
import { basename, dirname, relative } from 'node:path';
import { ImportFiles } from './adapters/import-files';
import { Diagnostics, formatDiagnostic, type Diagnostic } from './domain/diagnostics';
import { isDict } from './domain/registry';
import type { Target } from './domain/translate';
import { processTemplate } from './domain/validate';
import { loadYaml } from './domain/yaml';

const usage = `usage:
  tosca validate FILE... [--inputs FILE] [--input NAME=VALUE]... [--mirror DIR] [--json] [--quiet]
  tosca translate --to hot|radl|k8s FILE [--inputs FILE] [--input NAME=VALUE]... [--mirror DIR]
FILE is a YAML service template or a CSAR archive (.csar/.zip); validate takes several, one verdict each.
--input values are text, converted to each input's declared type.
URL imports resolve from --mirror or LAPIS_TOSCA_IMPORT_MIRROR (<dir>/<host>/<path>), never the network.`;

const targetNames: readonly Target[] = ['hot', 'radl', 'k8s'];

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

interface Options {
  command: 'validate' | 'translate';
  files: string[];
  inputsFile?: string;
  textInputs: Record<string, string>;
  mirror?: string;
  to?: Target;
  json: boolean;
  quiet: boolean;
}

/** The arguments, or what is wrong with them. */
function parseArgs(argv: string[]): Options | string {
  const [command, ...rest] = argv;
  if (command !== 'validate' && command !== 'translate') return command ? `unknown command "${command}"` : 'no command';
  const options: Options = { command, files: [], textInputs: {}, json: false, quiet: false };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (arg === '--json' || arg === '--quiet') options[arg === '--json' ? 'json' : 'quiet'] = true;
    else if (arg.startsWith('--')) {
      const [key, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
      const value = inline ?? rest[++i];
      if (value === undefined) return `--${key} needs a value`;
      if (key === 'inputs') options.inputsFile = value;
      else if (key === 'mirror') options.mirror = value;
      else if (key === 'to') {
        if (!targetNames.includes(value as Target)) return 'translate needs --to hot, radl or k8s';
        options.to = value as Target;
      } else if (key === 'input') {
        const eq = value.indexOf('=');
        if (eq <= 0) return `--input takes NAME=VALUE (got "${value}")`;
        options.textInputs[value.slice(0, eq)] = value.slice(eq + 1);
      } else return `unknown option --${key}`;
    } else options.files.push(arg);
  }
  if (options.files.length === 0) return 'give a template FILE';
  if (command === 'translate') {
    if (!options.to) return 'translate needs --to hot, radl or k8s';
    if (options.files.length !== 1) return 'translate takes exactly one template FILE';
  }
  return options;
}

/** An inputs file: a YAML map (read the way templates are read). */
function readInputs(file: string): Record<string, unknown> | string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    return `cannot read inputs file ${file}: ${(error as Error).message}`;
  }
  const diags = new Diagnostics();
  const loaded = loadYaml(text, file, diags, false);
  if (!loaded.ok) return `cannot read inputs file ${file}: ${diags.sorted().map(formatDiagnostic).join('; ')}`;
  if (loaded.value !== null && !isDict(loaded.value))
    return `${file}:1:1: error: an inputs file must be a YAML map of input names to values`;
  return (loaded.value as Record<string, unknown> | null) ?? {};
}

export function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env): CliResult {
  const fail = (message: string): CliResult => ({ code: 2, stdout: '', stderr: `${message}\n${usage}\n` });
  const options = parseArgs(argv);
  if (typeof options === 'string') return fail(options);
  let inputs: Record<string, unknown> | undefined;
  if (options.inputsFile !== undefined) {
    const read = readInputs(options.inputsFile);
    if (typeof read === 'string') return fail(read);
    inputs = read;
  }
  const textInputs = Object.keys(options.textInputs).length ? options.textInputs : undefined;
  const mirror = options.mirror ?? (env.LAPIS_TOSCA_IMPORT_MIRROR || undefined);
  const out: string[] = [];
  const err: string[] = [];
  const verdicts: unknown[] = [];
  let code = 0;
  for (const file of options.files) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (error) {
      err.push(`${file}: cannot read: ${(error as Error).message}`);
      verdicts.push({ file, valid: false, diagnostics: [], deploymentOrder: [], error: (error as Error).message });
      code = 1;
      continue;
    }
    const isCsar = /\.(csar|zip)$/i.test(file) || (bytes[0] === 0x50 && bytes[1] === 0x4b);
    const shown = relative(process.cwd(), file) || basename(file);
    const result = processTemplate({
      ...(isCsar ? { csar: new Uint8Array(bytes) } : { text: bytes.toString('utf8') }),
      fileName: isCsar ? basename(file) : shown,
      // The loader names relative imports by joining them to the file's name as shown (relative
      // to the working directory), so they are read from there, not from the template's directory.
      imports: new ImportFiles({ baseDir: isCsar ? dirname(file) : process.cwd(), mirror }),
      inputs,
      textInputs,
    });
    const errors = result.diagnostics.filter((d) => d.severity === 'error').length;
    if (options.json && options.command === 'validate') {
      verdicts.push({ file: shown, valid: result.valid, diagnostics: result.diagnostics, deploymentOrder: result.topology?.order ?? [] });
    } else {
      for (const d of result.diagnostics) if (d.severity === 'error' || !options.quiet) err.push(formatDiagnostic(d as Diagnostic));
    }
    if (!result.valid) {
      code = 1;
      if (!options.json) err.push(`${shown}: invalid (${errors} errors)`);
      continue;
    }
    if (options.command === 'validate' && !options.json)
      out.push(`${shown}: valid; deployment order: ${result.topology?.order.join(', ') || '(no nodes)'}`);
    if (options.to) {
      // Loaded only to translate: the YAML writer and the targets are no part of validation.
      const { translation } = require('./domain/translate') as typeof import('./domain/translate');
      const translated = translation(result.topology!, options.to);
      out.push(translated.output.trimEnd());
      // What it left out of the translation, per node.
      for (const w of translated.warnings) err.push(formatDiagnostic(w));
    }
  }
  // One file: its verdict, as before; several: a list, one verdict each.
  if (options.json && options.command === 'validate') out.push(JSON.stringify(verdicts.length === 1 ? verdicts[0] : verdicts, null, 2));
  return { code, stdout: out.join('\n') + (out.length ? '\n' : ''), stderr: err.join('\n') + (err.length ? '\n' : '') };
}

if (require.main === module) {
  const result = runCli(process.argv.slice(2));
  process.stdout.write(result.stdout);
  process.stderr.write(result.stderr);
  process.exitCode = result.code;
}
