// What Lapis' built-in INDIGO types keep of INDIGO's public custom types file
// (indigo-dc/tosca-types, Apache License 2.0): for each type, what a template is validated
// against (derivation, properties and attributes with their types, defaults and constraints,
// capabilities, requirements, artifacts, interfaces and their operations), and nothing else
// (descriptions, metadata, the operations' Ansible implementations and inputs). The generator
// (generate.ts) writes the built-ins from it; the differential test compares the two.
import { isDict, typeSections, type Dict } from '../../src/domain/registry';

const dropped = new Set(['description', 'metadata']);

/** A property, attribute or data-type definition, without its description. */
function definition(raw: unknown): unknown {
  if (!isDict(raw)) return raw;
  const out: Dict = {};
  for (const [k, v] of Object.entries(raw)) if (!dropped.has(k) && k !== 'status') out[k] = isDict(v) ? definition(v) : v;
  return out;
}

const definitions = (raw: unknown): Dict | undefined => {
  if (!isDict(raw)) return undefined;
  const out: Dict = {};
  for (const [k, v] of Object.entries(raw)) out[k] = definition(v);
  return out;
};

/** Interfaces: their type and operation names (Lapis does not run INDIGO's Ansible roles). */
function interfaces(raw: unknown): Dict | undefined {
  if (!isDict(raw)) return undefined;
  const out: Dict = {};
  for (const [name, def] of Object.entries(raw)) {
    const kept: Dict = {};
    if (isDict(def)) {
      if (typeof def.type === 'string') kept.type = def.type;
      for (const op of Object.keys(def)) if (op !== 'type' && op !== 'inputs' && !dropped.has(op)) kept[op] = {};
    }
    out[name] = kept;
  }
  return out;
}

/** Artifacts: their file and type. */
function artifacts(raw: unknown): Dict | undefined {
  if (!isDict(raw)) return undefined;
  const out: Dict = {};
  for (const [name, def] of Object.entries(raw))
    out[name] = isDict(def) ? Object.fromEntries(Object.entries(def).filter(([k]) => k === 'file' || k === 'type')) : def;
  return out;
}

/** One type as the built-ins keep it. */
export function keptType(raw: unknown): Dict {
  const def = isDict(raw) ? raw : {};
  const out: Dict = {};
  for (const [key, value] of Object.entries(def)) {
    if (dropped.has(key) || value === null || value === undefined) continue;
    if (key === 'properties' || key === 'attributes') out[key] = definitions(value);
    else if (key === 'capabilities') out[key] = definitions(value);
    else if (key === 'requirements') out[key] = Array.isArray(value) ? value.map((r) => definition(r)) : value;
    else if (key === 'interfaces') out[key] = interfaces(value);
    else if (key === 'artifacts') out[key] = artifacts(value);
    else out[key] = value;
  }
  return out;
}

/** Every type of a types document, by section, as the built-ins keep it. */
export function keptTypes(doc: Dict): Record<string, Record<string, Dict>> {
  const out: Record<string, Record<string, Dict>> = {};
  for (const section of Object.keys(typeSections)) {
    const defs = doc[section];
    if (!isDict(defs) || !Object.keys(defs).length) continue;
    out[section] = {};
    for (const [name, def] of Object.entries(defs)) out[section]![name] = keptType(def);
  }
  return out;
}
