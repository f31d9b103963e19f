// lapisctl tosca: validate and translate templates offline, with the orchestrator's own parser
// (no mesh, no token). Problems are printed as file:line:col: severity: message.
import type { Command, OptionDef, OptionValues } from '../cli';
import { UsageError } from '../cli';
import type { Output } from '../context';
import { printData } from '../output';

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The orchestrator's offline command line, loaded only when a tosca command runs. */
function offline(argv: string[]): CliResult {
  let runCli: (argv: string[]) => CliResult;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    ({ runCli } = require('@lapis/tosca-orchestrator/dist/src/cli') as { runCli: (argv: string[]) => CliResult });
  } catch (error) {
    throw new Error(`the tosca-orchestrator's offline validator is not built (${(error as Error).message.split('\n')[0]})`);
  }
  return runCli(argv);
}

function run(argv: string[], output: Output = 'table'): number {
  const result = offline(argv);
  if (output === 'yaml' && /^[[{]/.test(result.stdout.trim())) printData('yaml', JSON.parse(result.stdout));
  else process.stdout.write(result.stdout);
  // Misuse is reported by lapisctl's own usage line; the validator's usage text is not ours.
  if (result.code === 2) throw new UsageError(result.stderr.split('\n')[0] ?? 'invalid arguments');
  process.stderr.write(result.stderr);
  return result.code;
}

export const inputOption: OptionDef = {
  long: 'input',
  value: 'NAME=VALUE',
  repeat: true,
  description: 'one input value as text, converted to its declared type (repeatable; over --inputs)',
};

/** --inputs FILE and each --input NAME=VALUE, as the offline command line takes them. */
function inputArgs(options: OptionValues): string[] {
  const argv: string[] = [];
  if (options.inputs) argv.push('--inputs', String(options.inputs));
  for (const pair of (options.input as string[] | undefined) ?? []) argv.push('--input', pair);
  return argv;
}

export function toscaCommand(): Command {
  return {
    name: 'tosca',
    summary: 'validate and translate TOSCA templates offline',
    description:
      'Offline TOSCA tools (no services, no token): the same parser and validator the tosca-orchestrator uses. URL imports resolve from --mirror or LAPIS_TOSCA_IMPORT_MIRROR, never the network.',
    subcommands: [
      {
        name: 'validate',
        summary: 'check templates (YAML or CSAR), one verdict each; problems as file:line:col: message',
        args: [{ name: 'FILE', required: true, variadic: true }],
        options: [
          { long: 'inputs', short: 'i', value: 'FILE', description: 'YAML map of input values' },
          inputOption,
          { long: 'mirror', value: 'DIR', description: 'directory holding URL imports as <dir>/<host>/<path>' },
          { long: 'quiet', short: 'q', description: 'errors only, no warnings' },
        ],
        examples: ['lapisctl tosca validate web-app.yaml --inputs inputs.yaml', 'lapisctl tosca validate --input cpus=2 templates/*.yaml'],
        run: async ({ args, options }, ctx) => {
          const argv = ['validate', ...args, ...inputArgs(options)];
          if (options.mirror) argv.push('--mirror', String(options.mirror));
          if (options.quiet) argv.push('--quiet');
          if (ctx.output !== 'table') argv.push('--json');
          return run(argv, ctx.output);
        },
      },
      {
        name: 'translate',
        summary: 'translate a template to Heat HOT, IM RADL or Kubernetes manifests',
        args: [{ name: 'FILE', required: true }],
        options: [
          { long: 'to', value: 'TARGET', description: 'what to translate to', choices: ['hot', 'radl', 'k8s'] },
          { long: 'inputs', short: 'i', value: 'FILE', description: 'YAML map of input values' },
          inputOption,
          { long: 'mirror', value: 'DIR', description: 'directory holding URL imports as <dir>/<host>/<path>' },
        ],
        examples: ['lapisctl tosca translate --to k8s web-app.yaml > manifests.yaml'],
        run: async ({ args, options }) => {
          if (typeof options.to !== 'string') throw new UsageError('--to is required (hot, radl or k8s)');
          const argv = ['translate', '--to', options.to, args[0]!, ...inputArgs(options)];
          if (options.mirror) argv.push('--mirror', String(options.mirror));
          return run(argv);
        },
      },
    ],
  };
}
