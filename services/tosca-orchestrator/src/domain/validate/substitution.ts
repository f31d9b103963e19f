// substitution_mappings: the node type the topology stands for, its capabilities and
// requirements mapped onto node templates', its properties onto inputs.
import { at, type Loc } from '../diagnostics';
import { isDict, type TypeEntry } from '../registry';
import type { ValidationRun } from './run';

/** A mapping's target: [ node, name ] or [ input ], bare or under `mapping`. */
const mapping = (v: unknown): unknown[] | undefined =>
  Array.isArray(v) ? v : isDict(v) && Array.isArray(v.mapping) ? v.mapping : undefined;

export function checkSubstitution(run: ValidationRun, raw: unknown, loc: Loc): void {
  const { registry, diags, topo } = run;
  if (raw === undefined || raw === null) return;
  if (!isDict(raw)) return diags.error('INVALID_FIELD', 'substitution_mappings must be a map', loc);
  const entry = run.typeRef('node', raw.node_type, at(loc, 'node_type'), 'substitution_mappings node_type');
  if (!entry) return;
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
      const mapped =
        section === 'capabilities'
          ? registry.capabilities(node.entry).get(String(target[1]))?.type
          : registry.requirements(node.entry).get(String(target[1]))
            ? (registry.requirements(node.entry).get(String(target[1]))!.capability ?? '')
            : undefined;
      if (mapped === undefined) {
        diags.error(
          section === 'capabilities' ? 'UNKNOWN_CAPABILITY' : 'UNKNOWN_REQUIREMENT',
          `substitution_mappings ${section}.${name}: node ${node.name} has no ${section === 'capabilities' ? 'capability' : 'requirement'} "${String(target[1])}"`,
          l,
        );
        continue;
      }
      // A capability offered inside must be what the substituted type declares, or more specific; a
      // requirement inside and the substituted type's must name related capability types.
      const declared =
        section === 'capabilities' ? registry.capabilities(entry).get(name)?.type : registry.requirements(entry).get(name)?.capability;
      const related =
        !declared ||
        !mapped ||
        !registry.resolve('capability', mapped) ||
        registry.derives('capability', mapped, declared) ||
        (section === 'requirements' && registry.derives('capability', declared, mapped));
      if (!related)
        diags.error(
          'SUBSTITUTION_MISMATCH',
          `substitution_mappings ${section}.${name}: ${node.name}.${String(target[1])} is ${mapped}, not the ${declared} that ${entry.name} declares`,
          l,
        );
    }
  }
  checkSubstitutedProperties(run, entry, raw.properties, loc);
}

/**
 * The substituted type's properties: each mapped one onto a declared input of a compatible type;
 * each required one without a default given a value, by a mapping or by an input of its name
 * (as TOSCA 1.0 and 1.1 map them).
 */
function checkSubstitutedProperties(run: ValidationRun, entry: TypeEntry, raw: unknown, loc: Loc): void {
  const { registry, diags, topo } = run;
  const props = registry.properties(entry);
  const given = isDict(raw) ? raw : {};
  for (const [name, def] of props) {
    if (name in given || topo.inputs.has(name) || def.required === false || def.default !== undefined) continue;
    diags.error(
      'MISSING_REQUIRED_PROPERTY',
      `substitution_mappings: required property "${name}" of ${entry.name} is neither mapped nor an input of the topology`,
      loc,
    );
  }
  if (!isDict(raw)) return;
  for (const [name, v] of Object.entries(raw)) {
    const l = at(at(loc, 'properties'), name);
    const def = props.get(name);
    if (!def) diags.error('UNKNOWN_PROPERTY', `substitution_mappings: ${entry.name} has no property "${name}"`, l);
    const target = mapping(v);
    if (target?.length !== 1) continue;
    const input = topo.inputs.get(String(target[0]));
    if (!input) {
      diags.error('UNKNOWN_INPUT', `substitution_mappings properties.${name}: input "${String(target[0])}" is not declared`, l);
      continue;
    }
    if (typeof def?.type === 'string' && !sameValueType(run, input.type, def.type))
      diags.error(
        'SUBSTITUTION_MISMATCH',
        `substitution_mappings properties.${name}: input ${input.name} is ${input.type}, property ${name} of ${entry.name} is ${def.type}`,
        l,
      );
  }
}

/** Whether values of type `given` are values of type `wanted` (a data type or one derived from it). */
function sameValueType(run: ValidationRun, given: string, wanted: string): boolean {
  if (given === wanted) return true;
  const g = run.registry.resolve('data', given);
  const w = run.registry.resolve('data', wanted);
  if (g && w) return run.registry.derives('data', given, wanted);
  return run.registry.primitiveBase(given) === wanted;
}
