// lapisctl's commands are declared as data (Command below); commander parses argv against
// them and writes the help and the usage errors.
import { Command as Program, CommanderError, Option } from 'commander';
import type { Context } from './context';

export class UsageError extends Error {
  override name = 'UsageError';
  constructor(
    message: string,
    readonly command?: Command,
  ) {
    super(message);
  }
}

export interface OptionDef {
  /** Long name without dashes, for example "inputs". */
  long: string;
  short?: string;
  /** Name of the value (FILE, ADDR); absent for a flag. */
  value?: string;
  description: string;
  /** Collects every occurrence into a list. */
  repeat?: boolean;
  /** Shown in the help. */
  defaultText?: string;
  /** Allowed values. */
  choices?: readonly string[];
}

export interface ArgDef {
  name: string;
  required?: boolean;
  variadic?: boolean;
}

export type OptionValues = Record<string, string | boolean | string[] | undefined>;

export interface Parsed {
  command: Command;
  args: string[];
  options: OptionValues;
  /** Words after `--`. */
  rest: string[];
}

export interface Command {
  name: string;
  aliases?: string[];
  summary: string;
  description?: string;
  args?: ArgDef[];
  options?: OptionDef[];
  /** Text after the arguments in the usage line, for example "[-- COMMAND...]". */
  usageTail?: string;
  examples?: string[];
  subcommands?: Command[];
  run?: (parsed: Parsed, ctx: Context) => Promise<number | void>;
  parent?: Command;
}

export function path(command: Command): string {
  const names: string[] = [];
  for (let c: Command | undefined = command; c; c = c.parent) names.unshift(c.name);
  return names.join(' ');
}

export function link(command: Command): Command {
  for (const sub of command.subcommands ?? []) {
    sub.parent = command;
    link(sub);
  }
  return command;
}

/** What to run, or the exit code when commander already answered (help, a usage error). */
export type ParseResult = { parsed: Parsed } | { exitCode: number };

function toOption(def: OptionDef, group?: string): Option {
  const flags = `${def.short ? `-${def.short}, ` : ''}--${def.long}${def.value ? ` <${def.value}>` : ''}`;
  const option = new Option(flags, def.description + (def.defaultText ? ` (default ${def.defaultText})` : ''));
  if (def.choices) option.choices(def.choices);
  if (def.repeat) option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
  if (group) option.helpGroup(group);
  return option;
}

function toProgram(def: Command, globals: OptionDef[], found: (parsed: Parsed) => void, rest: string[]): Program {
  const program = new Program(def.name).summary(def.summary).description(def.description ?? def.summary);
  program.aliases(def.aliases ?? []);
  program.exitOverride();
  program.showHelpAfterError(`run "${path(def)} --help" for usage`);
  program.addHelpOption(new Option('-h, --help', 'show this help').helpGroup('Global options:'));
  program.helpCommand(false);
  const own = (def.options ?? []).map((o) => [o, toOption(o)] as const);
  // Global options are taken on every command, before or after its own.
  const global = globals.map((o) => [o, toOption(o, 'Global options:')] as const);
  for (const [, option] of [...own, ...global]) program.addOption(option);
  if (def.examples?.length) program.addHelpText('after', `\nExamples:\n${def.examples.map((e) => `  ${e}`).join('\n')}`);
  for (const sub of def.subcommands ?? []) program.addCommand(toProgram(sub, globals, found, rest));
  if (!def.run) return program;
  for (const a of def.args ?? [])
    program.argument(a.required ? `<${a.name}${a.variadic ? '...' : ''}>` : `[${a.name}${a.variadic ? '...' : ''}]`);
  if (def.usageTail)
    program.argument('[COMMAND...]').usage(`[options]${(def.args ?? []).map((a) => ` ${a.name}`).join('')} ${def.usageTail}`);
  program.action(function (this: Program) {
    const values = this.optsWithGlobals();
    const options: OptionValues = {};
    for (const [o, option] of [...own, ...global]) options[o.long] = values[option.attributeName()] as OptionValues[string];
    // What follows `--` is the command's own words, apart from its arguments.
    const args = this.args.slice(0, this.args.length - rest.length);
    if (rest.length > 0 && !def.usageTail) throw new UsageError(`"${path(def)}" takes nothing after --`, def);
    found({ command: def, args, options, rest });
  });
  return program;
}

/** Parses argv (without node and the script) against the command tree. */
export function parse(root: Command, globals: OptionDef[], argv: string[]): ParseResult {
  const dashes = argv.indexOf('--');
  const rest = dashes < 0 ? [] : argv.slice(dashes + 1);
  let parsed: Parsed | undefined;
  const program = toProgram(root, globals, (p) => (parsed = p), rest);
  try {
    program.parse(argv, { from: 'user' });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    // Help asked for: 0; anything commander refused (or a group without its command): 2.
    return { exitCode: error.code === 'commander.helpDisplayed' ? 0 : 2 };
  }
  if (!parsed) return { exitCode: 2 };
  return { parsed };
}
