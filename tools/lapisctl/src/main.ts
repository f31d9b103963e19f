#!/usr/bin/env node
// lapisctl: the Lapis command line over gRPC (see README.md).
// Exit codes: 0 success, 1 the server (or the work it did) failed, 2 usage errors.
import { link, parse, UsageError, path, type Command } from './cli';
import { toscaCommand } from './commands/tosca';
import { CallError, CommandError, Context, GLOBAL_OPTIONS } from './context';

const description =
  'lapisctl talks to the Lapis services over gRPC: deployments (tosca-orchestrator), instances and volumes (container-runtime), the queue, priorities, fair share and claims (scheduler), the image catalogue (image-sync), and validates or translates TOSCA templates offline.';

export function rootCommand(): Command {
  // The gRPC commands' modules load the generated clients (gRPC, protobuf): required here, when
  // the whole tree is wanted, not for the offline `lapisctl tosca`.
  const { deploymentCommand } = require('./commands/deployment') as typeof import('./commands/deployment');
  const { imageCommand } = require('./commands/image') as typeof import('./commands/image');
  const { instanceCommand } = require('./commands/instance') as typeof import('./commands/instance');
  const { partitionCommand } = require('./commands/partition') as typeof import('./commands/partition');
  const scheduler = require('./commands/scheduler') as typeof import('./commands/scheduler');
  const { volumeCommand } = require('./commands/volume') as typeof import('./commands/volume');
  return link({
    name: 'lapisctl',
    summary: 'the Lapis command line',
    description,
    subcommands: [
      deploymentCommand(),
      instanceCommand(),
      volumeCommand(),
      scheduler.queueCommand(),
      scheduler.priorityCommand(),
      scheduler.fairshareCommand(),
      scheduler.claimCommand(),
      partitionCommand(),
      imageCommand(),
      toscaCommand(),
    ],
    examples: [
      'export LAPIS_TOKEN=alice-token',
      'lapisctl claim submit --image lapis/busybox:1.36 --flavor m1.tiny --wait -- sleep 3600',
      'lapisctl queue',
      'lapisctl instance list -o json',
      'lapisctl deployment create web-app.yaml --inputs inputs.yaml --wait',
    ],
  });
}

/** The tree with the offline tosca commands alone (help and errors read the same for them). */
function offlineRoot(): Command {
  return link({ name: 'lapisctl', summary: 'the Lapis command line', description, subcommands: [toscaCommand()] });
}

/** Whether argv's command is `tosca` (the first word that is neither an option nor its value). */
function isOffline(argv: string[]): boolean {
  const takesValue = new Set(GLOBAL_OPTIONS.filter((o) => o.value).flatMap((o) => [`--${o.long}`, ...(o.short ? [`-${o.short}`] : [])]));
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === '--') return false;
    if (!word.startsWith('-')) return word === 'tosca';
    if (takesValue.has(word)) i++;
  }
  return false;
}

export async function main(argv: string[]): Promise<number> {
  const root = isOffline(argv) ? offlineRoot() : rootCommand();
  let ctx: Context | undefined;
  let command: Command | undefined;
  try {
    const result = parse(root, GLOBAL_OPTIONS, argv);
    if ('exitCode' in result) return result.exitCode;
    const { parsed } = result;
    command = parsed.command;
    ctx = new Context(parsed.options);
    return (await parsed.command.run!(parsed, ctx)) ?? 0;
  } catch (error) {
    if (error instanceof UsageError) {
      const hint = `run "${path(error.command ?? command ?? root)} --help" for usage`;
      process.stderr.write(`error: ${error.message}\n${hint}\n`);
      return 2;
    }
    if (error instanceof CallError) {
      process.stderr.write(`${error.describe()}\n`);
      return 1;
    }
    if (error instanceof CommandError) {
      process.stderr.write(`error: ${error.message}\n`);
      return 1;
    }
    // Anything else is a bug or the machine's trouble: still one line, no stack trace
    // unless LAPIS_DEBUG asks for it.
    process.stderr.write(`error: ${(error as Error)?.message ?? String(error)}\n`);
    if (process.env.LAPIS_DEBUG) process.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
    return 1;
  } finally {
    ctx?.close();
  }
}

if (require.main === module) {
  // EPIPE (output piped into head) ends quietly.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
  });
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
