// The type system: every type by kind, resolved by full name or by the short names TOSCA
// allows (Compute, tosca:Compute), with definitions merged along derived_from.
import type { Loc } from './diagnostics';

export type Kind = 'node' | 'relationship' | 'capability' | 'data' | 'artifact' | 'interface' | 'policy' | 'group';
export type Dict = Record<string, unknown>;

export const typeSections: Record<string, Kind> = {
  node_types: 'node',
  relationship_types: 'relationship',
  capability_types: 'capability',
  data_types: 'data',
  artifact_types: 'artifact',
  interface_types: 'interface',
  policy_types: 'policy',
  group_types: 'group',
};

// The spec's short names: PortDef is tosca.datatypes.network.PortDef, Linkable
// tosca.capabilities.network.Linkable, LinksTo tosca.relationships.network.LinksTo.
const prefixes: Record<Kind, string[]> = {
  node: ['tosca.nodes.', 'tosca.nodes.network.'],
  relationship: ['tosca.relationships.', 'tosca.relationships.network.'],
  capability: ['tosca.capabilities.', 'tosca.capabilities.network.'],
  data: ['tosca.datatypes.', 'tosca.datatypes.network.'],
  artifact: ['tosca.artifacts.'],
  interface: ['tosca.interfaces.', 'tosca.interfaces.node.lifecycle.', 'tosca.interfaces.relationship.'],
  policy: ['tosca.policies.'],
  group: ['tosca.groups.'],
};

export const roots: Record<Kind, string> = {
  node: 'tosca.nodes.Root',
  relationship: 'tosca.relationships.Root',
  capability: 'tosca.capabilities.Root',
  data: 'tosca.datatypes.Root',
  artifact: 'tosca.artifacts.Root',
  interface: 'tosca.interfaces.Root',
  policy: 'tosca.policies.Root',
  group: 'tosca.groups.Root',
};

export const primitiveTypes = new Set([
  'string',
  'integer',
  'float',
  'boolean',
  'timestamp',
  'null',
  'version',
  'range',
  'list',
  'map',
  'scalar-unit.size',
  'scalar-unit.time',
  'scalar-unit.frequency',
  'scalar-unit.bitrate',
  'any',
]);

export interface TypeEntry {
  name: string;
  kind: Kind;
  def: Dict;
  loc: Loc;
  builtin: boolean;
}

export interface PropertyDef extends Dict {
  type?: string;
}

export interface CapabilityDef {
  type: string;
  properties: Dict;
  attributes: Dict;
  validSourceTypes: string[];
  occurrences?: [number, number];
  loc: Loc;
}

export interface RequirementDef {
  name: string;
  capability?: string;
  node?: string;
  relationship?: string;
  occurrences: [number, number];
  nodeFilter?: Dict;
}

export interface InterfaceDef {
  type?: string;
  operations: Map<string, unknown>;
  inputs: Dict;
}

export const isDict = (value: unknown): value is Dict => typeof value === 'object' && value !== null && !Array.isArray(value);

export function parseOccurrences(value: unknown, fallback: [number, number]): [number, number] {
  if (!Array.isArray(value) || value.length !== 2) return fallback;
  const bound = (v: unknown) => (v === 'UNBOUNDED' ? Infinity : typeof v === 'number' ? v : Number(v));
  const pair: [number, number] = [bound(value[0]), bound(value[1])];
  return Number.isNaN(pair[0]) || Number.isNaN(pair[1]) ? fallback : pair;
}

const interfaceReserved = new Set(['derived_from', 'description', 'version', 'metadata', 'inputs', 'type', 'notifications', 'operations']);

/**
 * What is worked out from one type in one registry, each part when first asked for. One object
 * with fixed fields per type: validation asks for these thousands of times per template.
 */
class TypeFacts {
  ancestors: TypeEntry[] | undefined = undefined;
  properties: Map<string, PropertyDef> | undefined = undefined;
  attributes: Map<string, PropertyDef> | undefined = undefined;
  capabilities: Map<string, CapabilityDef> | undefined = undefined;
  requirements: Map<string, RequirementDef> | undefined = undefined;
  interfaces: Map<string, InterfaceDef> | undefined = undefined;
  readonly sections = new Map<string, Map<string, { def: unknown; owner: TypeEntry }>>();
  readonly memo = new Map<string, unknown>();
}

const newResolveCache = (): Record<Kind, Map<string, TypeEntry | null>> => ({
  node: new Map(),
  relationship: new Map(),
  capability: new Map(),
  data: new Map(),
  artifact: new Map(),
  interface: new Map(),
  policy: new Map(),
  group: new Map(),
});

export class Registry {
  private readonly types: Record<Kind, Map<string, TypeEntry>>;
  private resolveCache = newResolveCache();
  private factCache = new Map<TypeEntry, TypeFacts>();
  private validScalarCache = new WeakMap<object, Set<unknown>>();
  /**
   * Whether the caches are the base registry's: a template that defines no types of its own
   * sees exactly the built-in types, so what was worked out from them (resolved names,
   * ancestors, merged definitions) is worked out once per process, not per template. The first
   * type the template adds gives this registry caches of its own.
   */
  private sharedCaches = false;

  constructor(base?: Registry) {
    const copy = (kind: Kind) => new Map(base ? base.types[kind] : []);
    this.types = {
      node: copy('node'),
      relationship: copy('relationship'),
      capability: copy('capability'),
      data: copy('data'),
      artifact: copy('artifact'),
      interface: copy('interface'),
      policy: copy('policy'),
      group: copy('group'),
    };
    if (base) {
      this.resolveCache = base.resolveCache;
      this.factCache = base.factCache;
      this.validScalarCache = base.validScalarCache;
      this.sharedCaches = true;
    }
  }

  get(kind: Kind, name: string): TypeEntry | undefined {
    return this.types[kind].get(name);
  }

  set(entry: TypeEntry): void {
    this.types[entry.kind].set(entry.name, entry);
    this.sharedCaches = false;
    this.resolveCache = newResolveCache();
    this.factCache = new Map();
    this.validScalarCache = new WeakMap();
  }

  /**
   * Scalars already found valid against a property or input definition (whose types these
   * types decide). Templates repeat sizes, versions and names across their nodes.
   */
  validScalars(definition: object): Set<unknown> {
    let known = this.validScalarCache.get(definition);
    if (!known) this.validScalarCache.set(definition, (known = new Set()));
    return known;
  }

  private facts(entry: TypeEntry): TypeFacts {
    let facts = this.factCache.get(entry);
    if (!facts) this.factCache.set(entry, (facts = new TypeFacts()));
    return facts;
  }

  all(kind: Kind): Iterable<TypeEntry> {
    return this.types[kind].values();
  }

  /** Full name, tosca:Short, or Short for the normative types. */
  resolve(kind: Kind, name: unknown): TypeEntry | undefined {
    if (typeof name !== 'string' || !name) return undefined;
    const cache = this.resolveCache[kind];
    const cached = cache.get(name);
    if (cached !== undefined) return cached ?? undefined;
    const map = this.types[kind];
    let found = map.get(name);
    if (!found) {
      const short = name.startsWith('tosca:') ? name.slice(6) : name;
      found = map.get(short);
      for (const prefix of prefixes[kind]) {
        if (found) break;
        found = map.get(prefix + short);
      }
    }
    // A name that resolves to nothing is remembered only by a template's own caches (the
    // shared ones would grow with every misspelt name a long-running service is sent).
    if (found || !this.sharedCaches) cache.set(name, found ?? null);
    return found;
  }

  /** The type and its ancestors, the type first; stops at a derivation cycle. */
  ancestors(entry: TypeEntry): TypeEntry[] {
    const facts = this.facts(entry);
    if (facts.ancestors) return facts.ancestors;
    const chain: TypeEntry[] = [];
    const seen = new Set<TypeEntry>();
    let current: TypeEntry | undefined = entry;
    while (current && !seen.has(current)) {
      seen.add(current);
      chain.push(current);
      const parent: unknown = current.def.derived_from;
      current = this.resolve(current.kind, parent);
    }
    facts.ancestors = chain;
    return chain;
  }

  /** Whether `name` is, or derives from, `base` (both resolved in `kind`). */
  derives(kind: Kind, name: unknown, base: unknown): boolean {
    const entry = this.resolve(kind, name);
    const target = this.resolve(kind, base);
    if (!entry || !target) return false;
    return entry === target || this.ancestors(entry).includes(target);
  }

  /** derives() for a type already resolved (one name fewer to look up). */
  derivesFrom(entry: TypeEntry, base: unknown): boolean {
    const target = this.resolve(entry.kind, base);
    if (!target) return false;
    return entry === target || this.ancestors(entry).includes(target);
  }

  /** The primitive a data type finally derives from, or undefined for a complex type. */
  primitiveBase(name: string): string | undefined {
    if (primitiveTypes.has(name)) return name;
    const entry = this.resolve('data', name);
    if (!entry) return undefined;
    for (const t of this.ancestors(entry)) {
      const parent = t.def.derived_from;
      if (typeof parent === 'string' && primitiveTypes.has(parent)) return parent;
    }
    return undefined;
  }

  /** A section of maps (properties, attributes, artifacts) merged from the root down. */
  mapSection(entry: TypeEntry, section: string): Map<string, { def: unknown; owner: TypeEntry }> {
    const sections = this.facts(entry).sections;
    let merged = sections.get(section);
    if (!merged) {
      const out = new Map<string, { def: unknown; owner: TypeEntry }>();
      for (const t of [...this.ancestors(entry)].reverse()) {
        const defs = t.def[section];
        if (!isDict(defs)) continue;
        for (const [name, def] of Object.entries(defs)) {
          const previous = out.get(name);
          // A redefinition refines the inherited one (a new default, a narrower type).
          out.set(name, { def: isDict(previous?.def) && isDict(def) ? { ...previous.def, ...def } : def, owner: t });
        }
      }
      sections.set(section, (merged = out));
    }
    return merged;
  }

  /** Memoizes something derived from a type (for example a node type's capability defaults). */
  memo<T>(what: string, entry: TypeEntry, build: () => T): T {
    const memo = this.facts(entry).memo;
    let value = memo.get(what) as T | undefined;
    if (value === undefined && !memo.has(what)) memo.set(what, (value = build()));
    return value as T;
  }

  properties(entry: TypeEntry): Map<string, PropertyDef> {
    const facts = this.facts(entry);
    return (facts.properties ??= this.definitions(entry, 'properties'));
  }

  attributes(entry: TypeEntry): Map<string, PropertyDef> {
    const facts = this.facts(entry);
    return (facts.attributes ??= this.definitions(entry, 'attributes'));
  }

  private definitions(entry: TypeEntry, section: string): Map<string, PropertyDef> {
    const out = new Map<string, PropertyDef>();
    for (const [name, { def }] of this.mapSection(entry, section)) out.set(name, (isDict(def) ? def : {}) as PropertyDef);
    return out;
  }

  capabilities(entry: TypeEntry): Map<string, CapabilityDef> {
    const facts = this.facts(entry);
    if (!facts.capabilities) {
      const out = new Map<string, CapabilityDef>();
      for (const t of [...this.ancestors(entry)].reverse()) {
        const defs = t.def.capabilities;
        if (!isDict(defs)) continue;
        for (const [name, raw] of Object.entries(defs)) {
          const def = typeof raw === 'string' ? { type: raw } : isDict(raw) ? raw : {};
          const previous = out.get(name);
          out.set(name, {
            type: typeof def.type === 'string' ? def.type : (previous?.type ?? 'tosca.capabilities.Root'),
            properties: isDict(def.properties) ? def.properties : {},
            attributes: isDict(def.attributes) ? def.attributes : {},
            validSourceTypes: Array.isArray(def.valid_source_types)
              ? def.valid_source_types.map(String)
              : (previous?.validSourceTypes ?? []),
            occurrences: def.occurrences !== undefined ? parseOccurrences(def.occurrences, [1, Infinity]) : previous?.occurrences,
            loc: { file: t.loc.file, path: `${t.loc.path}.capabilities.${name}` },
          });
        }
      }
      facts.capabilities = out;
    }
    return facts.capabilities;
  }

  requirements(entry: TypeEntry): Map<string, RequirementDef> {
    const facts = this.facts(entry);
    if (!facts.requirements) {
      const out = new Map<string, RequirementDef>();
      for (const t of [...this.ancestors(entry)].reverse()) {
        const defs = t.def.requirements;
        const list = Array.isArray(defs) ? defs : isDict(defs) ? Object.entries(defs).map(([k, v]) => ({ [k]: v })) : [];
        for (const item of list) {
          if (!isDict(item)) continue;
          for (const [name, raw] of Object.entries(item)) {
            const def = typeof raw === 'string' ? { capability: raw } : isDict(raw) ? raw : {};
            const relationship =
              typeof def.relationship === 'string'
                ? def.relationship
                : isDict(def.relationship) && typeof def.relationship.type === 'string'
                  ? def.relationship.type
                  : undefined;
            out.set(name, {
              name,
              capability: typeof def.capability === 'string' ? def.capability : undefined,
              node: typeof def.node === 'string' ? def.node : undefined,
              relationship,
              occurrences: parseOccurrences(def.occurrences, [1, 1]),
              nodeFilter: isDict(def.node_filter) ? def.node_filter : undefined,
            });
          }
        }
      }
      facts.requirements = out;
    }
    return facts.requirements;
  }

  /** Operation names an interface type defines (1.3 `operations:` or 1.0 style keys). */
  interfaceOperations(typeName: string | undefined): Map<string, unknown> {
    const out = new Map<string, unknown>();
    const entry = typeName ? this.resolve('interface', typeName) : undefined;
    if (!entry) return out;
    for (const t of [...this.ancestors(entry)].reverse()) collectOperations(t.def, out);
    return out;
  }

  interfaces(entry: TypeEntry): Map<string, InterfaceDef> {
    const facts = this.facts(entry);
    if (!facts.interfaces) {
      const out = new Map<string, InterfaceDef>();
      for (const t of [...this.ancestors(entry)].reverse()) {
        const defs = t.def.interfaces;
        if (!isDict(defs)) continue;
        for (const [name, raw] of Object.entries(defs)) {
          const def = isDict(raw) ? raw : {};
          const previous = out.get(name);
          const type = typeof def.type === 'string' ? def.type : (previous?.type ?? defaultInterfaceType(name));
          const operations = new Map(previous?.operations ?? this.interfaceOperations(type));
          collectOperations(def, operations);
          out.set(name, { type, operations, inputs: { ...(previous?.inputs ?? {}), ...(isDict(def.inputs) ? def.inputs : {}) } });
        }
      }
      facts.interfaces = out;
    }
    return facts.interfaces;
  }
}

export function defaultInterfaceType(name: string): string | undefined {
  if (name === 'Standard') return 'tosca.interfaces.node.lifecycle.Standard';
  if (name === 'Configure') return 'tosca.interfaces.relationship.Configure';
  return undefined;
}

function collectOperations(def: Dict, out: Map<string, unknown>): void {
  if (isDict(def.operations)) for (const [op, v] of Object.entries(def.operations)) out.set(op, v);
  for (const [key, v] of Object.entries(def)) if (!interfaceReserved.has(key)) out.set(key, v);
}
