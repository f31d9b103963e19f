// One validation at the edge for every request of every service, before its handler runs:
// ids, names, labels, lengths, list sizes, enum values and numbers (the rules: edge-rules.ts).
// They are compiled once per message type at start-up from the contracts' descriptor set
// (walked field by field), so a field added to a contract is bounded the day it is added, and
// a call costs a walk of its request, no descriptor lookups.
//
// Decoding is guarded here too: ts-proto (forceLong=number) throws on a 64-bit number above
// 2^53, which grpc-js would answer with INTERNAL. The guarded deserializer answers a marker
// instead, and check() turns it into INVALID_ARGUMENT naming the field.
import { readFileSync } from 'node:fs';
import {
  createFileRegistry,
  fromBinary,
  ScalarType,
  type DescEnum,
  type DescField,
  type DescMessage,
  type Registry,
} from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { invalidArgument, type FieldViolation, type LapisError } from '../errors';
import {
  DEFAULT_MAX_BYTES,
  DEFAULT_MAX_ENTRIES,
  DEFAULT_MAX_ITEMS,
  DEFAULT_TEXT,
  line,
  MAX_STRUCT_DEPTH,
  ruleOf,
  textProblem,
  type FieldRule,
} from './edge-rules';

type Check = (value: unknown, path: string, out: FieldViolation[]) => void;

/** Violations reported at most per request: enough to act on, and a bounded message. */
const MAX_VIOLATIONS = 20;

/** A request that did not decode; check() refuses it with the error in here. */
class UndecodableRequest {
  constructor(readonly error: LapisError) {}
}

interface MethodLike {
  path: string;
  requestDeserialize(value: Buffer): unknown;
}

export class EdgeValidation {
  private readonly registry: Registry;
  private readonly compiled = new Map<string, Check>();
  /** Method path -> the check of its request type. */
  private readonly methods = new Map<string, Check>();

  constructor(descriptorSetPath: string) {
    this.registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(descriptorSetPath)));
  }

  /**
   * A copy of a ts-proto service definition whose deserializers never throw, with every
   * method's request check compiled now.
   */
  guard<D extends Record<string, MethodLike>>(definition: D): D {
    const guarded: Record<string, MethodLike> = {};
    for (const [key, method] of Object.entries(definition)) {
      const input = this.inputOf(method.path);
      if (input) this.methods.set(method.path, this.compile(input));
      guarded[key] = {
        ...method,
        requestDeserialize: (buffer: Buffer) => {
          try {
            return method.requestDeserialize(buffer);
          } catch (error) {
            return new UndecodableRequest(explainUndecodable(buffer, input, error as Error));
          }
        },
      };
    }
    return guarded as D;
  }

  /** Throws INVALID_ARGUMENT naming every field (up to MAX_VIOLATIONS) the request breaks. */
  check(method: string, request: unknown): void {
    if (request instanceof UndecodableRequest) throw request.error;
    const check = this.methods.get(method);
    if (!check) return;
    const out: FieldViolation[] = [];
    check(request, '', out);
    if (out.length > 0) throw invalidArgument(out.slice(0, MAX_VIOLATIONS));
  }

  private inputOf(path: string): DescMessage | undefined {
    const [, serviceName = '', methodName] = path.split('/');
    const service = this.registry.getService(serviceName);
    return service?.methods.find((m) => m.name === methodName)?.input;
  }

  /** The check of one message type; recursive types refer to their own entry. */
  private compile(desc: DescMessage): Check {
    const known = this.compiled.get(desc.typeName);
    if (known) return known;
    let body: Check = () => {};
    const check: Check = (value, path, out) => body(value, path, out);
    this.compiled.set(desc.typeName, check);
    body = this.compileMessage(desc);
    return check;
  }

  private compileMessage(desc: DescMessage): Check {
    switch (desc.typeName) {
      case 'google.protobuf.Timestamp': // ts-proto gives a Date (useDate)
        return (value, path, out) => {
          if (value instanceof Date && !validDate(value)) out.push({ field: path, description: 'not a time between the years 1 and 9999' });
        };
      case 'google.protobuf.Duration':
        return (value, path, out) => {
          const d = value as { seconds?: number; nanos?: number } | undefined;
          if (!d) return;
          const seconds = d.seconds ?? 0;
          const nanos = d.nanos ?? 0;
          if (seconds < 0 || nanos < 0 || nanos > 999_999_999 || seconds > 315_576_000_000)
            out.push({ field: path, description: 'must be a duration from 0 to 10,000 years' });
        };
      case 'google.protobuf.Struct': // ts-proto gives plain JSON values
      case 'google.protobuf.Value':
      case 'google.protobuf.ListValue':
        return (value, path, out) => {
          if (depthOver(value, MAX_STRUCT_DEPTH)) out.push({ field: path, description: `nested deeper than ${MAX_STRUCT_DEPTH} levels` });
        };
    }
    const fields: Check[] = [];
    for (const field of desc.fields) {
      const check = this.compileField(field);
      if (!check) continue;
      const key = field.localName;
      if (field.oneof) {
        // oneof=unions: { $case: 'yaml', yaml: '...' } under the oneof's name.
        const oneof = field.oneof.localName;
        fields.push((message, path, out) => {
          const chosen = (message as Record<string, { $case?: string } & Record<string, unknown>>)[oneof];
          if (chosen?.$case === key) check(chosen[key], path, out);
        });
      } else {
        fields.push((message, path, out) => check((message as Record<string, unknown>)[key], path, out));
      }
    }
    return (message, path, out) => {
      if (message === undefined || message === null) return;
      for (const check of fields) {
        if (out.length >= MAX_VIOLATIONS) return;
        check(message, path, out);
      }
    };
  }

  /** The check of one field, given the path of its message. */
  private compileField(field: DescField): Check | undefined {
    const rule = ruleOf(field);
    const name = field.name;
    const at = (path: string) => (path ? `${path}.${name}` : name);
    switch (field.fieldKind) {
      case 'scalar': {
        const one = scalarCheck(field.scalar, rule);
        return one && ((value, path, out) => one(value, at(path), out));
      }
      case 'enum': {
        const one = enumCheck(field.enum);
        return (value, path, out) => one(value, at(path), out);
      }
      case 'message': {
        const one = this.compile(field.message);
        return (value, path, out) => one(value, at(path), out);
      }
      case 'list': {
        const maxItems = rule.maxItems ?? DEFAULT_MAX_ITEMS;
        const item =
          field.listKind === 'scalar'
            ? scalarCheck(field.scalar, rule)
            : field.listKind === 'enum'
              ? enumCheck(field.enum)
              : this.compile(field.message);
        return (value, path, out) => {
          const list = value as unknown[] | undefined;
          if (!list) return;
          const here = at(path);
          if (list.length > maxItems) {
            out.push({ field: here, description: `${list.length} items; at most ${maxItems}` });
            return;
          }
          if (!item) return;
          for (let i = 0; i < list.length && out.length < MAX_VIOLATIONS; i++) item(list[i], `${here}[${i}]`, out);
        };
      }
      case 'map': {
        const maxEntries = rule.maxItems ?? DEFAULT_MAX_ENTRIES;
        const keyRule = rule.key ?? line(253);
        const value =
          field.mapKind === 'scalar'
            ? scalarCheck(field.scalar, rule)
            : field.mapKind === 'enum'
              ? enumCheck(field.enum)
              : this.compile(field.message);
        return (map, path, out) => {
          if (!map) return;
          const here = at(path);
          const entries = Object.entries(map as Record<string, unknown>);
          if (entries.length > maxEntries) {
            out.push({ field: here, description: `${entries.length} entries; at most ${maxEntries}` });
            return;
          }
          for (const [key, v] of entries) {
            if (out.length >= MAX_VIOLATIONS) return;
            const problem = textProblem(key, keyRule);
            if (problem) out.push({ field: `${here}[${shown(key)}]`, description: `the key is not ${problem}` });
            else value?.(v, `${here}[${shown(key)}]`, out);
          }
        };
      }
    }
  }
}

function scalarCheck(type: ScalarType, rule: FieldRule): Check | undefined {
  switch (type) {
    case ScalarType.STRING: {
      const textRule = rule.text ?? DEFAULT_TEXT;
      return (value, path, out) => {
        const problem = typeof value === 'string' && value !== '' ? textProblem(value, textRule) : '';
        if (problem) out.push({ field: path, description: `must be ${problem}` });
      };
    }
    case ScalarType.BYTES: {
      const max = rule.maxBytes ?? DEFAULT_MAX_BYTES;
      return (value, path, out) => {
        const length = (value as Uint8Array | undefined)?.length ?? 0;
        if (length > max) out.push({ field: path, description: `${length} bytes; at most ${max}` });
      };
    }
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return (value, path, out) => {
        if (typeof value === 'number' && !Number.isFinite(value)) out.push({ field: path, description: 'must be a finite number' });
      };
    case ScalarType.BOOL:
      return undefined;
    default: {
      // 64-bit numbers above 2^53 never get here: the guarded deserializer names them.
      const min = rule.min;
      if (min === undefined) return undefined;
      return (value, path, out) => {
        if (typeof value === 'number' && value < min)
          out.push({ field: path, description: min === 0 ? 'must not be negative' : `must be at least ${min}` });
      };
    }
  }
}

function enumCheck(desc: DescEnum): Check {
  const known = new Set(desc.values.map((v) => v.number));
  const names = desc.values.map((v) => v.name).join(', ');
  return (value, path, out) => {
    if (typeof value === 'number' && !known.has(value))
      out.push({ field: path, description: `${value} is not a ${desc.name} (known: ${names})` });
  };
}

/** A map key as it may appear in a field path: short, and no control characters. */
function shown(key: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = key.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > 40 ? `${clean.slice(0, 40)}…` : clean;
}

function validDate(date: Date): boolean {
  const year = date.getUTCFullYear();
  return !Number.isNaN(date.getTime()) && year >= 1 && year <= 9999;
}

function depthOver(value: unknown, limit: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (limit === 0) return true;
  for (const item of Object.values(value as Record<string, unknown>)) if (depthOver(item, limit - 1)) return true;
  return false;
}

/**
 * What is wrong with a request ts-proto could not decode: read again with the descriptors
 * (64-bit numbers as bigint) to name a number beyond 2^53, else say it is no such message.
 */
function explainUndecodable(buffer: Buffer, desc: DescMessage | undefined, error: Error): LapisError {
  const what = desc?.typeName ?? 'request';
  if (desc) {
    let message: Record<string, unknown> | undefined;
    try {
      message = fromBinary(desc, buffer) as unknown as Record<string, unknown>;
    } catch {
      // not protobuf at all: said below
    }
    const field = message && unsafeNumberAt(desc, message, '');
    if (field) {
      return invalidArgument([{ field, description: `larger than ${Number.MAX_SAFE_INTEGER} (2^53 - 1), the largest number Lapis takes` }]);
    }
  }
  return invalidArgument([{ field: what, description: `the request is not a valid ${what}: ${error.message}` }]);
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const unsafe = (v: unknown) => typeof v === 'bigint' && (v > SAFE || v < -SAFE);

/** The path of the first 64-bit number out of the safe range in a @bufbuild/protobuf message. */
function unsafeNumberAt(desc: DescMessage, message: Record<string, unknown>, path: string): string | undefined {
  for (const field of desc.fields) {
    const here = path ? `${path}.${field.name}` : field.name;
    let value = message[field.localName];
    if (field.oneof) {
      const chosen = message[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
      if (chosen?.case !== field.localName) continue;
      value = chosen.value;
    }
    if (value === undefined || value === null) continue;
    switch (field.fieldKind) {
      case 'scalar':
        if (unsafe(value)) return here;
        break;
      case 'message': {
        const found = unsafeNumberAt(field.message, value as Record<string, unknown>, here);
        if (found) return found;
        break;
      }
      case 'list':
        for (const [i, item] of (value as unknown[]).entries()) {
          if (field.listKind === 'scalar' && unsafe(item)) return `${here}[${i}]`;
          if (field.listKind === 'message') {
            const found = unsafeNumberAt(field.message, item as Record<string, unknown>, `${here}[${i}]`);
            if (found) return found;
          }
        }
        break;
      case 'map':
        for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
          if (field.mapKind === 'scalar' && unsafe(item)) return `${here}[${shown(key)}]`;
          if (field.mapKind === 'message') {
            const found = unsafeNumberAt(field.message, item as Record<string, unknown>, `${here}[${shown(key)}]`);
            if (found) return found;
          }
        }
        break;
    }
  }
  return undefined;
}
