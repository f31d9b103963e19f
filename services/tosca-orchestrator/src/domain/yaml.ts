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

/**
 * Plain scalars that YAML 1.1 reads differently from YAML 1.2 (booleans such as yes/no/on/off,
 * octal numbers, exponents without a dot). A template with none of them reads the same
 * under both, so js-yaml (YAML 1.2 core schema) can read it.
 */
const YAML_1_1_ONLY = /(^|[\s[{,:-])(yes|no|on|off|0[0-7]+|[-+]?\d+[eE][-+]?\d+)(?=[ \t]*(?:$|[,\]}#:]))/im;

/**
 * Reads template YAML. Most templates are read by js-yaml, several times faster than the
 * `yaml` library; positions are then found (by the library) only if a diagnostic needs
 * them. Templates with duplicate keys, YAML 1.1-only scalars or syntax errors are read by
 * the library straight away, which warns or reports with positions.
 */
export function loadYaml(text: string, file: string, diags: Diagnostics, styleWarnings = true): LoadedYaml {
  if (!YAML_1_1_ONLY.test(text)) {
    let value: unknown;
    try {
      // Throws on duplicate keys and syntax errors: the library reports those, with positions.
      value = jsyaml.load(text, { schema: jsyaml.CORE_SCHEMA, filename: file });
    } catch {
      return loadWithLibrary(text, file, diags, styleWarnings);
    }
    diags.addFile(file, () => loadWithLibrary(text, file, new Diagnostics(), false).positions, text);
    return { value: value ?? null, positions: new Map(), ok: true };
  }
  return loadWithLibrary(text, file, diags, styleWarnings);
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
