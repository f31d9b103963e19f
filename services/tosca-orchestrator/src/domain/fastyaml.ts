// A fast reader for the YAML that TOSCA templates are made of: block maps and sequences,
// compact maps in sequences, flow collections (also over several lines, with implicit pairs),
// plain/quoted scalars with YAML 1.1 resolution, literal and folded block scalars, comments.
// Anything else (anchors, aliases, tags, complex keys, multi-line plain scalars, several
// documents, tabs in indentation, ...) throws Unsupported and the full `yaml` library reads the
// file instead, so the result is always the same; a differential test keeps them in step.
// It records the offset of every map key and sequence item under its document path.
export class Unsupported extends Error {}

/** Thrown by a reading without positions that found something to warn about (it needs paths). */
export class NeedsPositions extends Error {}

export interface FastResult {
  value: unknown;
  /** path -> offset */
  positions: Map<string, number>;
  /** Duplicate keys: [path, offset]. */
  duplicates: [string, number][];
  /** YAML 1.1 booleans written yes/no/on/off: [path, offset, source]. */
  yaml11Booleans: [string, number, string][];
}

const nope = (why: string): never => {
  throw new Unsupported(why);
};

const childPath = (path: string, key: string | number): string =>
  typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;

const boolTrue = new Set(['true', 'True', 'TRUE', 'yes', 'Yes', 'YES', 'on', 'On', 'ON']);
const boolFalse = new Set(['false', 'False', 'FALSE', 'no', 'No', 'NO', 'off', 'Off', 'OFF']);
const nulls = new Set(['', '~', 'null', 'Null', 'NULL']);
const intDec = /^[-+]?(?:0|[1-9][0-9_]*)$/;
const intHex = /^[-+]?0x[0-9a-fA-F_]+$/;
const intOct = /^[-+]?0[0-7_]+$/;
const intBin = /^[-+]?0b[01_]+$/;
const float = /^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?$/;
const floatExp = /^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$/;
const sexagesimal = /^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$/;

/** A plain scalar read as YAML 1.1 does (timestamps stay strings, as the loader keeps them). */
export function resolvePlain(s: string): unknown {
  if (nulls.has(s)) return null;
  if (boolTrue.has(s)) return true;
  if (boolFalse.has(s)) return false;
  if (s.length === 1 && /[yYnN]/.test(s)) return s;
  const c = s.charCodeAt(0);
  // Only strings that start like a number can be numbers.
  if (!((c >= 48 && c <= 57) || c === 45 || c === 43 || c === 46)) return s;
  if (intDec.test(s)) return s.includes('_') ? Number(s.replace(/_/g, '')) : Number(s);
  if (sexagesimal.test(s)) nope('sexagesimal number');
  if (intHex.test(s)) return parseInt(s.replace(/_/g, '').replace('0x', ''), 16) * (s.startsWith('-') ? -1 : 1) || 0;
  if (intOct.test(s)) return parseInt(s.replace(/_/g, '').replace(/^([-+]?)0/, '$1'), 8);
  if (intBin.test(s)) return parseInt(s.replace(/_/g, '').replace('0b', ''), 2) * (s.startsWith('-') ? -1 : 1) || 0;
  if ((float.test(s) && /[0-9]/.test(s)) || floatExp.test(s)) return Number(s.replace(/_/g, ''));
  if (/^[-+]?\.(?:inf|Inf|INF)$/.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  if (/^\.(?:nan|NaN|NAN)$/.test(s)) return NaN;
  return s;
}

const escapes: Record<string, string> = { '0': '\0', a: '\x07', b: '\b', t: '\t', '\t': '\t', n: '\n', v: '\v', f: '\f', r: '\r', e: '\x1b', ' ': ' ', '"': '"', '/': '/', '\\': '\\', N: '\u0085', _: '\u00a0', L: '\u2028', P: '\u2029' };

/**
 * With `withPositions` false no paths are built (the fast case for a valid template); a
 * duplicate key or a YAML 1.1 boolean then throws NeedsPositions, since warnings need paths.
 */
export function fastParse(text: string, withPositions = true): FastResult {
  const positions = new Map<string, number>();
  const child = withPositions ? childPath : () => '';
  const record = withPositions ? (path: string, offset: number) => void positions.set(path, offset) : () => undefined;
  const duplicates: [string, number][] = [];
  const yaml11Booleans: [string, number, string][] = [];
  const n = text.length;
  if (text.includes('\t')) {
    // Tabs are legal inside scalars, but rare; let the full parser handle them.
    nope('tab');
  }
  if (text.includes('\r')) nope('carriage return');
  // The reader: `pos` is where the next token starts; lines are scanned on demand.
  let pos = 0;

  const lineEnd = (p: number) => {
    const e = text.indexOf('\n', p);
    return e < 0 ? n : e;
  };

  /** Where " #" starts a comment between p and end, or -1 (searching no further than end). */
  const commentIn = (p: number, end: number) => {
    for (let i = p; i < end; i++) if (text.charCodeAt(i) === 35 && text.charCodeAt(i - 1) === 32) return i - 1;
    return -1;
  };

  /** Skips blank and comment lines from the start of a line; returns the indent of the next content line (or -1 at the end). */
  const nextContent = (): number => {
    while (pos < n) {
      let p = pos;
      while (p < n && text.charCodeAt(p) === 32) p++;
      if (p >= n) {
        pos = n;
        return -1;
      }
      const ch = text[p];
      if (ch === '\n') {
        pos = p + 1;
        continue;
      }
      if (ch === '#') {
        pos = lineEnd(p) + 1;
        continue;
      }
      return p - pos;
    }
    return -1;
  };

  /** After a value on a line: only spaces and a comment may follow; moves to the next line. */
  const endOfLine = (p: number) => {
    while (p < n && text.charCodeAt(p) === 32) p++;
    if (p < n && text[p] !== '\n' && text[p] !== '#') nope(`unexpected text after a value at ${p}`);
    pos = p >= n ? n : lineEnd(p) + 1;
  };

  const scalarValue = (raw: string, path: string, at: number): unknown => {
    const v = resolvePlain(raw);
    if (typeof v === 'boolean' && /^(yes|no|on|off)$/i.test(raw)) {
      if (!withPositions) throw new NeedsPositions();
      yaml11Booleans.push([path, at, raw]);
    }
    return v;
  };

  // ------------------------------------------------------------ quoted scalars

  const readQuoted = (p: number, multiLineOk: boolean): [string, number] => {
    const q = text[p];
    let out = '';
    let i = p + 1;
    if (q === "'") {
      for (;;) {
        const j = text.indexOf("'", i);
        if (j < 0) nope('unterminated quote');
        const chunk = text.slice(i, j);
        if (chunk.includes('\n')) {
          if (!multiLineOk) nope('multi-line quoted scalar');
          nope('multi-line quoted scalar');
        }
        out += chunk;
        if (text[j + 1] === "'") {
          out += "'";
          i = j + 2;
          continue;
        }
        return [out, j + 1];
      }
    }
    for (;;) {
      const c = text[i];
      if (c === undefined || c === '\n') nope('multi-line or unterminated double-quoted scalar');
      if (c === '"') return [out, i + 1];
      if (c === '\\') {
        const e = text[i + 1]!;
        if (e in escapes) {
          out += escapes[e];
          i += 2;
        } else if (e === 'x' || e === 'u' || e === 'U') {
          const len = e === 'x' ? 2 : e === 'u' ? 4 : 8;
          const hex = text.slice(i + 2, i + 2 + len);
          if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== len) nope('bad escape');
          out += String.fromCodePoint(parseInt(hex, 16));
          i += 2 + len;
        } else nope('escape');
        continue;
      }
      out += c;
      i++;
    }
  };

  // ------------------------------------------------------------ flow collections

  const skipFlowSpace = (p: number): number => {
    for (;;) {
      const c = text[p];
      if (c === ' ' || c === '\n') p++;
      else if (c === '#' && (text[p - 1] === ' ' || text[p - 1] === '\n')) p = lineEnd(p);
      else return p;
    }
  };

  /** A plain scalar inside a flow collection: up to , ] } or ": ". */
  const readFlowPlain = (p: number): [string, number] => {
    const start = p;
    for (;;) {
      const c = text[p];
      if (c === undefined) nope('unterminated flow collection');
      if (c === ',' || c === ']' || c === '}' || c === '[' || c === '{') break;
      if (c === ':' && (text[p + 1] === ' ' || text[p + 1] === ',' || text[p + 1] === ']' || text[p + 1] === '}' || text[p + 1] === '\n')) break;
      if (c === '#' && text[p - 1] === ' ') break;
      if (c === '\n') {
        // A plain scalar continued on the next line inside flow: fold it as YAML does.
        const rest = text.slice(start, p).trimEnd();
        const nextP = skipFlowSpace(p);
        const nc = text[nextP];
        if (nc === ',' || nc === ']' || nc === '}' || nc === ':' || nc === '#') return [rest, p];
        nope('multi-line plain scalar in flow');
      }
      p++;
    }
    return [text.slice(start, p).trimEnd(), p];
  };

  const readFlowNode = (p: number, path: string): [unknown, number] => {
    const c = text[p];
    if (c === '[') return readFlowSeq(p, path);
    if (c === '{') return readFlowMap(p, path);
    if (c === '"' || c === "'") return readQuoted(p, false);
    if (c === '&' || c === '*' || c === '!' || c === '?' || c === '|' || c === '>' || c === '@' || c === '`' || c === '%') nope(`flow indicator ${c}`);
    const [raw, e] = readFlowPlain(p);
    return [scalarValue(raw, path, p), e];
  };

  const readFlowSeq = (p: number, path: string): [unknown[], number] => {
    const out: unknown[] = [];
    p = skipFlowSpace(p + 1);
    while (text[p] !== ']') {
      if (p >= n) nope('unterminated flow sequence');
      const itemPath = child(path, out.length);
      record(itemPath, p);
      const keyStart = p;
      const isQuoted = text[p] === '"' || text[p] === "'";
      let [value, e] = readFlowNode(p, itemPath);
      e = skipFlowSpace(e);
      if (text[e] === ':' && !Array.isArray(value) && (value === null || typeof value !== 'object')) {
        // An implicit pair: a one-entry map.
        const key = isQuoted ? String(value) : text.slice(keyStart, e).trimEnd();
        const valuePath = child(itemPath, key);
        record(valuePath, keyStart);
        e = skipFlowSpace(e + 1);
        let v: unknown = null;
        if (text[e] !== ',' && text[e] !== ']') [v, e] = readFlowNode(e, valuePath);
        value = { [key]: v };
        e = skipFlowSpace(e);
      }
      out.push(value);
      if (text[e] === ',') p = skipFlowSpace(e + 1);
      else if (text[e] === ']') p = e;
      else nope('bad flow sequence');
    }
    return [out, p + 1];
  };

  const readFlowMap = (p: number, path: string): [Record<string, unknown>, number] => {
    const out: Record<string, unknown> = {};
    p = skipFlowSpace(p + 1);
    while (text[p] !== '}') {
      if (p >= n) nope('unterminated flow map');
      const keyStart = p;
      let key: string;
      let e: number;
      if (text[p] === '"' || text[p] === "'") [key, e] = readQuoted(p, false);
      else if (text[p] === '[' || text[p] === '{' || text[p] === '?' || text[p] === '&' || text[p] === '*' || text[p] === '!') return nope('complex flow key');
      else [key, e] = readFlowPlain(p);
      const keyPath = child(path, key);
      if (key in out) {
        if (!withPositions) throw new NeedsPositions();
        duplicates.push([keyPath, keyStart]);
      }
      record(keyPath, keyStart);
      e = skipFlowSpace(e);
      let value: unknown = null;
      if (text[e] === ':') {
        e = skipFlowSpace(e + 1);
        if (text[e] !== ',' && text[e] !== '}') [value, e] = readFlowNode(e, keyPath);
        e = skipFlowSpace(e);
      }
      if (key === '<<') nope('merge key');
      out[key] = value;
      if (text[e] === ',') p = skipFlowSpace(e + 1);
      else if (text[e] === '}') p = e;
      else nope('bad flow map');
    }
    return [out, p + 1];
  };

  // ------------------------------------------------------------ block scalars

  const readBlockScalar = (p: number, parentIndent: number): unknown => {
    const style = text[p];
    let chomp = 'clip';
    let q = p + 1;
    if (text[q] === '-' || text[q] === '+') {
      chomp = text[q] === '-' ? 'strip' : 'keep';
      q++;
    }
    if (/[0-9]/.test(text[q] ?? '')) nope('indentation indicator');
    endOfLine(q);
    const lines: string[] = [];
    let indent = -1;
    while (pos < n) {
      const end = lineEnd(pos);
      const line = text.slice(pos, end);
      const trimmed = line.trimStart();
      const ind = line.length - trimmed.length;
      if (trimmed === '') {
        lines.push('');
        pos = end + 1;
        continue;
      }
      if (indent < 0) {
        if (ind <= parentIndent) break;
        indent = ind;
      }
      if (ind < indent) break;
      if (ind > indent && style === '>') nope('more-indented folded line');
      lines.push(line.slice(indent));
      pos = end + 1;
    }
    if (pos > n) pos = n;
    // Trailing blank lines belong to chomping, and the reader stops before the next content line.
    let trailing = 0;
    while (lines.length && lines[lines.length - 1] === '') {
      lines.pop();
      trailing++;
    }
    // Give back blank lines that the loop consumed beyond the scalar (they carry no content).
    let body: string;
    if (style === '|') body = lines.join('\n');
    else {
      body = '';
      for (let i = 0; i < lines.length; i++) {
        const l = lines[i]!;
        if (i === 0) body = l;
        else if (l === '') body += '\n';
        else body += lines[i - 1] === '' ? l : ` ${l}`;
      }
    }
    if (!lines.length) return chomp === 'keep' ? '\n'.repeat(trailing) : '';
    if (chomp === 'strip') return body;
    if (chomp === 'keep') return `${body}\n${'\n'.repeat(trailing)}`;
    return `${body}\n`;
  };

  // ------------------------------------------------------------ block collections

  /** Reads a key at p (plain or quoted); returns [key, offset after the colon] or undefined when p is not a key. */
  const readKey = (p: number): [string, number] | undefined => {
    const c = text[p];
    if (c === '"' || c === "'") {
      const [key, e] = readQuoted(p, false);
      let q = e;
      while (text[q] === ' ') q++;
      if (text[q] === ':' && (text[q + 1] === ' ' || text[q + 1] === '\n' || q + 1 >= n)) return [key, q + 1];
      return undefined;
    }
    if (c === '[' || c === '{' || c === '?' || c === '&' || c === '*' || c === '!' || c === '|' || c === '>' || c === '%' || c === '@' || c === '`') {
      if (c === '?' && (text[p + 1] === ' ' || text[p + 1] === '\n')) nope('complex key');
      if (c === '&' || c === '*' || c === '!') nope('anchor, alias or tag');
      return undefined;
    }
    const end = lineEnd(p);
    let q = p;
    for (;;) {
      const k = text.indexOf(':', q);
      if (k < 0 || k >= end) return undefined;
      if (commentIn(p, k) >= 0) return undefined;
      if (k + 1 >= n || text[k + 1] === ' ' || text[k + 1] === '\n') return [text.slice(p, k).trimEnd(), k + 1];
      q = k + 1;
    }
  };

  /** The value after "key:" or "- " at p on the current line; `indent` is the owning node's indent. */
  const readInlineValue = (p: number, indent: number, path: string, inSeq: boolean): unknown => {
    while (text[p] === ' ') p++;
    const c = text[p];
    if (p >= n || c === '\n' || c === '#') {
      pos = p >= n ? n : lineEnd(p) + 1;
      const ind = nextContent();
      if (ind < 0) return null;
      const lineStart = pos;
      const isSeq = text[lineStart + ind] === '-' && (text[lineStart + ind + 1] === ' ' || text[lineStart + ind + 1] === '\n' || lineStart + ind + 1 >= n);
      if (ind > indent || (!inSeq && ind === indent && isSeq)) return readBlock(ind, path);
      return null;
    }
    if (c === '[' || c === '{') {
      const [v, e] = c === '[' ? readFlowSeq(p, path) : readFlowMap(p, path);
      endOfLine(e);
      return v;
    }
    if (c === '"' || c === "'") {
      const [v, e] = readQuoted(p, false);
      endOfLine(e);
      return v;
    }
    if (c === '|' || c === '>') return readBlockScalar(p, indent);
    if (c === '&' || c === '*' || c === '!' || c === '%' || c === '@' || c === '`') nope(`indicator ${c}`);
    if (c === '-' && (text[p + 1] === ' ' || text[p + 1] === '\n')) nope('nested sequence on one line');
    if (c === '?' && text[p + 1] === ' ') nope('complex key');
    // A plain scalar to the end of the line (or a comment).
    const end = lineEnd(p);
    let e = end;
    const hash = commentIn(p, end);
    if (hash >= 0) e = hash;
    const raw = text.slice(p, e).trimEnd();
    if (raw.includes(': ') || raw.endsWith(':')) nope('mapping in a plain scalar');
    pos = end >= n ? n : end + 1;
    // A continuation line (more indented, not a new entry) makes a multi-line plain scalar.
    const save = pos;
    const ind = nextContent();
    if (ind > indent && !(inSeq && ind === indent)) nope('multi-line plain scalar');
    pos = save;
    return scalarValue(raw, path, p);
  };

  const readBlock = (indent: number, path: string): unknown => {
    const p = pos + indent;
    if (text[p] === '-' && (text[p + 1] === ' ' || text[p + 1] === '\n' || p + 1 >= n)) return readSeq(indent, path);
    if (readKey(p)) return readMap(indent, path, p);
    nope('a bare scalar where a block was expected');
  };

  /** A block map whose first key is at `first` (maybe mid-line, after "- "). */
  const readMap = (indent: number, path: string, first?: number): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    let p = first;
    for (;;) {
      if (p === undefined) {
        const ind = nextContent();
        if (ind !== indent) {
          if (ind > indent) nope('bad indentation');
          break;
        }
        p = pos + ind;
        if (text[p] === '-' && (text[p + 1] === ' ' || text[p + 1] === '\n')) break;
      }
      const key = readKey(p);
      if (!key) nope(`expected a key at ${p}`);
      const [k, after] = key!;
      if (k === '<<') nope('merge key');
      const keyPath = child(path, k);
      if (k in out) {
        if (!withPositions) throw new NeedsPositions();
        duplicates.push([keyPath, p]);
      }
      record(keyPath, p);
      out[k] = readInlineValue(after, indent, keyPath, false);
      p = undefined;
    }
    return out;
  };

  const readSeq = (indent: number, path: string): unknown[] => {
    const out: unknown[] = [];
    for (;;) {
      const ind = nextContent();
      if (ind !== indent) {
        if (ind > indent) nope('bad indentation');
        break;
      }
      const dash = pos + ind;
      if (!(text[dash] === '-' && (text[dash + 1] === ' ' || text[dash + 1] === '\n' || dash + 1 >= n))) break;
      const itemPath = child(path, out.length);
      let p = dash + 1;
      while (text[p] === ' ') p++;
      if (p < n && text[p] !== '\n' && text[p] !== '#') record(itemPath, p);
      else if (withPositions) {
        // The item starts on a later line: its position is where its content starts.
        const save = pos;
        pos = p >= n ? n : lineEnd(p) + 1;
        const ci = nextContent();
        if (ci > indent) positions.set(itemPath, pos + ci);
        pos = save;
      }
      const key = p < n && text[p] !== '\n' && text[p] !== '#' ? readKey(p) : undefined;
      if (key) out.push(readMap(p - pos, itemPath, p));
      else {
        const v = readInlineValue(p, indent, itemPath, true);
        if (withPositions && !positions.has(itemPath)) positions.set(itemPath, p);
        out.push(v);
      }
    }
    return out;
  };

  // ------------------------------------------------------------ document

  let ind = nextContent();
  if (ind === 0 && text.startsWith('---', pos) && (text[pos + 3] === '\n' || text[pos + 3] === ' ' || pos + 3 >= n)) {
    endOfLine(pos + 3);
    ind = nextContent();
  }
  if (ind < 0) return { value: null, positions, duplicates, yaml11Booleans };
  if (text[pos] === '%') nope('directive');
  const value = readBlock(ind, '');
  if (nextContent() >= 0) nope('content after the document');
  return { value, positions, duplicates, yaml11Booleans };
}
