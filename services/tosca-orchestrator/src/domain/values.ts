// Values against their definitions: primitive and complex data types, entry_schema/key_schema,
// scalar units and constraints. Function calls inside values go to the caller's checker.
import { at, type Diagnostics, type Loc } from './diagnostics';
import { isDict, type Registry } from './registry';

export const functionNames = new Set([
  'get_input',
  'get_property',
  'get_attribute',
  'get_operation_output',
  'concat',
  'join',
  'token',
  'get_artifact',
  'get_nodes_of_type',
]);

/** A function call: a map with exactly one key that names a TOSCA function. */
export function isFunction(value: unknown): value is Record<string, unknown> {
  if (!isDict(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && functionNames.has(keys[0]!);
}

const scalarUnits: Record<string, Record<string, number>> = {
  'scalar-unit.size': { b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3, tb: 1e12, tib: 1024 ** 4 },
  'scalar-unit.time': { d: 86400, h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, ns: 1e-9 },
  'scalar-unit.frequency': { hz: 1, khz: 1e3, mhz: 1e6, ghz: 1e9 },
  'scalar-unit.bitrate': {
    bps: 1,
    kbps: 1e3,
    kibps: 1024,
    mbps: 1e6,
    mibps: 1024 ** 2,
    gbps: 1e9,
    gibps: 1024 ** 3,
    tbps: 1e12,
    tibps: 1024 ** 4,
  },
};

const scalarPattern = /^\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*([A-Za-z]+)\s*$/;

/** A scalar-unit value in base units (bytes, seconds, Hz, bps), or undefined when malformed. */
export function parseScalar(value: unknown, type: string): number | undefined {
  const units = scalarUnits[type];
  if (!units || typeof value !== 'string') return undefined;
  const split = splitScalar(value);
  if (split === null) return undefined;
  const [number, unit] = split ?? (scalarPattern.exec(value)?.slice(1, 3) as [string, string] | undefined) ?? [];
  if (number === undefined || unit === undefined) return undefined;
  const factor = unitFactor(type, units, unit);
  return factor === undefined ? undefined : Number(number) * factor;
}

/** Unit spellings seen (GB, gb, Gb), per scalar type, so most units need no lower-casing. */
const unitCache = new Map<string, Map<string, number | null>>();

function unitFactor(type: string, units: Record<string, number>, unit: string): number | undefined {
  let cache = unitCache.get(type);
  if (!cache) unitCache.set(type, (cache = new Map()));
  let factor = cache.get(unit);
  if (factor === undefined) {
    factor = units[unit.toLowerCase()] ?? null;
    // Bounded: unknown spellings are remembered only up to a few hundred.
    if (factor !== null || cache.size < 256) cache.set(unit, factor);
  }
  return factor ?? undefined;
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13;
const isLetter = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/**
 * scalarPattern without a regular expression, for the usual ASCII text: [number, unit], null
 * when it does not match, undefined when the text has other characters (the pattern decides).
 */
function splitScalar(s: string): [string, string] | null | undefined {
  const n = s.length;
  let i = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 127) return undefined;
    if (!isSpace(c)) break;
  }
  const start = i;
  if (s.charCodeAt(i) === 45) i++;
  const digits = i;
  while (i < n && isDigit(s.charCodeAt(i))) i++;
  if (i === digits) return null;
  if (s.charCodeAt(i) === 46 && isDigit(s.charCodeAt(i + 1))) {
    i += 2;
    while (i < n && isDigit(s.charCodeAt(i))) i++;
  }
  const e = s.charCodeAt(i);
  if (e === 101 || e === 69) {
    let j = i + 1;
    if (s.charCodeAt(j) === 43 || s.charCodeAt(j) === 45) j++;
    if (isDigit(s.charCodeAt(j))) {
      while (j < n && isDigit(s.charCodeAt(j))) j++;
      // An exponent is taken only if a unit still follows (the pattern backtracks otherwise).
      let k = j;
      while (k < n && isSpace(s.charCodeAt(k))) k++;
      if (k < n && isLetter(s.charCodeAt(k))) i = j;
    }
  }
  const end = i;
  while (i < n && isSpace(s.charCodeAt(i))) i++;
  const unitStart = i;
  while (i < n && isLetter(s.charCodeAt(i))) i++;
  if (i === unitStart) return s.charCodeAt(i) > 127 ? undefined : null;
  const unitEnd = i;
  while (i < n && isSpace(s.charCodeAt(i))) i++;
  if (i !== n) return s.charCodeAt(i) > 127 ? undefined : null;
  return [s.slice(start, end), s.slice(unitStart, unitEnd)];
}

const versionPattern = /^\d+(\.\d+){0,2}(\.[0-9A-Za-z]+)?(-\d+)?$/;

function versionKey(value: unknown): number[] {
  return String(value)
    .split(/[.-]/)
    .map((p) => (/^\d+$/.test(p) ? Number(p) : 0));
}

function compare(a: unknown, b: unknown, type: string): number | undefined {
  if (scalarUnits[type]) {
    const x = parseScalar(a, type);
    const y = parseScalar(b, type);
    return x === undefined || y === undefined ? undefined : x - y;
  }
  if (type === 'version') {
    const x = versionKey(a);
    const y = versionKey(b);
    for (let i = 0; i < Math.max(x.length, y.length); i++) {
      const d = (x[i] ?? 0) - (y[i] ?? 0);
      if (d) return d;
    }
    return 0;
  }
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (type === 'timestamp') return Date.parse(String(a)) - Date.parse(String(b));
  return undefined;
}

const equal = (a: unknown, b: unknown, type: string): boolean => {
  const c = compare(a, b, type);
  if (c !== undefined && !Number.isNaN(c)) return c === 0;
  return JSON.stringify(a) === JSON.stringify(b);
};

const lengthOf = (v: unknown): number | undefined =>
  typeof v === 'string' || Array.isArray(v) ? v.length : isDict(v) ? Object.keys(v).length : undefined;

export const constraintOperators = new Set([
  'equal',
  'greater_than',
  'greater_or_equal',
  'less_than',
  'less_or_equal',
  'in_range',
  'valid_values',
  'length',
  'min_length',
  'max_length',
  'pattern',
  'schema',
]);

/** Checks `value` against one constraint clause; returns a message when violated. */
export function violates(value: unknown, clause: unknown, type: string): string | undefined {
  if (!isDict(clause)) return undefined;
  let op: string | undefined;
  for (const k in clause) {
    op = k;
    break;
  }
  const arg = op === undefined ? undefined : clause[op];
  const c = (x: unknown) => compare(value, x, type);
  const show = (x: unknown) => JSON.stringify(x);
  switch (op) {
    case 'equal':
      return equal(value, arg, type) ? undefined : `must equal ${show(arg)}`;
    case 'greater_than':
      return (c(arg) ?? 1) > 0 ? undefined : `must be greater than ${show(arg)}`;
    case 'greater_or_equal':
      return (c(arg) ?? 0) >= 0 ? undefined : `must be greater than or equal to ${show(arg)}`;
    case 'less_than':
      return (c(arg) ?? -1) < 0 ? undefined : `must be less than ${show(arg)}`;
    case 'less_or_equal':
      return (c(arg) ?? 0) <= 0 ? undefined : `must be less than or equal to ${show(arg)}`;
    case 'in_range': {
      if (!Array.isArray(arg) || arg.length !== 2) return undefined;
      const low = arg[0] === 'UNBOUNDED' ? -Infinity : c(arg[0]);
      const high = arg[1] === 'UNBOUNDED' ? Infinity : c(arg[1]);
      const ok = (low === -Infinity || (low ?? 0) >= 0) && (high === Infinity || (high ?? 0) <= 0);
      return ok ? undefined : `must be in range [${arg.map(String).join(', ')}]`;
    }
    case 'valid_values':
      return Array.isArray(arg) && !arg.some((v) => equal(value, v, type)) ? `must be one of ${show(arg)}` : undefined;
    case 'length':
      return lengthOf(value) !== undefined && lengthOf(value) !== Number(arg) ? `must have length ${String(arg)}` : undefined;
    case 'min_length':
      return (lengthOf(value) ?? Infinity) < Number(arg) ? `must have length of at least ${String(arg)}` : undefined;
    case 'max_length':
      return (lengthOf(value) ?? 0) > Number(arg) ? `must have length of at most ${String(arg)}` : undefined;
    case 'pattern': {
      if (typeof value !== 'string' || typeof arg !== 'string') return undefined;
      try {
        return new RegExp(`^(?:${arg})$`).test(value) ? undefined : `must match the pattern ${show(arg)}`;
      } catch {
        return undefined;
      }
    }
    default:
      return undefined;
  }
}

export interface ValueContext {
  registry: Registry;
  diags: Diagnostics;
  /** Validates a function call found where a value was expected. */
  onFunction(value: Record<string, unknown>, loc: Loc, schema: Schema): void;
  /** What a value that is a function resolves to, when known (for get_input); `input` when it is a given input's value. */
  resolveStatic?(value: Record<string, unknown>): { value: unknown; input?: string } | undefined;
}

export interface Schema {
  type?: unknown;
  entry_schema?: unknown;
  key_schema?: unknown;
  constraints?: unknown;
}

const asSchema = (raw: unknown): Schema => (typeof raw === 'string' ? { type: raw } : isDict(raw) ? (raw as Schema) : {});

/** Checks constraint clauses for well-formedness (operator known). */
export function checkConstraintSyntax(ctx: ValueContext, constraints: unknown, loc: Loc): void {
  if (constraints === undefined || constraints === null) return;
  if (!Array.isArray(constraints)) {
    ctx.diags.error('INVALID_CONSTRAINT', 'constraints must be a list', loc);
    return;
  }
  constraints.forEach((clause, i) => {
    const op = isDict(clause) ? Object.keys(clause)[0] : undefined;
    if (!isDict(clause) || Object.keys(clause).length !== 1 || !op || !constraintOperators.has(op)) {
      ctx.diags.error('INVALID_CONSTRAINT', `unknown constraint ${JSON.stringify(clause)}`, at(loc, i));
    } else if (op === 'in_range' && (!Array.isArray(clause[op]) || (clause[op] as unknown[]).length !== 2)) {
      ctx.diags.error('INVALID_CONSTRAINT', 'in_range needs a list of two bounds', at(loc, i));
    } else if (op === 'valid_values' && !Array.isArray(clause[op])) {
      ctx.diags.error('INVALID_CONSTRAINT', 'valid_values needs a list', at(loc, i));
    }
  });
}

/**
 * Bounds of the memory of valid scalars (it lasts as long as the process for the built-in
 * types): values per definition, and the longest string remembered.
 */
const maxRememberedScalars = 1024;
const maxRememberedLength = 256;

export function checkValue(ctx: ValueContext, value: unknown, rawSchema: unknown, loc: Loc, what: string): void {
  // A scalar is valid or not by its definition alone (and the types, which the registry owns):
  // one found valid before, with nothing to report, needs no second look.
  if (value !== undefined && typeof value !== 'object' && typeof rawSchema === 'object' && rawSchema !== null) {
    const known = ctx.registry.validScalars(rawSchema);
    if (known.has(value)) return;
    const reported = ctx.diags.list.length;
    checkFreshValue(ctx, value, rawSchema, loc, what);
    if (
      ctx.diags.list.length === reported &&
      known.size < maxRememberedScalars &&
      !(typeof value === 'string' && value.length > maxRememberedLength)
    )
      known.add(value);
    return;
  }
  checkFreshValue(ctx, value, rawSchema, loc, what);
}

function checkFreshValue(ctx: ValueContext, value: unknown, rawSchema: unknown, loc: Loc, what: string): void {
  const schema = asSchema(rawSchema);
  if (isFunction(value)) {
    ctx.onFunction(value, loc, schema);
    const resolved = ctx.resolveStatic?.(value);
    if (resolved && resolved.value !== undefined && resolved.value !== null && !isFunction(resolved.value)) {
      const before = ctx.diags.list.length;
      checkValue({ ...ctx, resolveStatic: undefined }, resolved.value, schema, loc, `${what} (from ${Object.keys(value)[0]})`);
      // A given value that does not fit where the template uses it: the caller's to change.
      if (resolved.input !== undefined) for (const d of ctx.diags.list.slice(before)) d.input = resolved.input;
    }
    return;
  }
  if (value === null || value === undefined) return;
  const type = typeof schema.type === 'string' ? schema.type : 'string';
  const base = ctx.registry.primitiveBase(type);
  let checkedType = base ?? type;
  if (base !== undefined) {
    if (!checkPrimitive(ctx, value, base, schema, loc, what)) return;
  } else {
    const entry = ctx.registry.resolve('data', type);
    if (!entry) {
      ctx.diags.error('UNKNOWN_TYPE', `${what}: unknown data type "${type}"`, loc);
      return;
    }
    if (!isDict(value)) return mismatch(ctx, value, type, loc, what);
    const props = ctx.registry.properties(entry);
    for (const [key, v] of Object.entries(value)) {
      const def = props.get(key);
      if (!def) ctx.diags.error('UNKNOWN_PROPERTY', `${what}: data type ${entry.name} has no property "${key}"`, at(loc, key));
      else checkValue(ctx, v, def, at(loc, key), `${what}.${key}`);
    }
    for (const [key, def] of props) {
      if (
        def.required !== false &&
        def.default === undefined &&
        (value[key] === undefined || value[key] === null) &&
        !('required' in def && def.required === 'no')
      ) {
        ctx.diags.error('MISSING_REQUIRED_PROPERTY', `${what}: required property "${key}" of ${entry.name} is missing`, loc);
      }
    }
    checkedType = entry.name;
  }
  // The data type's own constraints, then the definition's.
  const dataEntry = base !== type ? ctx.registry.resolve('data', type) : undefined;
  if (dataEntry)
    for (const t of ctx.registry.ancestors(dataEntry))
      if (Array.isArray(t.def.constraints)) applyConstraints(ctx, value, t.def.constraints, base ?? checkedType, loc, what);
  if (Array.isArray(schema.constraints)) applyConstraints(ctx, value, schema.constraints, base ?? checkedType, loc, what);
}

function applyConstraints(ctx: ValueContext, value: unknown, clauses: unknown[], type: string, loc: Loc, what: string): void {
  for (const clause of clauses) {
    const message = violates(value, clause, type);
    if (message) ctx.diags.error('CONSTRAINT_VIOLATION', `${what}: ${JSON.stringify(value)} ${message}`, loc);
  }
}

function mismatch(ctx: ValueContext, value: unknown, expected: string, loc: Loc, what: string): void {
  ctx.diags.error('TYPE_MISMATCH', `${what}: ${JSON.stringify(value)} is not a valid ${expected}`, loc);
}

function checkPrimitive(ctx: ValueContext, value: unknown, base: string, schema: Schema, loc: Loc, what: string): boolean {
  switch (base) {
    case 'string':
      if (typeof value === 'string') return true;
      if (typeof value === 'number' || typeof value === 'boolean') {
        ctx.diags.warn('TYPE_COERCED', `${what}: ${JSON.stringify(value)} is not a string; read as "${String(value)}"`, loc);
        return true;
      }
      mismatch(ctx, value, 'string', loc, what);
      return false;
    case 'integer':
      if (typeof value === 'number' && Number.isInteger(value)) return true;
      if (typeof value === 'string' && /^-?\d+$/.test(value.trim())) {
        ctx.diags.warn('TYPE_COERCED', `${what}: the string "${value}" read as an integer`, loc);
        return true;
      }
      mismatch(ctx, value, 'integer', loc, what);
      return false;
    case 'float':
      if (typeof value === 'number') return true;
      mismatch(ctx, value, 'float', loc, what);
      return false;
    case 'boolean':
      if (typeof value === 'boolean') return true;
      if (typeof value === 'string' && /^(true|false)$/i.test(value)) return true;
      mismatch(ctx, value, 'boolean', loc, what);
      return false;
    case 'timestamp':
      if (typeof value === 'string' && !Number.isNaN(Date.parse(value.replace(/\s+/, 'T')))) return true;
      mismatch(ctx, value, 'timestamp', loc, what);
      return false;
    case 'version':
      if ((typeof value === 'string' || typeof value === 'number') && versionPattern.test(String(value))) return true;
      mismatch(ctx, value, 'version', loc, what);
      return false;
    case 'range':
      if (
        Array.isArray(value) &&
        value.length === 2 &&
        value.every((v) => Number.isInteger(v) || v === 'UNBOUNDED') &&
        (value[0] === 'UNBOUNDED' || value[1] === 'UNBOUNDED' || (value[0] as number) <= (value[1] as number))
      )
        return true;
      mismatch(ctx, value, 'range', loc, what);
      return false;
    case 'list':
      if (!Array.isArray(value)) {
        mismatch(ctx, value, 'list', loc, what);
        return false;
      }
      if (schema.entry_schema !== undefined)
        for (const [i, v] of value.entries()) checkValue(ctx, v, schema.entry_schema, at(loc, i), `${what}[${i}]`);
      return true;
    case 'map':
      if (!isDict(value)) {
        mismatch(ctx, value, 'map', loc, what);
        return false;
      }
      for (const [k, v] of Object.entries(value)) {
        if (schema.entry_schema !== undefined) checkValue(ctx, v, schema.entry_schema, at(loc, k), `${what}.${k}`);
        if (schema.key_schema !== undefined) checkValue(ctx, k, schema.key_schema, at(loc, k), `${what} key "${k}"`);
      }
      return true;
    case 'null':
    case 'any':
      return true;
    default:
      if (base.startsWith('scalar-unit.')) {
        if (parseScalar(value, base) !== undefined) return true;
        mismatch(
          ctx,
          value,
          `${base} (a number and a unit, for example ${base === 'scalar-unit.size' ? '"4 GB"' : base === 'scalar-unit.time' ? '"30 s"' : '"2 GHz"'})`,
          loc,
          what,
        );
        return false;
      }
      return true;
  }
}
