// YAML with positions, read the way the established TOSCA tools (PyYAML, YAML 1.1) read it:
// yes/no/on/off are booleans, duplicate keys keep the last value (with a warning), implicit
// pairs in flow sequences become one-entry maps. Every map entry and sequence item records its
// offset under its document path.
import type * as YamlLibrary from 'yaml';
import type { Scalar, Node } from 'yaml';
import * as jsyaml from 'js-yaml';
import { child, Diagnostics, type PositionIndex } from './diagnostics';
import { bendToYaml12, originalOffset } from './yaml11';

export interface LoadedYaml {
  value: unknown;
  positions: PositionIndex;
  ok: boolean;
}

const yaml11Booleans = /^(yes|no|on|off)$/i;
/** The YAML 1.1 booleans PyYAML reads (as does the library), beyond true/false. */
const YAML11_BOOLEAN: ReadonlyMap<string, boolean> = new Map([
  ['yes', true],
  ['Yes', true],
  ['YES', true],
  ['on', true],
  ['On', true],
  ['ON', true],
  ['no', false],
  ['No', false],
  ['NO', false],
  ['off', false],
  ['Off', false],
  ['OFF', false],
]);
const yaml11BooleanMessage = (source: string, value: boolean) =>
  `"${source}" read as the YAML 1.1 boolean ${value}; write ${value} instead`;

/** A YAML 1.1 boolean met by the fast reading: where to warn about it. */
interface Yaml11Boolean {
  source: string;
  value: boolean;
  path: string;
  /** Where the library's positions put it: the key of a mapping value, or the item itself. */
  offset: number;
}

// js-yaml's members, read once (not through the module namespace on every scalar).
const { parseEvents, getScalarValue, CORE_SCHEMA, EVENT_ID: E, SCALAR_STYLE_PLAIN, YAMLException } = jsyaml;

/**
 * The `yaml` library (about 70 modules), loaded when a file first needs it: a valid template
 * read fast never does, so `tosca validate` starts without it.
 */
let yamlLibrary: typeof YamlLibrary | undefined;
const library = (): typeof YamlLibrary => (yamlLibrary ??= require('yaml') as typeof YamlLibrary);

/**
 * Bounds on what a template's YAML may make us do (a template comes from a tenant). Nesting:
 * js-yaml's own limit (its default), kept by the library reading too, since our conversion and
 * the validation after it recurse. Aliases: the `yaml` library's own alias limit (its default
 * for toJS), plus a cap on the values that aliases add in all (aliases that each stay under
 * the library's limit can still multiply a big document a hundredfold): at most as many as the
 * text has characters, which no alias-free text of that length exceeds, or 100,000 for small
 * texts, so reusing a block of settings a few dozen times stays fine.
 */
export const MAX_DEPTH = 100;
export const MAX_ALIAS_COUNT = 100;
const MIN_ALIASED_VALUES = 100_000;

/** The diagnostics of a text refused for its bounds (not for what it says). */
export const LIMIT_CODES: ReadonlySet<string> = new Set(['YAML_TOO_DEEP', 'YAML_ALIAS_LIMIT', 'TEMPLATE_TOO_LARGE']);
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
  const events = parseEvents(text, { maxDepth: MAX_DEPTH });
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
        if (
          graft &&
          depth === 2 &&
          e.type === E.MAPPING &&
          e.start === graft.at &&
          keys[0] === 'topology_template' &&
          keys[1] === 'node_templates'
        )
          graftDepth = depth;
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
  if (!fast) {
    try {
      fast = readFast(text, undefined, booleans);
    } catch (error) {
      // Too deep: said here, where it was found; the library would only take long to say the same.
      // A syntax error: the library reports it, with positions, unless the text nests so deep
      // after it (js-yaml stopped there) that the library would take seconds and GBs to say so.
      const tooDeepAt =
        error instanceof YAMLException && error.mark && /maxDepth/.test(error.reason)
          ? error.mark.position
          : nestsDeeperThan(text, LIBRARY_MAX_DEPTH);
      if (tooDeepAt !== undefined) {
        diags.addFile(file, new Map(), text);
        diags.addAt('error', 'YAML_TOO_DEEP', tooDeepMessage, file, '', tooDeepAt);
        return { value: undefined, positions: new Map(), ok: false };
      }
    }
  }
  if (!fast) return loadLenient(text, file, diags, styleWarnings);
  diags.addFile(file, () => loadWithLibrary(text, file, new Diagnostics(), false).positions, text);
  if (styleWarnings)
    for (const b of booleans) diags.addAt('warning', 'YAML11_BOOLEAN', yaml11BooleanMessage(b.source, b.value), file, b.path, b.offset);
  return { value: fast.value ?? null, positions: new Map(), ok: true };
}

/**
 * The library's reading; a text it refuses that YAML 1.1 readers accept (see yaml11.ts) is read
 * bent into YAML 1.2, with a warning where it bends the spec and positions in the original.
 */
function loadLenient(text: string, file: string, diags: Diagnostics, styleWarnings: boolean): LoadedYaml {
  const strict = new Diagnostics();
  const loaded = loadWithLibrary(text, file, strict, styleWarnings);
  const bent = loaded.ok ? undefined : bendToYaml12(text);
  const lenientDiags = new Diagnostics();
  const lenient = bent && loadWithLibrary(bent.text, file, lenientDiags, styleWarnings);
  if (!bent || !lenient?.ok) {
    diags.adopt(file, strict);
    return loaded;
  }
  const positions: PositionIndex = new Map();
  for (const [path, offset] of lenient.positions) positions.set(path, originalOffset(bent, offset));
  diags.addFile(file, positions, text);
  for (const b of bent.bends) diags.addAt('warning', 'YAML11_LENIENCY', b.message, file, '', b.offset);
  const lineStarts = [0];
  for (let i = bent.text.indexOf('\n'); i >= 0; i = bent.text.indexOf('\n', i + 1)) lineStarts.push(i + 1);
  for (const d of lenientDiags.list) {
    const offset = originalOffset(bent, (lineStarts[d.line - 1] ?? 0) + d.column - 1);
    diags.addAt(d.severity, d.code, d.message, file, d.path, offset);
  }
  return { value: lenient.value, positions, ok: true };
}

/** A split template read by two threads: the body there, the head here, the body grafted in. */
function readInTwo(split: { head: string; body: string; graftAt: number }, parallel: ParallelReader): { value: unknown } | undefined {
  const wait = parallel.start(split.body);
  if (!wait) return undefined;
  let taken = false;
  const take = () => {
    taken = true;
    const body = wait();
    return body && body.value !== null && typeof body.value === 'object' && !Array.isArray(body.value)
      ? (body.value as Record<string, unknown>)
      : undefined;
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

const tooDeepMessage = `collections nested more than ${MAX_DEPTH} deep`;

/**
 * What the estimate below may reach before the library is spared the text: well over the real
 * limit (the estimate may count a level or two more on a line; the conversion keeps the exact
 * limit), well under the thousands of levels that cost the library seconds.
 */
const LIBRARY_MAX_DEPTH = 4 * MAX_DEPTH;
/** The lexer's tokens that stand for no text (document start, scalar, flow error end). */
const CONTROL_TOKENS = new Set(['\u0002', '\u001f', '\u0018']);

/**
 * Where the nesting of a text js-yaml could not read passes `max`, by the `yaml` library's own
 * lexer (fast: it builds nothing): flow collections by their brackets, block ones by the
 * indicators (- ? :) on each line, a line's levels being dropped when a line as little indented
 * comes. An estimate, on the generous side, of what the library's parser would build.
 */
function nestsDeeperThan(text: string, max: number): number | undefined {
  // Open lines of block collections: their indentation and the levels each opened.
  const indents: number[] = [];
  const levels: number[] = [];
  let block = 0;
  let flow = 0;
  let offset = 0;
  let lineStart = true;
  let indent = 0;
  for (const token of new (library().Lexer)().lex(text)) {
    if (CONTROL_TOKENS.has(token)) continue;
    const at = offset;
    offset += token.length;
    if (flow === 0) {
      if (token === '\n' || token === '\r\n') {
        lineStart = true;
        indent = 0;
        continue;
      }
      if (token === '---' || token === '...') {
        indents.length = levels.length = block = 0;
        continue;
      }
      if (lineStart) {
        const spaces = token.length - token.trimStart().length;
        indent += spaces;
        if (spaces === token.length || token.startsWith('#', spaces)) continue;
        lineStart = false;
        while (indents.length && indents[indents.length - 1]! >= indent) {
          indents.pop();
          block -= levels.pop()!;
        }
        indents.push(indent);
        levels.push(0);
      }
      if (token === '-' || token === '?' || token === ':') {
        levels[levels.length - 1]!++;
        block++;
      }
    }
    if (token === '[' || token === '{') flow++;
    else if ((token === ']' || token === '}') && flow > 0) flow--;
    if (block + flow > max) return at;
  }
  return undefined;
}

/** A bound of the reading was passed (thrown out of the conversion): where, and which. */
class OverLimit {
  constructor(
    readonly code: string,
    readonly message: string,
    readonly offset: number,
  ) {}
}

/** The `yaml` library's reading, converted the same way (exported for the differential test). */
export function loadWithLibrary(text: string, file: string, diags: Diagnostics, styleWarnings = true): LoadedYaml {
  const { isAlias, isCollection, isMap, isPair, isScalar, isSeq, parseDocument } = library();
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

  // Aliases are held to the `yaml` library's own rule, the one its toJS applies with its default
  // maxAliasCount: an alias is refused ("resource exhaustion attack") once its anchor's uses times
  // the anchor's weight (the aliases inside it, weighted the same way) pass the limit. Applied
  // here rather than through Alias.resolve: the library finds each alias's anchor by scanning
  // every anchor and alias before it, and an anchor's weight by walking the whole document once
  // per inner alias; quadratic (2,000 anchors in a 50 KB template took 6 s, 20,000 took 74 s).
  // Here an alias's anchor is the last one of its name met so far in document order (as the
  // library resolves it), and a weight comes from the aliases already resolved.
  const anchors = new Map<Node, { count: number; weight: number }>();
  const anchorsByName = new Map<string, Node>();
  const resolved = new Map<Node, Node>();
  const weight = (node: unknown): number => {
    if (isAlias(node)) {
      const target = resolved.get(node);
      const data = target && anchors.get(target);
      return data ? data.count * data.weight : 0;
    }
    if (isCollection(node)) return (node.items as unknown[]).reduce<number>((max, item) => Math.max(max, weight(item)), 0);
    if (isPair(node)) return Math.max(weight(node.key), weight(node.value));
    return 1;
  };
  let aliasedLeft = Math.max(MIN_ALIASED_VALUES, text.length);
  // Inside an alias (each one is converted in full, its values counted): where it is, else -1.
  let aliasAt = -1;

  const convert = (node: Node | null | undefined, path: string, depth = 0): unknown => {
    if (node == null) return null;
    if (aliasAt >= 0 && --aliasedLeft < 0)
      throw new OverLimit('YAML_ALIAS_LIMIT', `aliases expand to more than ${Math.max(MIN_ALIASED_VALUES, text.length)} values`, aliasAt);
    if (isAlias(node)) {
      const start = node.range?.[0] ?? 0;
      const target = anchorsByName.get(node.source);
      // No anchor of that name before it: null, as the library leaves it unresolved.
      if (!target) return null;
      const data = anchors.get(target)!;
      data.count++;
      // Worked out at the anchor's first use, as the library does; at least 1, where the library
      // would work out an empty collection's 0 again at every use.
      if (data.weight === 0) data.weight = Math.max(1, weight(target));
      if (data.count * data.weight > MAX_ALIAS_COUNT)
        throw new OverLimit(
          'YAML_ALIAS_LIMIT',
          `alias *${node.source}: used too often for what it holds (the yaml library's alias limit, ${MAX_ALIAS_COUNT})`,
          start,
        );
      if (aliasAt < 0) resolved.set(node, target);
      const outer = aliasAt;
      if (outer < 0) aliasAt = start;
      try {
        return convert(target, path, depth);
      } finally {
        aliasAt = outer;
      }
    }
    // Met in document order (not again inside an alias): the anchor an alias after it names.
    if (node.anchor && aliasAt < 0) {
      anchorsByName.set(node.anchor, node);
      anchors.set(node, { count: 1, weight: 0 });
    }
    if (isScalar(node)) return scalar(node, path);
    // Collections nest; aliases can nest them further than the text shows.
    if (++depth > MAX_DEPTH) throw new OverLimit('YAML_TOO_DEEP', tooDeepMessage, aliasAt >= 0 ? aliasAt : (node.range?.[0] ?? 0));
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
        out[key] = convert(pair.value as Node | null, keyPath, depth);
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
          return { [key]: convert(item.value as Node | null, child(itemPath, key), depth) };
        }
        const n = item as Node | null;
        if (n?.range) positions.set(itemPath, n.range[0]);
        return convert(n, itemPath, depth);
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

  try {
    return { value: convert(doc.contents as Node | null, ''), positions, ok };
  } catch (error) {
    if (!(error instanceof OverLimit)) throw error;
    diags.addAt('error', error.code, error.message, file, '', error.offset);
    return { value: undefined, positions, ok: false };
  }
}
