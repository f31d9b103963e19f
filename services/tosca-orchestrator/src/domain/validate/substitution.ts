// substitution_mappings: the node type the topology stands for, its capabilities and
// requirements mapped onto node templates', its properties onto inputs.
import { at, type Loc } from '../diagnostics';
import { isDict } from '../registry';
import type { ValidationRun } from './run';

export function checkSubstitution(run: ValidationRun, raw: unknown, loc: Loc): void {
  const { registry, diags, topo } = run;
  if (raw === undefined || raw === null) return;
  if (!isDict(raw)) return diags.error('INVALID_FIELD', 'substitution_mappings must be a map', loc);
  const entry = run.typeRef('node', raw.node_type, at(loc, 'node_type'), 'substitution_mappings node_type');
  if (!entry) return;
  const mapping = (v: unknown): unknown[] | undefined =>
    Array.isArray(v) ? v : isDict(v) && Array.isArray(v.mapping) ? v.mapping : undefined;
  for (const section of ['capabilities', 'requirements'] as const) {
    const m = raw[section];
    if (!isDict(m)) continue;
    const known = section === 'capabilities' ? registry.capabilities(entry) : registry.requirements(entry);
    for (const [name, v] of Object.entries(m)) {
      const l = at(at(loc, section), name);
      if (!known.has(name))
        diags.error(
          section === 'capabilities' ? 'UNKNOWN_CAPABILITY' : 'UNKNOWN_REQUIREMENT',
          `substitution_mappings: ${entry.name} has no ${section.slice(0, -1).replace('capabilitie', 'capability')} "${name}"`,
          l,
        );
      const target = mapping(v);
      if (target?.length !== 2) {
        diags.error('INVALID_FIELD', `substitution_mappings ${section}.${name} must be [ node_template, name ]`, l);
        continue;
      }
      const node = topo.nodes.get(String(target[0]));
      if (!node) {
        diags.error('UNKNOWN_NODE', `substitution_mappings ${section}.${name}: "${String(target[0])}" is not a node template`, l);
        continue;
      }
      if (!node.entry) continue;
      const ok =
        section === 'capabilities'
          ? registry.capabilities(node.entry).has(String(target[1]))
          : registry.requirements(node.entry).has(String(target[1]));
      if (!ok)
        diags.error(
          section === 'capabilities' ? 'UNKNOWN_CAPABILITY' : 'UNKNOWN_REQUIREMENT',
          `substitution_mappings ${section}.${name}: node ${node.name} has no ${section === 'capabilities' ? 'capability' : 'requirement'} "${String(target[1])}"`,
          l,
        );
    }
  }
  if (isDict(raw.properties)) {
    const props = registry.properties(entry);
    for (const [name, v] of Object.entries(raw.properties)) {
      const l = at(at(loc, 'properties'), name);
      if (!props.has(name)) diags.error('UNKNOWN_PROPERTY', `substitution_mappings: ${entry.name} has no property "${name}"`, l);
      const target = mapping(v);
      if (target && target.length === 1 && !topo.inputs.has(String(target[0])))
        diags.error('UNKNOWN_INPUT', `substitution_mappings properties.${name}: input "${String(target[0])}" is not declared`, l);
    }
  }
}
