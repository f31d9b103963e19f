// A small command framework: nested commands, options anywhere after the command they belong
// to (global options anywhere), `--help` on every command, usage errors with exit code 2.
// (commander is not installed in this checkout; this covers what lapisctl needs.)
import type { Context } from './context';

export class UsageError extends Error {
  override name = 'UsageError';
  constructor(message: string, readonly command?: Command) {
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

export interface ParseResult {
  parsed?: Parsed;
  help?: Command;
}

/** Parses argv (without node and the script) against the command tree. */
export function parse(root: Command, globals: OptionDef[], argv: string[]): ParseResult {
  let command = root;
  const args: string[] = [];
  const rest: string[] = [];
  const options: OptionValues = {};
  let help = false;
  const find = (name: string, short: boolean): OptionDef | undefined => {
    const pool = [...globals, ...(command.options ?? [])];
    return pool.find((o) => (short ? o.short === name : o.long === name));
  };
  const set = (def: OptionDef, value: string | true) => {
    if (def.choices && typeof value === 'string' && !def.choices.includes(value)) {
      throw new UsageError(`--${def.long} must be one of ${def.choices.join(', ')} (got "${value}")`, command);
    }
    if (def.repeat) {
      const list = (options[def.long] as string[] | undefined) ?? [];
      list.push(String(value));
      options[def.long] = list;
    } else options[def.long] = value;
  };
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (token === '--help' || token === '-h') {
      help = true;
      continue;
    }
    if (token.startsWith('--') || (token.startsWith('-') && token.length > 1 && !/^-\d/.test(token))) {
      const long = token.startsWith('--');
      let name = long ? token.slice(2) : token.slice(1, 2);
      let inline: string | undefined;
      if (long && name.includes('=')) [name, inline] = [name.slice(0, name.indexOf('=')), name.slice(name.indexOf('=') + 1)];
      if (!long && token.length > 2) inline = token.slice(2).replace(/^=/, '');
      const def = find(name, !long);
      if (!def) {
        if (help) continue;
        throw new UsageError(`unknown option ${long ? '--' : '-'}${name} for "${path(command)}"`, command);
      }
      if (def.value) {
        const value = inline ?? argv[++i];
        if (value === undefined) throw new UsageError(`--${def.long} needs a value (${def.value})`, command);
        set(def, value);
      } else {
        if (inline !== undefined) throw new UsageError(`--${def.long} takes no value`, command);
        set(def, true);
      }
      continue;
    }
    if (command.subcommands && args.length === 0) {
      const sub = command.subcommands.find((c) => c.name === token || c.aliases?.includes(token));
      if (!sub) {
        if (help) break;
        throw new UsageError(`unknown command "${token}" for "${path(command)}"`, command);
      }
      command = sub;
      continue;
    }
    args.push(token);
  }
  if (help) return { help: command };
  if (!command.run) throw new UsageError(`"${path(command)}" needs a command`, command);
  const defs = command.args ?? [];
  const required = defs.filter((a) => a.required).length;
  const variadic = defs.some((a) => a.variadic);
  if (args.length < required) {
    const missing = defs.filter((a) => a.required).slice(args.length).map((a) => a.name);
    throw new UsageError(`missing ${missing.join(' ')}`, command);
  }
  if (!variadic && args.length > defs.length) throw new UsageError(`unexpected argument "${args[defs.length]}"`, command);
  if (rest.length > 0 && !command.usageTail) throw new UsageError(`"${path(command)}" takes nothing after --`, command);
  return { parsed: { command, args, options, rest } };
}

const optionLabel = (o: OptionDef) => `${o.short ? `-${o.short}, ` : '    '}--${o.long}${o.value ? ` ${o.value}` : ''}`;

function optionLines(list: OptionDef[]): string[] {
  const width = Math.max(...list.map((o) => optionLabel(o).length));
  return list.map((o) => {
    const extra = [o.choices ? `one of ${o.choices.join('|')}` : '', o.defaultText ? `default ${o.defaultText}` : ''].filter(Boolean).join('; ');
    return `  ${optionLabel(o).padEnd(width)}  ${o.description}${extra ? ` (${extra})` : ''}`;
  });
}

export function helpText(command: Command, globals: OptionDef[]): string {
  const lines: string[] = [];
  const argText = (command.args ?? []).map((a) => {
    const name = `${a.name}${a.variadic ? '...' : ''}`;
    return a.required ? name : `[${name}]`;
  });
  if (command.subcommands) lines.push(`Usage: ${path(command)} COMMAND [options]`);
  else lines.push(`Usage: ${[path(command), '[options]', ...argText, command.usageTail ?? ''].filter(Boolean).join(' ')}`);
  lines.push('', command.description ?? command.summary);
  if (command.subcommands) {
    lines.push('', 'Commands:');
    const width = Math.max(...command.subcommands.map((c) => c.name.length));
    for (const sub of command.subcommands) lines.push(`  ${sub.name.padEnd(width)}  ${sub.summary}`);
  }
  if (command.options?.length) lines.push('', 'Options:', ...optionLines(command.options));
  lines.push('', 'Global options:', ...optionLines(globals), `      --help${' '.repeat(Math.max(0, Math.max(...globals.map((o) => optionLabel(o).length)) - 10))}  show this help`);
  if (command.examples?.length) lines.push('', 'Examples:', ...command.examples.map((e) => `  ${e}`));
  if (command.subcommands) lines.push('', `Run "${path(command)} COMMAND --help" for a command's options.`);
  return lines.join('\n') + '\n';
}
