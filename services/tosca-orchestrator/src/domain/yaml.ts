// YAML with positions, read the way the established TOSCA tools (PyYAML, YAML 1.1) read it:
// yes/no/on/off are booleans, duplicate keys keep the last value (with a warning), implicit
// pairs in flow sequences become one-entry maps. Every map entry and sequence item records its
// offset under its document path.
import { isAlias, isMap, isPair, isScalar, isSeq, parseDocument, Scalar, type Node } from 'yaml';
import * as jsyaml from 'js-yaml';
import { child, Diagnostics, type PositionIndex } from './diagnostics';

export interface LoadedYaml {
  value: unknown;
  positions: PositionIndex;
  ok: boolean;
}

const yaml11Booleans = /^(yes|no|on|off)$/i;

// js-yaml's members, read once (not through the module namespace on every scalar).
const { parseEvents, getScalarValue, CORE_SCHEMA, EVENT_ID: E, SCALAR_STYLE_PLAIN } = jsyaml;
const hasOwn = Object.prototype.hasOwnProperty;

/** Signals that the fast reading cannot give the library's value: the library reads the file. */
const LIBRARY = Symbol('library');

/**
 * Plain scalars that YAML 1.1 (the library, as PyYAML) reads differently from js-yaml's YAML 1.2
 * core schema: yes/no/on/off, octal 0777, exponents without a dot, digits with underscores,
 * sexagesimal 1:30.
 */
const yaml11Number = /^(?:[-+]?0[0-7]+|[-+]?0[ob][0-9a-fA-F_]*|[-+]?\d+[eE][-+]?\d+|[-+]?[\d.]*_[\d_.]*|[-+]?\d+(?::[0-5]?\d)+(?:\.\d*)?)$/;
const nullOrBool = new Set(['null', 'Null', 'NULL', 'true', 'True', 'TRUE', 'false', 'False', 'FALSE']);

/** A plain scalar as js-yaml's core schema reads it, or LIBRARY where YAML 1.1 differs. */
function plainScalar(source: string): unknown {
  if (source === '') return null;
  const c = source.charCodeAt(0);
  // Letters: a string, unless null/true/false or a YAML 1.1 boolean.
  if ((c >= 97 && c <= 122) || (c >= 65 && c <= 90)) {
    // By length, without a regular expression for every short key: null/true/false have 4 or 5
    // letters, yes/no/on/off 2 or 3.
    const n = source.length;
    if (n > 5 || n < 2) return source;
    if (n >= 4) return nullOrBool.has(source) ? CORE_SCHEMA.resolveImplicitScalarTag(source).value : source;
    const lower = source.toLowerCase();
    return lower === 'no' || lower === 'on' || lower === 'yes' || lower === 'off' ? LIBRARY : source;
  }
  if ((c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46) {
    // No number in either schema has a space: "2 GB" is a string (the usual scalar unit).
    if (source.includes(' ')) return source;
    if (yaml11Number.test(source)) return LIBRARY;
  } else if (c !== 126) {
    // Every null, boolean and number starts with a letter, a digit, a sign, a dot or "~": "/data"
    // and the like are strings.
    return source;
  }
  return CORE_SCHEMA.resolveImplicitScalarTag(source).value;
}

/**
 * The template's value from js-yaml's event stream, built here rather than by js-yaml's
 * generic constructor (cheaper: no schema dispatch per node), or undefined when the library
 * must read it: several documents, anchors, aliases, tags, complex or duplicate keys, merge
 * keys, YAML 1.1-only scalars. Syntax errors throw.
 */
function readFast(text: string): { value: unknown } | undefined {
  const events = parseEvents(text, {});
  // The open collections, innermost last (parallel stacks: no object per collection):
  // 1 sequence, 2 mapping; the collection; for a mapping, the key waiting for its value.
  const kinds: number[] = [];
  const values: (unknown[] | Record<string, unknown>)[] = [];
  const keys: (string | undefined)[] = [];
  let depth = -1;
  let documents = 0;
  let root: unknown = null;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    // Read once: dropped now, so a collection during the walk need not keep or copy it.
    events[i] = undefined as never;
    let value: unknown;
    switch (e.type) {
      case E.DOCUMENT:
        if (++documents > 1) return undefined;
        continue;
      case E.SCALAR: {
        if (e.anchorStart !== -1 || e.tagStart !== -1) return undefined;
        const source = e.fast ? text.slice(e.valueStart, e.valueEnd) : getScalarValue(text, e);
        // A key keeps its text, as the library reads it (1.5, true, ~ and yes are keys too).
        if (depth >= 0 && kinds[depth] === 2 && keys[depth] === undefined) value = source;
        else {
          value = e.style === SCALAR_STYLE_PLAIN ? plainScalar(source) : source;
          if (value === LIBRARY) return undefined;
        }
        break;
      }
      case E.SEQUENCE:
      case E.MAPPING:
        if (e.anchorStart !== -1 || e.tagStart !== -1) return undefined;
        depth++;
        kinds[depth] = e.type === E.SEQUENCE ? 1 : 2;
        values[depth] = e.type === E.SEQUENCE ? [] : {};
        keys[depth] = undefined;
        continue;
      case E.POP:
        // The end of a collection (or of the document).
        if (depth < 0) continue;
        value = values[depth];
        depth--;
        break;
      default:
        // Aliases.
        return undefined;
    }
    // The value goes into the collection it is in (or is the document).
    if (depth < 0) root = value;
    else if (kinds[depth] === 1) (values[depth] as unknown[]).push(value);
    else {
      const map = values[depth] as Record<string, unknown>;
      const key = keys[depth];
      if (key === undefined) {
        if (typeof value !== 'string') return undefined;
        if (value === '__proto__' || value === '<<' || hasOwn.call(map, value)) return undefined;
        keys[depth] = value;
      } else {
        map[key] = value;
        keys[depth] = undefined;
      }
    }
  }
  return { value: root };
}

/**
 * Reads template YAML. Most templates are read from js-yaml's event stream, several times
 * faster than the `yaml` library; positions are then found (by the library) only if a
 * diagnostic needs them. Templates with duplicate keys, YAML 1.1-only scalars, anchors, tags or
 * syntax errors are read by the library straight away, which warns or reports with positions.
 */
export function loadYaml(text: string, file: string, diags: Diagnostics, styleWarnings = true): LoadedYaml {
  let fast: { value: unknown } | undefined;
  try {
    fast = readFast(text);
  } catch {
    // Syntax errors: the library reports them, with positions.
    fast = undefined;
  }
  if (!fast) return loadWithLibrary(text, file, diags, styleWarnings);
  diags.addFile(file, () => loadWithLibrary(text, file, new Diagnostics(), false).positions, text);
  return { value: fast.value ?? null, positions: new Map(), ok: true };
}

/** The `yaml` library's reading, converted the same way (exported for the differential test). */
export function loadWithLibrary(text: string, file: string, diags: Diagnostics, styleWarnings = true): LoadedYaml {
  const positions: PositionIndex = new Map();
  diags.addFile(file, positions, text);
  const doc = parseDocument(text, { uniqueKeys: false, version: '1.1', prettyErrors: false, merge: true });
  let ok = true;
  for (const error of doc.errors) {
    ok = false;
    const [line, column] = diags.position(file, error.pos[0]);
    diags.list.push({ severity: 'error', code: 'YAML_SYNTAX', message: error.message.split('\n')[0] ?? error.message, file, line, column, path: '' });
  }
  if (!ok) return { value: undefined, positions, ok };
  positions.set('', 0);

  const convert = (node: Node | null | undefined, path: string): unknown => {
    if (node == null) return null;
    if (isAlias(node)) return convert(node.resolve(doc) as Node | undefined, path);
    if (isScalar(node)) return scalar(node, path);
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      const seen = new Set<string>();
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null;
        const key = String(isScalar(keyNode) ? scalarKey(keyNode) : keyNode == null ? '' : JSON.stringify(keyNode.toJSON()));
        const keyPath = child(path, key);
        const start = keyNode?.range ? keyNode.range[0] : undefined;
        if (start !== undefined) positions.set(keyPath, start);
        if (seen.has(key)) diags.warn('DUPLICATE_KEY', `duplicate key "${key}": the last value is used`, { file, path: keyPath });
        seen.add(key);
        out[key] = convert(pair.value as Node | null, keyPath);
      }
      return out;
    }
    if (isSeq(node)) {
      return node.items.map((item, index) => {
        const itemPath = child(path, index);
        if (isPair(item)) {
          const keyNode = item.key as Node | null;
          if (keyNode?.range) positions.set(itemPath, keyNode.range[0]);
          const key = String(isScalar(keyNode) ? keyNode.value : '');
          return { [key]: convert(item.value as Node | null, child(itemPath, key)) };
        }
        const n = item as Node | null;
        if (n?.range) positions.set(itemPath, n.range[0]);
        return convert(n, itemPath);
      });
    }
    return (node as { toJSON?: () => unknown }).toJSON?.() ?? null;
  };

  const scalar = (node: Scalar, path: string): unknown => {
    const value = node.value;
    if (typeof value === 'boolean' && node.range && node.type === 'PLAIN') {
      const source = text.slice(node.range[0], node.range[1]).trim();
      // YAML 1.1 in `yaml` also reads y/n as booleans; PyYAML does not.
      if (/^[yYnN]$/.test(source)) return source;
      if (styleWarnings && yaml11Booleans.test(source)) {
        diags.warn('YAML11_BOOLEAN', `"${source}" read as the YAML 1.1 boolean ${value}; write ${value} instead`, { file, path });
      }
    }
    if (value instanceof Date && node.range) return text.slice(node.range[0], node.range[1]).trim();
    if (typeof value === 'bigint') return Number(value);
    return value ?? null;
  };

  const scalarKey = (node: Scalar): unknown => {
    if (node.range && node.type === 'PLAIN' && typeof node.value !== 'string') return text.slice(node.range[0], node.range[1]).trim();
    return node.value;
  };

  return { value: convert(doc.contents as Node | null, ''), positions, ok };
}
