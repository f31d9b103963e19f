// YAML that PyYAML (and the YAML 1.1 readers TOSCA tools are built on) reads but YAML 1.2 refuses,
// bent into YAML 1.2 so the `yaml` library reads it the same way. Two bends, both in published
// types files (ETSI NFV SOL001's among them):
// - the lines of a flow collection or of a quoted scalar continuing less indented than the block
//   they are in (PyYAML does not look at indentation inside them): indented just enough;
// - a comment right after a flow collection or a quoted scalar ("[a, b]#note"): YAML 1.2 wants
//   a space before the "#", which is inserted.
// Only spaces are inserted, never anywhere they change a value (flow and quoted-scalar line breaks
// fold away the indentation), so the bent text reads as PyYAML reads the original; each insertion
// is remembered to map positions back to the original text. A heuristic scanner, used only on a
// text the library has refused, whose result the library then reads: where it guesses wrong, the
// library's own errors stand.

export interface Bend {
  /** Offset in the original text. */
  offset: number;
  message: string;
}

export interface Bent {
  text: string;
  /** Spaces inserted before these original offsets, in order. */
  inserts: { at: number; count: number }[];
  bends: Bend[];
}

const INDENT_MESSAGE =
  'this line continues a flow collection or a quoted string less indented than its block: YAML 1.1 readers (PyYAML) accept it, YAML 1.2 does not; indent it';
const COMMENT_MESSAGE =
  'a comment right after a collection or a quoted string: YAML 1.1 readers (PyYAML) accept it, YAML 1.2 wants a space before "#"';

/** Where a token may start: a quote, a bracket or a block scalar indicator there is one, not part of a plain scalar. */
const tokenStart = (prevNonSpace: string | undefined) => prevNonSpace === undefined || ':-[{,?'.includes(prevNonSpace);

/** The bent text, or undefined when nothing needed bending. */
export function bendToYaml12(text: string): Bent | undefined {
  const inserts: { at: number; count: number }[] = [];
  const bends: Bend[] = [];
  let flow = 0;
  let quote: '"' | "'" | undefined;
  /** The column flow or quoted continuation lines must pass: the block's indentation plus one. */
  let required = 0;
  /** Inside a block scalar: lines indented more than this (or blank) are its content. */
  let blockScalarParent: number | undefined;
  let i = 0;
  while (i < text.length) {
    // A line: its indentation first.
    const lineStart = i;
    let indent = 0;
    while (text[i] === ' ') {
      i++;
      indent++;
    }
    const blank = i >= text.length || text[i] === '\n' || text[i] === '\r';
    if (blockScalarParent !== undefined) {
      if (blank || indent > blockScalarParent || text[i] === '#') {
        i = nextLine(text, i);
        continue;
      }
      blockScalarParent = undefined;
    }
    if (!blank && (flow > 0 || quote) && indent < required) {
      inserts.push({ at: i, count: required - indent });
      bends.push({ offset: lineStart, message: INDENT_MESSAGE });
    }
    // The block's indentation, for what opens on this line: past any "- " indicators.
    let blockIndent = indent;
    if (flow === 0 && !quote) {
      let j = i;
      while (text[j] === '-' && (text[j + 1] === ' ' || text[j + 1] === '\t')) {
        j += 2;
        while (text[j] === ' ') j++;
      }
      blockIndent = j - lineStart;
    }
    let prevNonSpace: string | undefined;
    let justClosed = false;
    for (; i < text.length && text[i] !== '\n'; i++) {
      const c = text[i]!;
      if (quote === '"') {
        if (c === '\\') i++;
        else if (c === '"') {
          quote = undefined;
          justClosed = true;
          prevNonSpace = c;
        }
        continue;
      }
      if (quote === "'") {
        if (c === "'" && text[i + 1] === "'") i++;
        else if (c === "'") {
          quote = undefined;
          justClosed = true;
          prevNonSpace = c;
        }
        continue;
      }
      if (c === '#') {
        const before = text[i - 1];
        if (i === lineStart || before === ' ' || before === '\t') break;
        if (justClosed) {
          inserts.push({ at: i, count: 1 });
          bends.push({ offset: i, message: COMMENT_MESSAGE });
          break;
        }
      }
      if (c === ' ' || c === '\t' || c === '\r') continue;
      const opens = flow > 0 || tokenStart(prevNonSpace);
      if ((c === '"' || c === "'") && opens) {
        if (flow === 0) required = blockIndent + 1;
        quote = c;
      } else if ((c === '[' || c === '{') && opens) {
        if (flow === 0) required = blockIndent + 1;
        flow++;
      } else if ((c === ']' || c === '}') && flow > 0) {
        flow--;
        justClosed = true;
        prevNonSpace = c;
        continue;
      } else if ((c === '|' || c === '>') && flow === 0 && tokenStart(prevNonSpace)) {
        blockScalarParent = indent;
        break;
      }
      justClosed = false;
      prevNonSpace = c;
    }
    i = nextLine(text, i);
  }
  if (!inserts.length) return undefined;
  let bent = '';
  let from = 0;
  for (const { at, count } of inserts) {
    bent += text.slice(from, at) + ' '.repeat(count);
    from = at;
  }
  return { text: bent + text.slice(from), inserts, bends };
}

function nextLine(text: string, i: number): number {
  const end = text.indexOf('\n', i);
  return end < 0 ? text.length : end + 1;
}

/** The original offset of an offset in the bent text (inserted spaces map to where they were inserted). */
export function originalOffset(bent: Bent, offset: number): number {
  let shift = 0;
  for (const { at, count } of bent.inserts) {
    const bentAt = at + shift;
    if (offset < bentAt) break;
    if (offset < bentAt + count) return at;
    shift += count;
  }
  return offset - shift;
}
