// Which capability of a node template a requirement means, and whether a node template
// satisfies a node_filter (property and capability property clauses).
import type { NodeTemplate } from '../model';
import { isDict, type Dict } from '../registry';
import { isFunction, violates } from '../values';
import type { ValidationRun } from './run';

/** The name of the capability of `node` that is named `wanted` or whose type derives from it. */
export function findCapability(run: ValidationRun, node: NodeTemplate, wanted: string | undefined): string | undefined {
  const { registry } = run;
  if (!node.entry) return undefined;
  const caps = registry.capabilities(node.entry);
  if (!wanted) return caps.has('feature') ? 'feature' : ([...caps.keys()][0] ?? 'feature');
  if (caps.has(wanted)) return wanted;
  // By type: found once per node type and capability type (names that are no capability type
  // are not remembered, so the per-process caches cannot grow with them).
  const byType = registry.memo('capability-by-type', node.entry, () => new Map<string, string | null>());
  const known = byType.get(wanted);
  if (known !== undefined) return known ?? undefined;
  let found: string | null = null;
  for (const [name, def] of caps) {
    if (registry.derives('capability', def.type, wanted)) {
      found = name;
      break;
    }
  }
  if (registry.resolve('capability', wanted)) byType.set(wanted, found);
  return found ?? undefined;
}

/** What in `node` fails the node_filter (empty when it matches). */
export function filterMismatch(run: ValidationRun, node: NodeTemplate, filter: Dict): string[] {
  const { registry } = run;
  const problems: string[] = [];
  const checkClauses = (values: Dict, clauses: unknown, prefix: string, defs: Map<string, Dict>) => {
    const list = Array.isArray(clauses) ? clauses : isDict(clauses) ? Object.entries(clauses).map(([k, v]) => ({ [k]: v })) : [];
    for (const item of list) {
      if (!isDict(item)) continue;
      for (const [prop, cons] of Object.entries(item)) {
        const value = values[prop];
        if (isFunction(value)) continue;
        const consList = Array.isArray(cons) ? cons : [cons];
        const type = String(defs.get(prop)?.type ?? 'string');
        const base = registry.primitiveBase(type) ?? type;
        for (const c of consList) {
          const clause = isDict(c) ? c : { equal: c };
          if (value === undefined || value === null) {
            problems.push(`${prefix}${prop} is not set`);
            break;
          }
          const message = violates(value, clause, base);
          if (message) problems.push(`${prefix}${prop} ${JSON.stringify(value)} ${message}`);
        }
      }
    }
  };
  const entry = node.entry!;
  if (filter.properties !== undefined) checkClauses(node.properties, filter.properties, '', registry.properties(entry));
  const capFilters = Array.isArray(filter.capabilities)
    ? filter.capabilities
    : isDict(filter.capabilities)
      ? Object.entries(filter.capabilities).map(([k, v]) => ({ [k]: v }))
      : [];
  for (const item of capFilters) {
    if (!isDict(item)) continue;
    for (const [capName, cf] of Object.entries(item)) {
      const name = findCapability(run, node, capName);
      if (!name) {
        problems.push(`it has no capability ${capName}`);
        continue;
      }
      const cap = node.capabilities[name]!;
      const ctype = registry.resolve('capability', cap.type);
      if (isDict(cf)) checkClauses(cap.properties, cf.properties, `${name}.`, ctype ? registry.properties(ctype) : new Map());
    }
  }
  return problems;
}
