// Diagnostics collected while a template is parsed and validated: every problem at once, each
// pointing at file:line:column and at a path inside the document.
export type Severity = 'error' | 'warning';

export interface Diagnostic {
  severity: Severity;
  code: string;
  message: string;
  file: string;
  line: number;
  column: number;
  path: string;
  /** The given input whose value this is about (its name), where the fault is the value, not the template. */
  input?: string;
}

/** Where a value sits: the file it came from and its path in that file's document. */
export interface Loc {
  file: string;
  path: string;
}

/** Positions of one loaded file: document path -> offset in its text. */
export type PositionIndex = Map<string, number>;

interface FileIndex {
  /** Built when first needed (a valid template never needs it). */
  positions: PositionIndex | (() => PositionIndex);
  text: string;
  lineStarts?: number[];
}

/** 1-based line and column of an offset (line starts computed once per file, when needed). */
function lineColumn(file: FileIndex, offset: number): [number, number] {
  if (!file.lineStarts) {
    const starts = [0];
    for (let i = file.text.indexOf('\n'); i >= 0; i = file.text.indexOf('\n', i + 1)) starts.push(i + 1);
    file.lineStarts = starts;
  }
  const starts = file.lineStarts;
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return [lo + 1, offset - starts[lo]! + 1];
}

export class Diagnostics {
  readonly list: Diagnostic[] = [];
  private readonly files = new Map<string, FileIndex>();

  addFile(file: string, positions: PositionIndex | (() => PositionIndex), text: string): void {
    this.files.set(file, { positions, text });
  }

  /** Takes over what another collection knows of `file`: its positions and its diagnostics. */
  adopt(file: string, from: Diagnostics): void {
    const index = from.files.get(file);
    if (index) this.files.set(file, index);
    for (const d of from.list) this.list.push({ ...d });
  }

  /** Line and column of an offset in a file. */
  position(file: string, offset: number): [number, number] {
    const index = this.files.get(file);
    return index ? lineColumn(index, offset) : [1, 1];
  }

  /** The position of `path` in `file`, or of its nearest ancestor that has one. */
  locate(file: string, path: string): [number, number] {
    const index = this.files.get(file);
    if (!index) return [1, 1];
    if (typeof index.positions === 'function') index.positions = index.positions();
    let current = path;
    for (;;) {
      const found = index.positions.get(current);
      if (found !== undefined) return lineColumn(index, found);
      if (!current) return [1, 1];
      current = parentPath(current);
    }
  }

  add(severity: Severity, code: string, message: string, at: Loc): void {
    const [line, column] = this.locate(at.file, at.path);
    this.list.push({ severity, code, message, file: at.file, line, column, path: at.path });
  }

  /** A diagnostic at a known offset of a file (no position index needed). */
  addAt(severity: Severity, code: string, message: string, file: string, path: string, offset: number): void {
    const [line, column] = this.position(file, offset);
    this.list.push({ severity, code, message, file, line, column, path });
  }

  error(code: string, message: string, at: Loc): void {
    this.add('error', code, message, at);
  }

  warn(code: string, message: string, at: Loc): void {
    this.add('warning', code, message, at);
  }

  get errorCount(): number {
    return this.list.filter((d) => d.severity === 'error').length;
  }

  sorted(): Diagnostic[] {
    return [...this.list].sort(
      (a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column || a.code.localeCompare(b.code),
    );
  }
}

export function parentPath(path: string): string {
  if (path.endsWith(']')) {
    const open = path.lastIndexOf('[');
    return path.slice(0, open);
  }
  const dot = path.lastIndexOf('.');
  return dot < 0 ? '' : path.slice(0, dot);
}

export const child = (path: string, key: string | number): string =>
  typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;

/**
 * A location inside another, its path joined only when read: validation makes one for every
 * value it looks at, and a valid template never reads most of them.
 */
class ChildLoc implements Loc {
  readonly file: string;
  private joined: string | undefined;

  constructor(
    private readonly parent: Loc,
    private readonly key: string | number,
  ) {
    this.file = parent.file;
  }

  get path(): string {
    if (this.joined === undefined) this.joined = child(this.parent.path, this.key);
    return this.joined;
  }

  toJSON(): Loc {
    return { file: this.file, path: this.path };
  }
}

export const at = (loc: Loc, key: string | number): Loc => new ChildLoc(loc, key);

export const formatDiagnostic = (d: Diagnostic): string =>
  `${d.file}:${d.line}:${d.column}: ${d.severity}: ${d.message} [${d.code}] (${d.path})`;
