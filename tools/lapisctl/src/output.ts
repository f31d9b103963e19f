// Printing: tables for people, JSON or YAML for scripts, enum values as words.
import type { Output } from './context';

/** The word of an enum value (removeEnumPrefix enums: RUNNING), "-" for UNSPECIFIED. */
export function word(values: Record<number, string>, value: number): string {
  const name = values[value];
  if (name === undefined) return String(value);
  return name === 'UNSPECIFIED' ? '-' : name;
}

// Every enum of the contracts; their JSON names ("INSTANCE_STATE_RUNNING") lose the prefix.
const ENUM_PREFIX =
  /^(INSTANCE_STATE|BACKEND|DEVICE_KIND|PORT_PROTOCOL|CLAIM_STATE|PENDING_REASON|PREEMPTION_ACTION|FAIR_SHARE_ALGORITHM|VOLUME_STATE|NODE_STATE|LOG_STREAM|SYNC_RESULT|UPSTREAM_REMOVAL|SEVERITY|DEPLOYMENT_STATE|TRANSLATION_TARGET)_([A-Z0-9_]+)$/;
// Maps of user data: their values are kept as they are.
const FREE_FORM = new Set(['labels', 'environment', 'inputs', 'outputs', 'attributes', 'metadata', 'pins', 'userShares', 'files']);

/** A message's proto JSON (toJSON of its type) with enum words instead of prefixed names. */
export function plain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'string') return ENUM_PREFIX.exec(value)?.[2] ?? value;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) out[key] = FREE_FORM.has(key) ? v : plain(v);
    return out;
  }
  return value;
}

export function printData(output: Output, data: unknown): void {
  // The YAML library on demand: table and JSON output never need it.
  if (output === 'yaml') process.stdout.write((require('yaml') as typeof import('yaml')).stringify(data));
  else process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
}

export type Row = Record<string, string | number | undefined>;

/** Columns padded to their widest cell, headers in capitals (kubectl style). */
export function table(columns: string[], rows: Row[]): string {
  const cells = rows.map((row) => columns.map((c) => cell(row[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return `${[line(columns), ...cells.map(line)].join('\n')}\n`;
}

const cell = (value: string | number | undefined) => (value === undefined || value === '' ? '-' : String(value));

/** "Key: value" lines for one object. */
export function details(pairs: [string, string | number | undefined][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return `${pairs.map(([k, v]) => `${`${k}:`.padEnd(width)} ${cell(v)}`).join('\n')}\n`;
}

export function age(date: Date | undefined, now = Date.now()): string {
  if (!date) return '-';
  const s = Math.max(0, Math.round((now - date.getTime()) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

export const time = (date: Date | undefined) => (date ? date.toISOString().replace(/\.\d+Z$/, 'Z') : '-');

const UNITS = ['B', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi'];

export function bytes(n: number): string {
  if (!n) return '0';
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n}B` : `${Number.isInteger(v) ? v : Number(v.toFixed(1))}${UNITS[i]}`;
}

/** "1Gi", "512Mi", "2G", "1.5Ti", "1048576" -> bytes. */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGTP]i?|[kKMGTP]B?|B)?$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2] ?? 'B';
  const index = 'BKMGTP'.indexOf(unit[0]!.toUpperCase());
  const base = unit.endsWith('i') ? 1024 : 1000;
  const value = Math.round(n * base ** Math.max(0, index));
  return value > 0 ? value : undefined;
}

export const fixed = (n: number, digits = 4) => (Number.isFinite(n) ? n.toFixed(digits) : String(n));

export const cpus = (millis: number) => (millis ? `${millis / 1000}` : '-');
