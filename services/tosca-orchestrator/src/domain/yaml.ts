// YAML with positions, read the way the established TOSCA tools (PyYAML, YAML 1.1) read it:
// yes/no/on/off are booleans, duplicate keys keep the last value (with a warning), implicit
// pairs in flow sequences become one-entry maps. Every map entry and sequence item records its
// line and column under its document path.
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, Scalar, type Node } from 'yaml';
import { child, type Diagnostics, type PositionIndex } from './diagnostics';

export interface LoadedYaml {
  value: unknown;
  positions: PositionIndex;
  ok: boolean;
}

const yaml11Booleans = /^(yes|no|on|off)$/i;

export function loadYaml(text: string, file: string, diags: Diagnostics, styleWarnings = true): LoadedYaml {
  const lineCounter = new LineCounter();
  const positions: PositionIndex = new Map();
  diags.addFile(file, positions);
  const doc = parseDocument(text, { uniqueKeys: false, version: '1.1', lineCounter, prettyErrors: false, merge: true });
  const pos = (offset: number): [number, number] => {
    const { line, col } = lineCounter.linePos(offset);
    return [line, col];
  };
  let ok = true;
  for (const error of doc.errors) {
    ok = false;
    const [line, column] = pos(error.pos[0]);
    diags.list.push({ severity: 'error', code: 'YAML_SYNTAX', message: error.message.split('\n')[0] ?? error.message, file, line, column, path: '' });
  }
  if (!ok) return { value: undefined, positions, ok };
  positions.set('', [1, 1]);

  const convert = (node: Node | null | undefined, path: string): unknown => {
    if (node == null) return null;
    if (isScalar(node)) return scalar(node, path);
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      const seen = new Set<string>();
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null;
        const key = String(isScalar(keyNode) ? scalarKey(keyNode) : keyNode == null ? '' : JSON.stringify(keyNode.toJSON()));
        const keyPath = child(path, key);
        const start = keyNode && (keyNode as Node).range ? (keyNode as Node).range![0] : undefined;
        if (seen.has(key)) {
          if (start !== undefined) positions.set(keyPath, pos(start));
          diags.warn('DUPLICATE_KEY', `duplicate key "${key}": the last value is used`, { file, path: keyPath });
        } else if (start !== undefined) positions.set(keyPath, pos(start));
        seen.add(key);
        out[key] = convert(pair.value as Node | null, keyPath);
      }
      return out;
    }
    if (isSeq(node)) {
      return node.items.map((item, index) => {
        const itemPath = child(path, index);
        if (isPair(item)) {
          // An implicit pair left as a pair: make it a one-entry map.
          const keyNode = item.key as Node | null;
          if (keyNode?.range) positions.set(itemPath, pos(keyNode.range[0]));
          const key = String(isScalar(keyNode) ? keyNode.value : '');
          return { [key]: convert(item.value as Node | null, child(itemPath, key)) };
        }
        const n = item as Node | null;
        if (n?.range) positions.set(itemPath, pos(n.range[0]));
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

  const value = convert(doc.contents as Node | null, '');
  return { value, positions, ok };
}
