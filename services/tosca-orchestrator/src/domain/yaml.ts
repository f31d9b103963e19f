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
/** The YAML 1.1 booleans PyYAML reads (as does the library), beyond true/false. */
const YAML11_BOOLEAN: ReadonlyMap<string, boolean> = new Map([
  ['yes', true], ['Yes', true], ['YES', true], ['on', true], ['On', true], ['ON', true],
  ['no', false], ['No', false], ['NO', false], ['off', false], ['Off', false], ['OFF', false],
]);
const yaml11BooleanMessage = (source: string, value: boolean) => `"${source}" read as the YAML 1.1 boolean ${value}; write ${value} instead`;

/** A YAML 1.1 boolean met by the fast reading: where to warn about it. */
interface Yaml11Boolean {
  source: string;
  value: boolean;
  path: string;
  /** Where the library's positions put it: the key of a mapping value, or the item itself. */
  offset: number;
}

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
 * Entries read elsewhere (another thread) that belong at the end of `topology_template.
 * node_templates`, whose block mapping must start at offset `at` of the text read here.
 */
interface Graft {
  at: number;
  take(): Record<string, unknown> | undefined;
}

/**
 * The template's value from js-yaml's event stream, built here rather than by js-yaml's
 * generic constructor (cheaper: no schema dispatch per node), or undefined when the library
 * must read it: several documents, anchors, aliases, tags, complex or duplicate keys, merge
 * keys, YAML 1.1-only scalars (but yes/no/on/off when `booleans` collects them, for warnings).
 * Syntax errors throw. With a graft, undefined too when the node_templates mapping is not where
 * the graft says or the grafted entries repeat a name.
 */
function readFast(text: string, graft?: Graft, booleans?: Yaml11Boolean[]): { value: unknown } | undefined {
  const events = parseEvents(text, {});
  // Depth of the node_templates mapping that takes the graft, once it is open.
  let graftDepth = -1;
  let grafted = false;
  // The open collections, innermost last (parallel stacks: no object per collection):
  // 1 sequence, 2 mapping; the collection; for a mapping, the key waiting for its value.
  const kinds: number[] = [];
  const values: (unknown[] | Record<string, unknown>)[] = [];
  const keys: (string | undefined)[] = [];
  // Where each waiting key starts (only for warnings about YAML 1.1 booleans).
  const keyStarts: number[] = [];
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
        if (depth >= 0 && kinds[depth] === 2 && keys[depth] === undefined) {
          value = source;
          // A quoted key's text starts after its quote; the library's position is at the quote.
          if (booleans) keyStarts[depth] = e.style === SCALAR_STYLE_PLAIN ? e.valueStart : e.valueStart - 1;
        } else {
          value = e.style === SCALAR_STYLE_PLAIN ? plainScalar(source) : source;
          if (value === LIBRARY) {
            const boolean = booleans && YAML11_BOOLEAN.get(source);
            if (boolean === undefined) return undefined;
            value = boolean;
            let path = '';
            for (let d = 0; d <= depth; d++) path = child(path, kinds[d] === 2 ? keys[d]! : (values[d] as unknown[]).length);
            booleans!.push({ source, value: boolean, path, offset: depth < 0 ? 0 : kinds[depth] === 2 ? keyStarts[depth]! : e.valueStart });
          }
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
        if (graft && depth === 2 && e.type === E.MAPPING && e.start === graft.at && keys[0] === 'topology_template' && keys[1] === 'node_templates') graftDepth = depth;
        continue;
      case E.POP:
        // The end of a collection (or of the document).
        if (depth < 0) continue;
        value = values[depth];
        if (depth === graftDepth) {
          const entries = graft!.take();
          if (!entries) return undefined;
          const map = value as Record<string, unknown>;
          for (const key in entries) {
            if (hasOwn.call(map, key)) return undefined;
            map[key] = entries[key];
          }
          graftDepth = -1;
          grafted = true;
        }
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
  if (graft && !grafted) return undefined;
  return { value: root };
}

/**
 * The value read fast, or undefined where the library must read the text. Without `booleans`
 * (the helper thread) a YAML 1.1 boolean is such a case: the caller then reads the whole text.
 */
export function readFastOrNothing(text: string, booleans?: Yaml11Boolean[]): { value: unknown } | undefined {
  try {
    return readFast(text, undefined, booleans);
  } catch {
    return undefined;
  }
}

/**
 * Reads a piece of template YAML on another thread: `start` hands it over and returns a function
 * that waits for its value (undefined when it could not be read fast, or the thread failed), or
 * returns undefined when no thread is free to take it.
 */
export interface ParallelReader {
  /** Templates shorter than this are read on one thread (handing a piece over costs time too). */
  readonly minLength: number;
  start(text: string): (() => { value: unknown } | undefined) | undefined;
}

/**
 * Where a big template can be cut so that two threads read it: the node templates from one at
 * its middle up to the end of `node_templates` (`body`), and the rest (`head`: what comes before,
 * then what comes after). YAML's indentation rules make each node template's lines indented
 * deeper than its name, so a line at the names' indentation starts a node template, and the
 * first less indented line ends the block. Whether this `node_templates` really is the
 * topology's is settled by reading the head (the graft must land on its mapping).
 */
export function splitNodeTemplates(text: string): { head: string; body: string; graftAt: number } | undefined {
  const found = /^( *)node_templates:[ \t]*(?:#.*)?$/m.exec(text);
  if (!found) return undefined;
  const parentIndent = found[1]!.length;
  let childIndent = -1;
  let firstChild = -1;
  let blockEnd = text.length;
  // Where each line that opens a node template starts.
  const starts: number[] = [];
  for (let line = text.indexOf('\n', found.index) + 1; line > 0 && line < text.length; ) {
    const next = text.indexOf('\n', line);
    const end = next < 0 ? text.length : next;
    let i = line;
    while (i < end && text.charCodeAt(i) === 32) i++;
    const c = text.charCodeAt(i);
    const blank = i === end || c === 35 || (c === 13 && i + 1 === end);
    if (!blank) {
      const indent = i - line;
      // A tab, a sequence entry or an explicit key where a name belongs: not cut here.
      if (c === 9) return undefined;
      if (childIndent < 0) {
        if (indent <= parentIndent || c === 45 || c === 63) return undefined;
        childIndent = indent;
        firstChild = i;
      }
      if (indent < childIndent) {
        blockEnd = line;
        break;
      }
      if (indent === childIndent) {
        if (c === 45 || c === 63 || c === 58) return undefined;
        starts.push(line);
      }
    }
    line = next < 0 ? -1 : next + 1;
  }
  if (starts.length < 2) return undefined;
  // The body a little under half of the text: the other thread also hands its value back.
  const target = blockEnd - text.length * 0.45;
  let cut = starts[1]!;
  for (const start of starts) if (start > starts[0]! && Math.abs(start - target) < Math.abs(cut - target)) cut = start;
  return { head: text.slice(0, cut) + text.slice(blockEnd), body: text.slice(cut, blockEnd), graftAt: firstChild };
}

/**
 * Reads template YAML. Most templates are read from js-yaml's event stream, several times
 * faster than the `yaml` library; positions are then found (by the library) only if a
 * diagnostic needs them (a YAML 1.1 boolean's warning knows its own). Templates with duplicate
 * keys, YAML 1.1-only numbers, anchors, tags or syntax errors are read by the library straight
 * away, which warns or reports with positions.
 */
export function loadYaml(text: string, file: string, diags: Diagnostics, styleWarnings = true, parallel?: ParallelReader): LoadedYaml {
  let fast: { value: unknown } | undefined;
  const booleans: Yaml11Boolean[] = [];
  const split = parallel && text.length >= parallel.minLength ? splitNodeTemplates(text) : undefined;
  if (split) fast = readInTwo(split, parallel!);
  // Syntax errors throw: the library reports them, with positions.
  fast ??= readFastOrNothing(text, booleans);
  if (!fast) return loadWithLibrary(text, file, diags, styleWarnings);
  diags.addFile(file, () => loadWithLibrary(text, file, new Diagnostics(), false).positions, text);
  if (styleWarnings) for (const b of booleans) diags.addAt('warning', 'YAML11_BOOLEAN', yaml11BooleanMessage(b.source, b.value), file, b.path, b.offset);
  return { value: fast.value ?? null, positions: new Map(), ok: true };
}

/** A split template read by two threads: the body there, the head here, the body grafted in. */
function readInTwo(split: { head: string; body: string; graftAt: number }, parallel: ParallelReader): { value: unknown } | undefined {
  const wait = parallel.start(split.body);
  if (!wait) return undefined;
  let taken = false;
  const take = () => {
    taken = true;
    const body = wait();
    return body && body.value !== null && typeof body.value === 'object' && !Array.isArray(body.value) ? (body.value as Record<string, unknown>) : undefined;
  };
  try {
    return readFast(split.head, { at: split.graftAt, take });
  } catch {
    return undefined;
  } finally {
    // The other thread's answer is always collected, so it cannot be taken for a later one.
    if (!taken) wait();
  }
}

/** The `yaml` library's reading, converted the same way (exported for the differential test). */
export function loadWithLibrary(text: string, file: string, diags: Diagnostics, styleWarnings = true): LoadedYaml {
  const positions: PositionIndex = new Map();
  diags.addFile(file, positions, text);
  const doc = parseDocument(text, { uniqueKeys: false, version: '1.1', prettyErrors: false, merge: true });
  let ok = true;
  for (const error of doc.errors) {
    ok = false;
    diags.addAt('error', 'YAML_SYNTAX', error.message.split('\n')[0] ?? error.message, file, '', error.pos[0]);
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
        diags.warn('YAML11_BOOLEAN', yaml11BooleanMessage(source, value), { file, path });
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
