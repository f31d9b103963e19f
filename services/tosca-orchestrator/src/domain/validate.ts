// Validation of a loaded template: type definitions, then the topology (inputs, node
// templates, requirements, capabilities, interfaces, artifacts, relationships, groups,
// policies, outputs, substitution mappings), functions and the dependency graph. Every
// problem is reported; nothing stops at the first.
import { LRUCache } from 'lru-cache';
import { at, type Diagnostic, type Diagnostics, type Loc } from './diagnostics';
import { loadTemplate, type Loaded, type TemplateInput } from './loader';
import type { Edge, EdgeKind, InputDef, NodeTemplate, ProcessResult, RequirementAssignment, Topology } from './model';
import { isDict, primitiveTypes, roots, typeSections, type Dict, type Kind, type Registry, type TypeEntry } from './registry';
import { checkConstraintSyntax, checkValue, isFunction, violates, type Schema, type ValueContext } from './values';

const nodeTemplateKeys = new Set(['type', 'description', 'metadata', 'directives', 'properties', 'attributes', 'requirements', 'capabilities', 'interfaces', 'artifacts', 'node_filter', 'copy']);
const topologyKeys = new Set(['description', 'inputs', 'node_templates', 'relationship_templates', 'groups', 'policies', 'outputs', 'substitution_mappings', 'workflows']);
const edgeKinds: EdgeKind[] = ['HostedOn', 'AttachesTo', 'ConnectsTo', 'DependsOn'];

export interface ProcessOptions extends TemplateInput {
  /** Input values; when given, required inputs without a value are errors (warnings otherwise). */
  inputs?: Dict;
}

/**
 * What checking imported type definitions found, by the imported documents (the same objects
 * while their files are unchanged): template after template imports INDIGO's types, and checking
 * them again was a third of a small template's validation. Only for templates that define no
 * types of their own, which could change what the imported ones refer to.
 */
const checkedImports = new LRUCache<string, Diagnostic[]>({ max: 256 });
const documentIds = new WeakMap<object, number>();
let nextDocumentId = 0;

function importedTypesKey(loaded: Loaded): string | undefined {
  if (Object.keys(typeSections).some((section) => section in loaded.main!)) return undefined;
  let key = '';
  for (const [file, doc] of loaded.docs) {
    if (file === loaded.mainFile) continue;
    let id = documentIds.get(doc);
    if (id === undefined) documentIds.set(doc, (id = nextDocumentId++));
    key += `${file}\0${id}\n`;
  }
  return key || undefined;
}

/** Parses, loads imports and validates; the topology comes back even when invalid (best effort). */
export function processTemplate(options: ProcessOptions): ProcessResult {
  const loaded = loadTemplate(options);
  let topology: Topology | undefined;
  if (loaded.main) {
    const validator = new Validator(loaded, options.inputs);
    validator.checkTypes(importedTypesKey(loaded));
    topology = validator.checkTopology();
  }
  const diagnostics = loaded.diags.sorted();
  return { valid: !diagnostics.some((d) => d.severity === 'error'), diagnostics, topology, mainFile: loaded.mainFile };
}

interface FnContext {
  self?: NodeTemplate;
  source?: NodeTemplate;
  target?: NodeTemplate;
  where: string;
}

class Validator {
  private readonly registry: Registry;
  private readonly diags: Diagnostics;
  private readonly main: Dict;
  private readonly file: string;
  private readonly topo: Topology;
  private readonly givenInputs?: Dict;
  /** Requirements resolved to a capability that limits its occurrences: "node\0capability" -> count. */
  private readonly incoming = new Map<string, number>();

  constructor(loaded: Loaded, inputs?: Dict) {
    this.registry = loaded.registry;
    this.diags = loaded.diags;
    this.main = loaded.main!;
    this.file = loaded.mainFile;
    this.givenInputs = inputs;
    this.topo = {
      metadata: isDict(this.main.metadata) ? this.main.metadata : {},
      inputs: new Map(), inputValues: {}, nodes: new Map(), relationshipTemplates: new Map(), groups: new Map(),
      policies: [], outputs: new Map(), edges: [], order: [],
    };
  }

  private loc(path: string): Loc {
    return { file: this.file, path };
  }

  // One value context for the whole run; the function context of the values being checked is a
  // field (values are checked one node at a time, synchronously).
  private currentFn: FnContext = { where: '' };
  private readonly sharedCtx: ValueContext = {
    registry: undefined as unknown as Registry,
    diags: undefined as unknown as Diagnostics,
    onFunction: (value, loc) => this.checkFunction(value, loc, this.currentFn),
    resolveStatic: (value) => {
      if (!('get_input' in value)) return undefined;
      const arg = value.get_input;
      const name = Array.isArray(arg) ? arg[0] : arg;
      if (typeof name !== 'string' || Array.isArray(arg)) return undefined;
      return name in this.topo.inputValues ? { value: this.topo.inputValues[name] } : undefined;
    },
  };

  private valueCtx(fn: FnContext): ValueContext {
    this.currentFn = fn;
    this.sharedCtx.registry = this.registry;
    this.sharedCtx.diags = this.diags;
    return this.sharedCtx;
  }

  // ---------------------------------------------------------------- types

  /** Checks the type definitions that are not Lapis' own; with a key, those found before under it are not checked again. */
  checkTypes(importedKey?: string): void {
    const known = importedKey === undefined ? undefined : checkedImports.get(importedKey);
    if (known) {
      for (const d of known) this.diags.list.push({ ...d });
      return;
    }
    const before = this.diags.list.length;
    for (const kind of Object.values(typeSections)) {
      for (const entry of this.registry.all(kind)) if (!entry.builtin) this.checkType(entry);
    }
    if (importedKey !== undefined) checkedImports.set(importedKey, this.diags.list.slice(before).map((d) => ({ ...d })));
  }

  private typeRef(kind: Kind, name: unknown, loc: Loc, what: string): TypeEntry | undefined {
    if (typeof name !== 'string') {
      this.diags.error('INVALID_FIELD', `${what} must name a type`, loc);
      return undefined;
    }
    const entry = this.registry.resolve(kind, name);
    if (!entry) this.diags.error('UNKNOWN_TYPE', `${what}: unknown ${kind} type "${name}"`, loc);
    return entry;
  }

  private dataTypeRef(name: unknown, loc: Loc, what: string): void {
    if (typeof name !== 'string') return;
    if (!primitiveTypes.has(name) && !this.registry.resolve('data', name)) this.diags.error('UNKNOWN_TYPE', `${what}: unknown data type "${name}"`, loc);
  }

  private checkType(entry: TypeEntry): void {
    const { def, loc } = entry;
    const parent = def.derived_from;
    if (parent !== undefined && parent !== null) {
      const primitiveParent = entry.kind === 'data' && typeof parent === 'string' && primitiveTypes.has(parent);
      if (!primitiveParent) {
        const p = this.typeRef(entry.kind, parent, at(loc, 'derived_from'), `${entry.name} derived_from`);
        if (p && this.registry.ancestors(p).includes(entry)) {
          this.diags.error('DERIVATION_CYCLE', `type ${entry.name} derives from itself through ${String(parent)}`, at(loc, 'derived_from'));
        }
      }
    } else if (entry.name !== roots[entry.kind] && entry.kind !== 'data') {
      // Types without derived_from are roots of their own; allowed, as the established tools do.
    }
    const ctx = this.valueCtx({ where: entry.name });
    for (const section of ['properties', 'attributes']) {
      const props = def[section];
      if (props === undefined || props === null) continue;
      if (!isDict(props)) {
        this.diags.error('INVALID_FIELD', `${section} of ${entry.name} must be a map`, at(loc, section));
        continue;
      }
      for (const [name, raw] of Object.entries(props)) {
        const pl = at(at(loc, section), name);
        if (!isDict(raw)) {
          this.diags.error('INVALID_FIELD', `definition of ${section.slice(0, -1)} "${name}" must be a map`, pl);
          continue;
        }
        if (raw.type === undefined && section === 'properties') {
          this.diags.error('MISSING_FIELD', `property "${name}" of ${entry.name} has no type`, pl);
          continue;
        }
        this.dataTypeRef(raw.type, at(pl, 'type'), `${section === 'properties' ? 'property' : 'attribute'} ${name}`);
        if (isDict(raw.entry_schema)) this.dataTypeRef(raw.entry_schema.type, at(at(pl, 'entry_schema'), 'type'), `entry_schema of ${name}`);
        else if (typeof raw.entry_schema === 'string') this.dataTypeRef(raw.entry_schema, at(pl, 'entry_schema'), `entry_schema of ${name}`);
        checkConstraintSyntax(ctx, raw.constraints, at(pl, 'constraints'));
        if (raw.default !== undefined && raw.default !== null && section === 'properties') {
          checkValue(ctx, raw.default, raw, at(pl, 'default'), `default of ${entry.name}.${name}`);
        }
      }
    }
    if (entry.kind === 'node') {
      const caps = def.capabilities;
      if (isDict(caps)) {
        for (const [name, raw] of Object.entries(caps)) {
          const type = typeof raw === 'string' ? raw : isDict(raw) ? raw.type : undefined;
          this.typeRef('capability', type, at(at(loc, 'capabilities'), name), `capability ${name}`);
        }
      }
      const reqs = def.requirements;
      if (Array.isArray(reqs)) {
        reqs.forEach((item, i) => {
          if (!isDict(item)) return;
          for (const [name, raw] of Object.entries(item)) {
            const rl = at(at(at(loc, 'requirements'), i), name);
            const r = typeof raw === 'string' ? { capability: raw } : isDict(raw) ? raw : {};
            if (r.capability !== undefined && !this.registry.resolve('capability', r.capability)) {
              this.typeRef('capability', r.capability, at(rl, 'capability'), `requirement ${name} capability`);
            }
            if (r.node !== undefined) this.typeRef('node', r.node, at(rl, 'node'), `requirement ${name} node`);
            const rel = isDict(r.relationship) ? r.relationship.type : r.relationship;
            if (rel !== undefined) this.typeRef('relationship', rel, at(rl, 'relationship'), `requirement ${name} relationship`);
          }
        });
      } else if (reqs !== undefined && reqs !== null) {
        this.diags.error('INVALID_FIELD', `requirements of ${entry.name} must be a list`, at(loc, 'requirements'));
      }
    }
    if (entry.kind === 'relationship' && Array.isArray(def.valid_target_types)) {
      def.valid_target_types.forEach((t, i) => this.typeRef('capability', t, at(at(loc, 'valid_target_types'), i), 'valid_target_types'));
    }
    if ((entry.kind === 'policy' || entry.kind === 'group') && Array.isArray(def.targets ?? def.members)) {
      const key = def.targets ? 'targets' : 'members';
      (def[key] as unknown[]).forEach((t, i) => {
        if (!this.registry.resolve('node', t) && !this.registry.resolve('group', t)) {
          this.diags.error('UNKNOWN_TYPE', `${key}: unknown node or group type "${String(t)}"`, at(at(loc, key), i));
        }
      });
    }
    if (entry.kind === 'artifact' || entry.kind === 'interface') return;
  }

  // ---------------------------------------------------------------- topology

  checkTopology(): Topology {
    const raw = this.main.topology_template;
    if (raw === undefined || raw === null) return this.topo;
    const tl = this.loc('topology_template');
    if (!isDict(raw)) {
      this.diags.error('INVALID_FIELD', 'topology_template must be a map', tl);
      return this.topo;
    }
    for (const key of Object.keys(raw)) if (!topologyKeys.has(key)) this.diags.error('UNKNOWN_FIELD', `unknown field "${key}" in topology_template`, at(tl, key));
    if (typeof raw.description === 'string') this.topo.description = raw.description;
    this.collectInputs(raw.inputs, at(tl, 'inputs'));
    const nodes = raw.node_templates;
    if (nodes !== undefined && nodes !== null && !isDict(nodes)) this.diags.error('INVALID_FIELD', 'node_templates must be a map', at(tl, 'node_templates'));
    const nl = at(tl, 'node_templates');
    // First pass: every node template and its type, so requirements can point anywhere.
    if (isDict(nodes)) {
      for (const name in nodes) this.collectNode(name, nodes[name], at(nl, name));
    }
    this.collectRelationshipTemplates(raw.relationship_templates, at(tl, 'relationship_templates'));
    for (const node of this.topo.nodes.values()) this.resolveRequirements(node);
    this.checkCapabilityOccurrences();
    for (const node of this.topo.nodes.values()) this.checkNodeValues(node);
    this.checkGroups(raw.groups, at(tl, 'groups'));
    this.checkPolicies(raw.policies, at(tl, 'policies'));
    this.checkOutputs(raw.outputs, at(tl, 'outputs'));
    this.checkSubstitution(raw.substitution_mappings, at(tl, 'substitution_mappings'));
    this.buildGraph();
    return this.topo;
  }

  private collectInputs(raw: unknown, loc: Loc): void {
    if (raw === undefined || raw === null) {
      for (const name of Object.keys(this.givenInputs ?? {})) this.diags.warn('UNKNOWN_INPUT', `input "${name}" is given but the template declares no inputs`, loc);
      return;
    }
    if (!isDict(raw)) {
      this.diags.error('INVALID_FIELD', 'inputs must be a map', loc);
      return;
    }
    const ctx = this.valueCtx({ where: 'inputs' });
    for (const [name, d] of Object.entries(raw)) {
      const il = at(loc, name);
      const def = isDict(d) ? d : {};
      if (!isDict(d)) this.diags.error('INVALID_FIELD', `input "${name}" must be a map`, il);
      const type = typeof def.type === 'string' ? def.type : 'string';
      if (def.type === undefined) this.diags.warn('MISSING_FIELD', `input "${name}" has no type; string assumed`, il);
      else this.dataTypeRef(def.type, at(il, 'type'), `input ${name}`);
      checkConstraintSyntax(ctx, def.constraints, at(il, 'constraints'));
      const required = def.required !== false;
      const input: InputDef = { name, type, required, default: def.default, raw: def };
      this.topo.inputs.set(name, input);
      if (def.default !== undefined && def.default !== null) checkValue(ctx, def.default, def, at(il, 'default'), `default of input ${name}`);
      const given = this.givenInputs?.[name];
      if (given !== undefined) {
        checkValue(ctx, given, def, il, `input ${name}`);
        this.topo.inputValues[name] = given;
      } else if (def.default !== undefined) {
        this.topo.inputValues[name] = def.default;
      } else if (required) {
        if (this.givenInputs) this.diags.error('MISSING_INPUT', `required input "${name}" has no value and no default`, il);
        else this.diags.warn('MISSING_INPUT', `required input "${name}" has no default: give it a value to deploy`, il);
      }
    }
    for (const name of Object.keys(this.givenInputs ?? {})) {
      if (!this.topo.inputs.has(name)) this.diags.warn('UNKNOWN_INPUT', `input "${name}" is given but not declared`, loc);
    }
  }

  private collectNode(name: string, raw: unknown, loc: Loc): void {
    const def = isDict(raw) ? raw : {};
    if (!isDict(raw)) this.diags.error('INVALID_FIELD', `node template "${name}" must be a map`, loc);
    for (const key in def) if (!nodeTemplateKeys.has(key)) this.diags.error('UNKNOWN_FIELD', `unknown field "${key}" in node template ${name}`, at(loc, key));
    let entry: TypeEntry | undefined;
    if (def.type === undefined) this.diags.error('MISSING_FIELD', `node template ${name} has no type`, loc);
    else entry = this.typeRef('node', def.type, at(loc, 'type'), `node template ${name}`);
    const facts = entry ? this.nodeTypeFacts(entry) : undefined;
    const node: NodeTemplate = {
      name, type: entry?.name ?? String(def.type ?? ''), entry, ancestors: facts?.ancestorNames ?? [], raw: def, properties: {}, capabilities: {}, requirements: [], artifacts: {}, loc,
    };
    if (entry && facts) {
      // Property values with defaults, so functions and filters can see them.
      const given = isDict(def.properties) ? def.properties : {};
      for (const [prop, pdef] of this.registry.properties(entry)) {
        if (given[prop] !== undefined) node.properties[prop] = given[prop];
        else if (pdef.default !== undefined) node.properties[prop] = pdef.default;
      }
      for (const prop in given) if (!(prop in node.properties)) node.properties[prop] = given[prop];
      const assigned = isDict(def.capabilities) ? def.capabilities : undefined;
      // Capability defaults are shared until the template assigns properties of its own.
      if (!assigned || isEmpty(assigned)) node.capabilities = facts.capabilityEntries;
      else {
        node.capabilities = { ...facts.capabilityEntries };
        for (const [cap, type, props] of facts.capabilityDefaults) {
          const a = assigned[cap];
          if (isDict(a) && isDict(a.properties)) node.capabilities[cap] = { type, properties: { ...props, ...a.properties } };
        }
      }
    }
    this.topo.nodes.set(name, node);
  }

  /** What every template of a node type starts from, worked out once per type. */
  private nodeTypeFacts(entry: TypeEntry): { ancestorNames: string[]; capabilityDefaults: [string, string, Dict][]; capabilityEntries: NodeTemplate['capabilities'] } {
    return this.registry.memo('node-template-facts', entry, () => {
      const capabilityDefaults: [string, string, Dict][] = [];
      for (const [cap, cdef] of this.registry.capabilities(entry)) {
        const ctype = this.registry.resolve('capability', cdef.type);
        const props: Dict = {};
        if (ctype) for (const [p, pd] of this.registry.properties(ctype)) if (pd.default !== undefined) props[p] = pd.default;
        for (const [p, pd] of Object.entries(cdef.properties)) if (isDict(pd) && pd.default !== undefined) props[p] = pd.default;
        capabilityDefaults.push([cap, ctype?.name ?? cdef.type, props]);
      }
      return {
        ancestorNames: this.registry.ancestors(entry).map((t) => t.name),
        capabilityDefaults,
        capabilityEntries: Object.fromEntries(capabilityDefaults.map(([cap, type, props]) => [cap, { type, properties: props }])),
      };
    });
  }

  private collectRelationshipTemplates(raw: unknown, loc: Loc): void {
    if (raw === undefined || raw === null) return;
    if (!isDict(raw)) {
      this.diags.error('INVALID_FIELD', 'relationship_templates must be a map', loc);
      return;
    }
    for (const [name, d] of Object.entries(raw)) {
      const rl = at(loc, name);
      const def = isDict(d) ? d : {};
      const entry = this.typeRef('relationship', def.type, at(rl, 'type'), `relationship template ${name}`);
      const props = isDict(def.properties) ? def.properties : {};
      this.topo.relationshipTemplates.set(name, { type: entry?.name ?? String(def.type), properties: props, raw: def });
      if (entry) this.checkProperties(entry, props, at(rl, 'properties'), `relationship template ${name}`, { where: name });
      if (entry && isDict(def.interfaces)) this.checkInterfaces(this.registry.interfaces(entry), def.interfaces, at(rl, 'interfaces'), `relationship template ${name}`, { where: name });
    }
  }

  /** Property assignments against the definitions: unknown, missing required, wrong values. */
  private checkProperties(entry: TypeEntry, given: unknown, loc: Loc, what: string, fn: FnContext, extra?: Map<string, Dict>, requireAll = true): void {
    let defs: Map<string, Dict> = this.registry.properties(entry);
    if (extra?.size) {
      defs = new Map(defs);
      for (const [k, v] of extra) defs.set(k, { ...(defs.get(k) ?? {}), ...v });
    }
    this.checkPropertyValues(entry, defs, given, loc, what, fn, requireAll);
  }

  /** checkProperties against definitions already merged. */
  private checkPropertyValues(entry: TypeEntry, defs: Map<string, Dict>, given: unknown, loc: Loc, what: string, fn: FnContext, requireAll: boolean): void {
    if (given !== undefined && given !== null && !isDict(given)) {
      this.diags.error('INVALID_FIELD', `properties of ${what} must be a map`, loc);
      return;
    }
    const values = isDict(given) ? given : {};
    const ctx = this.valueCtx(fn);
    for (const name in values) {
      const value = values[name];
      const def = defs.get(name);
      if (!def) {
        this.diags.error('UNKNOWN_PROPERTY', `${what}: ${entry.name} has no property "${name}"`, at(loc, name));
        continue;
      }
      checkValue(ctx, value, def, at(loc, name), `${what} property ${name}`);
    }
    if (!requireAll) return;
    for (const [name, def] of defs) {
      if (def.required === false || def.default !== undefined) continue;
      if (values[name] === undefined) {
        this.diags.error('MISSING_REQUIRED_PROPERTY', `${what}: required property "${name}" of ${entry.name} is missing`, isDict(given) ? loc : { file: loc.file, path: loc.path.replace(/\.properties$/, '') });
      }
    }
  }

  private resolveRequirements(node: NodeTemplate): void {
    const raw = node.raw.requirements;
    if (raw === undefined || raw === null || !node.entry) return;
    const rl = at(node.loc, 'requirements');
    if (!Array.isArray(raw)) {
      this.diags.error('INVALID_FIELD', `requirements of node template ${node.name} must be a list`, rl);
      return;
    }
    const defs = this.registry.requirements(node.entry);
    const counts = new Map<string, number>();
    raw.forEach((item, index) => {
      const il = at(rl, index);
      const name = isDict(item) ? soleKey(item) : undefined;
      if (name === undefined) {
        this.diags.error('INVALID_FIELD', `requirement ${index} of ${node.name} must be a map with one entry`, il);
        return;
      }
      const value = (item as Dict)[name];
      const loc = at(il, name);
      const def = defs.get(name);
      if (!def) {
        this.diags.error('UNKNOWN_REQUIREMENT', `node template ${node.name}: ${node.type} has no requirement "${name}"`, il);
        return;
      }
      counts.set(name, (counts.get(name) ?? 0) + 1);
      const a = typeof value === 'string' ? { node: value } : isDict(value) ? value : {};
      // Every field from the start, so all assignments share one shape (later reads stay fast).
      const assignment: RequirementAssignment = { name, index, node: undefined, capability: undefined, relationship: undefined, relationshipTemplate: undefined, properties: {}, loc: il };
      // The relationship: a type name, a relationship template, or a map with a type.
      let relType = def.relationship;
      let relDef: Dict | undefined;
      if (typeof a.relationship === 'string') {
        const tpl = this.topo.relationshipTemplates.get(a.relationship);
        if (tpl) {
          assignment.relationshipTemplate = a.relationship;
          relType = tpl.type;
        } else if (this.registry.resolve('relationship', a.relationship)) relType = a.relationship;
        else {
          this.diags.error('UNKNOWN_TYPE', `requirement ${name} of ${node.name}: "${a.relationship}" is neither a relationship type nor a relationship template`, at(loc, 'relationship'));
        }
      } else if (isDict(a.relationship)) {
        relDef = a.relationship;
        if (a.relationship.type !== undefined) {
          const e = this.typeRef('relationship', a.relationship.type, at(at(loc, 'relationship'), 'type'), `requirement ${name} relationship`);
          if (e) relType = e.name;
        }
      }
      const relEntry = relType ? this.registry.resolve('relationship', relType) : undefined;
      assignment.relationship = relEntry?.name ?? relType ?? 'tosca.relationships.DependsOn';
      if (relEntry && relDef) {
        const props = isDict(relDef.properties) ? relDef.properties : {};
        assignment.properties = props;
        this.checkProperties(relEntry, props, at(at(loc, 'relationship'), 'properties'), `relationship of ${node.name}.${name}`, { where: node.name, self: node }, undefined, false);
      }
      // The target node: a node template, or a node type to find one by.
      let targetName = typeof a.node === 'string' ? a.node : undefined;
      const filter = isDict(a.node_filter) ? a.node_filter : def.nodeFilter;
      let target = targetName ? this.topo.nodes.get(targetName) : undefined;
      const nodeType = targetName && !target ? targetName : def.node;
      if (targetName && !target) {
        if (this.registry.resolve('node', targetName)) targetName = undefined;
        else {
          this.diags.error('UNKNOWN_NODE', `requirement ${name} of ${node.name} names node "${targetName}", which is neither a node template nor a node type`, at(loc, 'node'));
          return;
        }
      }
      if (!targetName) {
        const candidates = [...this.topo.nodes.values()].filter((n) => n !== node && n.entry && (!nodeType || this.registry.derivesFrom(n.entry, nodeType))
          && (!filter || this.filterMismatch(n, filter).length === 0)
          && this.findCapability(n, typeof a.capability === 'string' ? a.capability : def.capability) !== undefined);
        if (candidates.length === 1) targetName = candidates[0]!.name;
        else {
          this.diags.warn('REQUIREMENT_UNRESOLVED', `requirement ${name} of ${node.name}: ${candidates.length === 0 ? 'no' : `${candidates.length}`} node templates match${nodeType ? ` type ${nodeType}` : ''}; left to the orchestrator`, il);
          node.requirements.push(assignment);
          return;
        }
      }
      target ??= this.topo.nodes.get(targetName)!;
      assignment.node = target.name;
      if (nodeType && target.entry && !this.registry.derivesFrom(target.entry, nodeType) && this.registry.resolve('node', nodeType)) {
        this.diags.error('REQUIREMENT_TYPE_MISMATCH', `requirement ${name} of ${node.name}: node ${target.name} is a ${target.type}, not a ${nodeType}`, at(loc, 'node').path === loc.path ? il : typeof value === 'string' ? il : at(loc, 'node'));
      }
      const capWanted = typeof a.capability === 'string' ? a.capability : def.capability;
      if (target.entry && capWanted) {
        const cap = this.findCapability(target, capWanted);
        if (!cap) {
          this.diags.error('CAPABILITY_NOT_FOUND', `requirement ${name} of ${node.name}: node ${target.name} (${target.type}) has no capability ${capWanted}`, il);
        } else {
          assignment.capability = cap;
          const cdef = this.registry.capabilities(target.entry).get(cap)!;
          // Only capabilities that limit their occurrences need counting.
          if (cdef.occurrences !== undefined) {
            const key = `${target.name}\u0000${cap}`;
            this.incoming.set(key, (this.incoming.get(key) ?? 0) + 1);
          }
          if (cdef.validSourceTypes.length && node.entry && !cdef.validSourceTypes.some((t) => this.registry.derivesFrom(node.entry!, t))) {
            this.diags.error('INVALID_SOURCE_TYPE', `requirement ${name} of ${node.name}: capability ${cap} of ${target.name} accepts only ${cdef.validSourceTypes.join(', ')}, not ${node.type}`, il);
          }
          const validTargets = relEntry ? this.registry.memo('valid-target-types', relEntry, () => this.registry.ancestors(relEntry).map((t) => t.def.valid_target_types).find(Array.isArray) ?? null) : undefined;
          if (Array.isArray(validTargets) && validTargets.length && !this.acceptsTarget(relEntry!, validTargets, cdef.type)) {
            this.diags.warn('INVALID_RELATIONSHIP_TARGET', `requirement ${name} of ${node.name}: relationship ${relEntry!.name} targets ${validTargets.join(', ')}, not ${cdef.type}`, il);
          }
        }
      }
      if (filter && target.entry) {
        for (const problem of this.filterMismatch(target, filter)) {
          this.diags.error('NODE_FILTER_MISMATCH', `requirement ${name} of ${node.name}: node ${target.name} does not satisfy the node_filter: ${problem}`, il);
        }
      }
      if (relDef && relEntry && isDict(relDef.interfaces)) {
        this.checkInterfaces(this.registry.interfaces(relEntry), relDef.interfaces, at(at(loc, 'relationship'), 'interfaces'), `relationship of ${node.name}.${name}`, { where: node.name, self: node, source: node, target });
      }
      node.requirements.push(assignment);
    });
    for (const [name, count] of counts) {
      const [, max] = defs.get(name)!.occurrences;
      if (count > max) this.diags.error('REQUIREMENT_OCCURRENCES', `node template ${node.name}: requirement "${name}" is used ${count} times, at most ${max} allowed`, rl);
    }
  }

  /** Whether a capability type is among a relationship type's valid targets (once per pair). */
  private acceptsTarget(relEntry: TypeEntry, validTargets: unknown[], capabilityType: string): boolean {
    const accepted = this.registry.memo('accepts-target', relEntry, () => new Map<string, boolean>());
    let ok = accepted.get(capabilityType);
    if (ok === undefined) {
      ok = validTargets.some((t) => this.registry.derives('capability', capabilityType, t));
      accepted.set(capabilityType, ok);
    }
    return ok;
  }

  /** The name of the capability of `node` that is named `wanted` or whose type derives from it. */
  private findCapability(node: NodeTemplate, wanted: string | undefined): string | undefined {
    if (!node.entry) return undefined;
    const caps = this.registry.capabilities(node.entry);
    if (!wanted) return caps.has('feature') ? 'feature' : [...caps.keys()][0] ?? 'feature';
    if (caps.has(wanted)) return wanted;
    // By type: found once per node type and capability type (names that are no capability type
    // are not remembered, so the per-process caches cannot grow with them).
    const byType = this.registry.memo('capability-by-type', node.entry, () => new Map<string, string | null>());
    const known = byType.get(wanted);
    if (known !== undefined) return known ?? undefined;
    let found: string | null = null;
    for (const [name, def] of caps) {
      if (this.registry.derives('capability', def.type, wanted)) {
        found = name;
        break;
      }
    }
    if (this.registry.resolve('capability', wanted)) byType.set(wanted, found);
    return found ?? undefined;
  }

  /** What in `node` fails the node_filter (empty when it matches). */
  private filterMismatch(node: NodeTemplate, filter: Dict): string[] {
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
          const base = this.registry.primitiveBase(type) ?? type;
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
    if (filter.properties !== undefined) checkClauses(node.properties, filter.properties, '', this.registry.properties(entry));
    const capFilters = Array.isArray(filter.capabilities) ? filter.capabilities : isDict(filter.capabilities) ? Object.entries(filter.capabilities).map(([k, v]) => ({ [k]: v })) : [];
    for (const item of capFilters) {
      if (!isDict(item)) continue;
      for (const [capName, cf] of Object.entries(item)) {
        const name = this.findCapability(node, capName);
        if (!name) {
          problems.push(`it has no capability ${capName}`);
          continue;
        }
        const cap = node.capabilities[name]!;
        const ctype = this.registry.resolve('capability', cap.type);
        if (isDict(cf)) checkClauses(cap.properties, cf.properties, `${name}.`, ctype ? this.registry.properties(ctype) : new Map());
      }
    }
    return problems;
  }

  private checkCapabilityOccurrences(): void {
    const incoming = this.incoming;
    for (const [key, count] of incoming) {
      const [nodeName, cap] = key.split('\u0000') as [string, string];
      const node = this.topo.nodes.get(nodeName)!;
      const max = node.entry ? this.registry.capabilities(node.entry).get(cap)?.occurrences?.[1] : undefined;
      if (max !== undefined && count > max) {
        this.diags.error('CAPABILITY_OCCURRENCES', `capability ${cap} of ${nodeName} is the target of ${count} requirements, at most ${max} allowed`, node.loc);
      }
    }
  }

  private hostOf(node: NodeTemplate): NodeTemplate | undefined {
    for (const r of node.requirements) {
      if (r.node && r.relationship && this.registry.derives('relationship', r.relationship, 'tosca.relationships.HostedOn')) return this.topo.nodes.get(r.node);
    }
    return undefined;
  }

  private checkNodeValues(node: NodeTemplate): void {
    const entry = node.entry;
    if (!entry) return;
    const { raw, loc } = node;
    const fn: FnContext = { where: node.name, self: node };
    const substitutable = Array.isArray(raw.directives) && raw.directives.includes('substitutable');
    this.checkProperties(entry, raw.properties, at(loc, 'properties'), `node template ${node.name}`, fn, undefined, !substitutable);
    // Attributes: known names, values checked when given.
    if (isDict(raw.attributes)) {
      const attrs = this.registry.attributes(entry);
      const props = this.registry.properties(entry);
      for (const [name, value] of Object.entries(raw.attributes)) {
        const def = attrs.get(name) ?? props.get(name);
        if (!def) this.diags.error('UNKNOWN_ATTRIBUTE', `node template ${node.name}: ${entry.name} has no attribute "${name}"`, at(at(loc, 'attributes'), name));
        else checkValue(this.valueCtx(fn), value, def, at(at(loc, 'attributes'), name), `node template ${node.name} attribute ${name}`);
      }
    }
    // Capabilities.
    if (raw.capabilities !== undefined && raw.capabilities !== null) {
      const cl = at(loc, 'capabilities');
      if (!isDict(raw.capabilities)) this.diags.error('INVALID_FIELD', `capabilities of ${node.name} must be a map`, cl);
      else {
        const defs = this.registry.capabilities(entry);
        // The capability type's property definitions refined by the node type's, per node type.
        const merged = this.registry.memo('capability-property-defs', entry, () => new Map<string, Map<string, Dict>>());
        const caps = raw.capabilities;
        for (const name in caps) {
          const value = caps[name];
          const def = defs.get(name);
          if (!def) {
            this.diags.error('UNKNOWN_CAPABILITY', `node template ${node.name}: ${entry.name} has no capability "${name}"`, at(cl, name));
            continue;
          }
          const ctype = this.registry.resolve('capability', def.type);
          if (!ctype) continue;
          const v = isDict(value) ? value : {};
          for (const key in v) if (key !== 'properties' && key !== 'attributes' && key !== 'occurrences') this.diags.error('UNKNOWN_FIELD', `unknown field "${key}" in capability ${name} of ${node.name}`, at(at(cl, name), key));
          let propertyDefs = merged.get(name);
          if (!propertyDefs) {
            propertyDefs = this.registry.properties(ctype);
            const refined = Object.entries(def.properties).filter(([, pd]) => isDict(pd)) as [string, Dict][];
            if (refined.length) {
              propertyDefs = new Map(propertyDefs);
              for (const [p, pd] of refined) propertyDefs.set(p, { ...(propertyDefs.get(p) ?? {}), ...pd });
            }
            merged.set(name, propertyDefs);
          }
          this.checkPropertyValues(ctype, propertyDefs, v.properties, at(at(cl, name), 'properties'), `capability ${name} of ${node.name}`, fn, v.properties !== undefined);
        }
      }
    }
    // Interfaces.
    if (raw.interfaces !== undefined && raw.interfaces !== null) {
      this.checkInterfaces(this.registry.interfaces(entry), raw.interfaces, at(loc, 'interfaces'), `node template ${node.name}`, fn);
    }
    // Artifacts: the type's, then the template's.
    const typeArtifacts = this.registry.mapSection(entry, 'artifacts');
    if (typeArtifacts.size) {
      const normalized = this.registry.memo('artifacts', entry, () => Object.fromEntries([...typeArtifacts].map(([name, { def }]) => [name, normalizeArtifact(def)])));
      node.artifacts = { ...normalized };
    }
    if (raw.artifacts !== undefined && raw.artifacts !== null) {
      const al = at(loc, 'artifacts');
      if (!isDict(raw.artifacts)) this.diags.error('INVALID_FIELD', `artifacts of ${node.name} must be a map`, al);
      else {
        for (const [name, value] of Object.entries(raw.artifacts)) {
          const a = normalizeArtifact(value);
          const l = at(al, name);
          if (!a.file) this.diags.error('MISSING_FIELD', `artifact ${name} of ${node.name} has no file`, l);
          if (a.type !== undefined) {
            const t = this.typeRef('artifact', a.type, isDict(value) ? at(l, 'type') : l, `artifact ${name}`);
            if (t) a.type = t.name;
          } else if (!typeArtifacts.has(name)) this.diags.warn('MISSING_FIELD', `artifact ${name} of ${node.name} has no type`, l);
          node.artifacts[name] = { ...(node.artifacts[name] ?? {}), ...Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined)) } as NodeTemplate['artifacts'][string];
        }
      }
    }
    if (raw.node_filter !== undefined && !isDict(raw.node_filter)) this.diags.error('INVALID_FIELD', `node_filter of ${node.name} must be a map`, at(loc, 'node_filter'));
    if (raw.copy !== undefined) {
      if (typeof raw.copy !== 'string' || !this.topo.nodes.has(raw.copy)) this.diags.error('UNKNOWN_NODE', `node template ${node.name} copies "${String(raw.copy)}", which is not a node template`, at(loc, 'copy'));
    }
  }

  private checkInterfaces(defs: Map<string, { type?: string; operations: Map<string, unknown> }>, raw: unknown, loc: Loc, what: string, fn: FnContext): void {
    if (!isDict(raw)) {
      this.diags.error('INVALID_FIELD', `interfaces of ${what} must be a map`, loc);
      return;
    }
    for (const [name, value] of Object.entries(raw)) {
      const il = at(loc, name);
      const def = defs.get(name);
      if (!def) {
        this.diags.error('UNKNOWN_INTERFACE', `${what} has no interface "${name}" (known: ${[...defs.keys()].join(', ') || 'none'})`, il);
        continue;
      }
      if (!isDict(value)) {
        if (value !== null) this.diags.error('INVALID_FIELD', `interface ${name} of ${what} must be a map`, il);
        continue;
      }
      const ops = isDict(value.operations) ? Object.entries(value.operations).map(([k, v]) => [k, v, at(at(il, 'operations'), k)] as const)
        : Object.entries(value).filter(([k]) => k !== 'inputs' && k !== 'type' && k !== 'description' && k !== 'notifications').map(([k, v]) => [k, v, at(il, k)] as const);
      if (isDict(value.inputs)) for (const [k, v] of Object.entries(value.inputs)) this.checkAnyValue(v, at(at(il, 'inputs'), k), fn);
      for (const [op, body, ol] of ops) {
        if (!def.operations.has(op)) {
          this.diags.error('UNKNOWN_OPERATION', `${what}: interface ${name} has no operation "${op}"`, ol);
          continue;
        }
        if (body === null || typeof body === 'string') continue;
        if (!isDict(body)) {
          this.diags.error('INVALID_FIELD', `operation ${name}.${op} of ${what} must be a string or a map`, ol);
          continue;
        }
        for (const key of Object.keys(body)) {
          if (!['implementation', 'inputs', 'description', 'outputs', 'timeout', 'operation_host'].includes(key)) this.diags.error('UNKNOWN_FIELD', `unknown field "${key}" in operation ${name}.${op}`, at(ol, key));
        }
        const impl = body.implementation;
        if (impl !== undefined && impl !== null && typeof impl !== 'string' && !(isDict(impl) && typeof impl.primary !== 'undefined')) {
          this.diags.error('INVALID_FIELD', `implementation of ${name}.${op} must be a string or a map with primary`, at(ol, 'implementation'));
        }
        if (isDict(body.inputs)) for (const [k, v] of Object.entries(body.inputs)) this.checkAnyValue(v, at(at(ol, 'inputs'), k), fn);
      }
    }
  }

  /** A value with no declared type: only its functions are checked. */
  private checkAnyValue(value: unknown, loc: Loc, fn: FnContext): void {
    if (isFunction(value)) this.checkFunction(value, loc, fn);
    else if (Array.isArray(value)) value.forEach((v, i) => this.checkAnyValue(v, at(loc, i), fn));
    else if (isDict(value)) for (const [k, v] of Object.entries(value)) this.checkAnyValue(v, at(loc, k), fn);
  }

  // ---------------------------------------------------------------- functions

  private checkFunction(value: Record<string, unknown>, loc: Loc, fn: FnContext): void {
    const [name, args] = Object.entries(value)[0]!;
    const fail = (message: string, code = 'INVALID_FUNCTION') => this.diags.error(code, `${name}: ${message}`, loc);
    const list = Array.isArray(args) ? args : [args];
    for (const [i, a] of list.entries()) if (isFunction(a)) this.checkFunction(a, at(at(loc, name), i), fn);
    switch (name) {
      case 'get_input': {
        const input = list[0];
        if (typeof input !== 'string') return fail('needs an input name');
        if (!this.topo.inputs.has(input)) fail(`input "${input}" is not declared`, 'UNKNOWN_INPUT');
        return;
      }
      case 'get_property':
      case 'get_attribute': {
        if (!Array.isArray(args) || args.length < 2) return fail('needs [ entity, (capability or requirement,) name ]');
        const entity = this.functionEntity(args[0], fn, fail);
        if (!entity) return;
        if (args[0] === 'HOST') {
          // HOST searches the whole HostedOn chain, nearest host first.
          const chain: NodeTemplate[] = [];
          for (let h: NodeTemplate | undefined = entity; h && !chain.includes(h); h = this.hostOf(h)) chain.push(h);
          const found = chain.find((h) => {
            let ok = true;
            this.lookupProperty(h, args.slice(1), name === 'get_attribute', () => (ok = false));
            return ok;
          });
          if (found) return;
        }
        this.lookupProperty(entity, args.slice(1), name === 'get_attribute', fail);
        return;
      }
      case 'get_operation_output': {
        if (!Array.isArray(args) || args.length !== 4) return fail('needs [ entity, interface, operation, output ]');
        const entity = this.functionEntity(args[0], fn, fail);
        if (!entity?.entry) return;
        const iface = this.registry.interfaces(entity.entry).get(String(args[1]));
        if (!iface) return fail(`node ${entity.name} has no interface "${String(args[1])}"`, 'UNKNOWN_INTERFACE');
        if (!iface.operations.has(String(args[2]))) fail(`interface ${String(args[1])} of ${entity.name} has no operation "${String(args[2])}"`, 'UNKNOWN_OPERATION');
        return;
      }
      case 'concat':
        if (!Array.isArray(args) || args.length < 1) fail('needs a list of values');
        return;
      case 'join':
        if (!Array.isArray(args) || args.length < 1 || args.length > 2 || (!Array.isArray(args[0]) && !isFunction(args[0]))) fail('needs [ [values], delimiter ]');
        else if (args.length === 2 && typeof args[1] !== 'string') fail('the delimiter must be a string');
        return;
      case 'token':
        if (!Array.isArray(args) || args.length !== 3 || typeof args[1] !== 'string' || !Number.isInteger(args[2])) fail('needs [ string, separator, index ]');
        return;
      case 'get_artifact': {
        if (!Array.isArray(args) || args.length < 2 || args.length > 4) return fail('needs [ entity, artifact, (location, (remove)) ]');
        const entity = this.functionEntity(args[0], fn, fail);
        if (!entity?.entry) return;
        const declared = isDict(entity.raw.artifacts) && String(args[1]) in entity.raw.artifacts;
        if (!declared && !this.registry.mapSection(entity.entry, 'artifacts').has(String(args[1]))) fail(`node ${entity.name} has no artifact "${String(args[1])}"`, 'UNKNOWN_ARTIFACT');
        return;
      }
      case 'get_nodes_of_type':
        if (typeof args !== 'string' || !this.registry.resolve('node', args)) fail(`unknown node type ${JSON.stringify(args)}`, 'UNKNOWN_TYPE');
        return;
      default:
        return;
    }
  }

  private functionEntity(name: unknown, fn: FnContext, fail: (m: string, c?: string) => void): NodeTemplate | undefined {
    switch (name) {
      case 'SELF':
        if (!fn.self) fail(`SELF has no meaning in ${fn.where}`, 'INVALID_FUNCTION_CONTEXT');
        return fn.self;
      case 'SOURCE':
      case 'TARGET': {
        const node = name === 'SOURCE' ? fn.source : fn.target;
        if (!node) fail(`${name} is only meaningful in a relationship`, 'INVALID_FUNCTION_CONTEXT');
        return node;
      }
      case 'HOST': {
        if (!fn.self) {
          fail(`HOST has no meaning in ${fn.where}`, 'INVALID_FUNCTION_CONTEXT');
          return undefined;
        }
        const host = this.hostOf(fn.self);
        if (!host) fail(`node ${fn.self.name} is not hosted on another node`, 'INVALID_FUNCTION_CONTEXT');
        return host;
      }
      default: {
        const node = typeof name === 'string' ? this.topo.nodes.get(name) : undefined;
        if (!node) fail(`"${String(name)}" is not a node template`, 'UNKNOWN_NODE');
        return node;
      }
    }
  }

  /** [name, index...] or [capability|requirement, name, index...] on `node`. */
  private lookupProperty(node: NodeTemplate, path: unknown[], attribute: boolean, fail: (m: string, c?: string) => void): void {
    if (!node.entry) return;
    const word = attribute ? 'attribute' : 'property';
    const code = attribute ? 'UNKNOWN_ATTRIBUTE' : 'UNKNOWN_PROPERTY';
    const has = (entry: TypeEntry, name: string) =>
      this.registry.properties(entry).has(name) || (attribute && (this.registry.attributes(entry).has(name)));
    const [first, second] = path;
    if (typeof first !== 'string') return fail(`the ${word} name must be a string`);
    if (has(node.entry, first)) return;
    const caps = this.registry.capabilities(node.entry);
    const capDef = caps.get(first);
    if (capDef) {
      const ctype = this.registry.resolve('capability', capDef.type);
      if (typeof second !== 'string') return fail(`needs a ${word} name after capability ${first}`);
      if (ctype && !has(ctype, second) && !(second in capDef.properties)) fail(`capability ${first} of ${node.name} has no ${word} "${second}"`, code);
      return;
    }
    const req = node.requirements.find((r) => r.name === first);
    if (req || this.registry.requirements(node.entry).has(first)) {
      if (typeof second !== 'string') return fail(`needs a ${word} name after requirement ${first}`);
      const target = req?.node ? this.topo.nodes.get(req.node) : undefined;
      if (!target?.entry) return;
      if (has(target.entry, second)) return;
      const tcap = this.registry.capabilities(target.entry).get(req!.capability ?? first) ?? this.registry.capabilities(target.entry).get(first);
      const ctype = tcap ? this.registry.resolve('capability', tcap.type) : undefined;
      if (ctype && has(ctype, second)) return;
      const capByName = this.registry.capabilities(target.entry).get(second);
      if (capByName && typeof path[2] === 'string') return;
      fail(`node ${target.name} (through requirement ${first} of ${node.name}) has no ${word} "${second}"`, code);
      return;
    }
    fail(`node ${node.name} (${node.type}) has no ${word}, capability or requirement "${first}"`, code);
  }

  // ---------------------------------------------------------------- groups, policies, outputs

  private checkGroups(raw: unknown, loc: Loc): void {
    if (raw === undefined || raw === null) return;
    if (!isDict(raw)) return this.diags.error('INVALID_FIELD', 'groups must be a map', loc);
    for (const [name, d] of Object.entries(raw)) {
      const gl = at(loc, name);
      const def = isDict(d) ? d : {};
      const entry = this.typeRef('group', def.type, at(gl, 'type'), `group ${name}`);
      const members = Array.isArray(def.members) ? def.members.map(String) : [];
      if (def.members !== undefined && !Array.isArray(def.members)) this.diags.error('INVALID_FIELD', `members of group ${name} must be a list`, at(gl, 'members'));
      const allowed = entry ? this.registry.ancestors(entry).map((t) => t.def.members).find(Array.isArray) as string[] | undefined : undefined;
      members.forEach((m, i) => {
        const node = this.topo.nodes.get(m);
        if (!node) this.diags.error('UNKNOWN_NODE', `group ${name}: member "${m}" is not a node template`, at(at(gl, 'members'), i));
        else if (allowed?.length && !allowed.some((t) => this.registry.derives('node', node.type, t))) {
          this.diags.error('INVALID_MEMBER', `group ${name}: member ${m} (${node.type}) is not one of ${allowed.join(', ')}`, at(at(gl, 'members'), i));
        }
      });
      if (entry) this.checkProperties(entry, def.properties, at(gl, 'properties'), `group ${name}`, { where: `group ${name}` });
      this.topo.groups.set(name, { type: entry?.name ?? String(def.type), members, properties: isDict(def.properties) ? def.properties : {} });
    }
  }

  private checkPolicies(raw: unknown, loc: Loc): void {
    if (raw === undefined || raw === null) return;
    const list: [string, unknown, Loc][] = [];
    if (Array.isArray(raw)) {
      raw.forEach((item, i) => {
        if (isDict(item) && Object.keys(item).length === 1) {
          const [n, v] = Object.entries(item)[0]!;
          list.push([n, v, at(at(loc, i), n)]);
        } else this.diags.error('INVALID_FIELD', 'a policy must be a map with one entry', at(loc, i));
      });
    } else if (isDict(raw)) for (const [n, v] of Object.entries(raw)) list.push([n, v, at(loc, n)]);
    else return this.diags.error('INVALID_FIELD', 'policies must be a list', loc);
    for (const [name, d, pl] of list) {
      const def = isDict(d) ? d : {};
      const entry = this.typeRef('policy', def.type, at(pl, 'type'), `policy ${name}`);
      const targets = Array.isArray(def.targets) ? def.targets.map(String) : [];
      const allowed = entry ? this.registry.ancestors(entry).map((t) => t.def.targets).find(Array.isArray) as string[] | undefined : undefined;
      targets.forEach((t, i) => {
        const node = this.topo.nodes.get(t);
        const group = this.topo.groups.get(t);
        if (!node && !group) this.diags.error('UNKNOWN_NODE', `policy ${name}: target "${t}" is neither a node template nor a group`, at(at(pl, 'targets'), i));
        else if (allowed?.length && !allowed.some((a) => (node ? this.registry.derives('node', node.type, a) : this.registry.derives('group', group!.type, a)))) {
          this.diags.error('INVALID_TARGET', `policy ${name}: target ${t} is not one of ${allowed.join(', ')}`, at(at(pl, 'targets'), i));
        }
      });
      if (entry) this.checkProperties(entry, def.properties, at(pl, 'properties'), `policy ${name}`, { where: `policy ${name}` });
      this.topo.policies.push({ name, type: entry?.name ?? String(def.type), targets, properties: isDict(def.properties) ? def.properties : {} });
    }
  }

  private checkOutputs(raw: unknown, loc: Loc): void {
    if (raw === undefined || raw === null) return;
    if (!isDict(raw)) return this.diags.error('INVALID_FIELD', 'outputs must be a map', loc);
    for (const [name, d] of Object.entries(raw)) {
      const ol = at(loc, name);
      if (!isDict(d) || !('value' in d)) {
        this.diags.error('MISSING_FIELD', `output ${name} has no value`, ol);
        continue;
      }
      this.checkAnyValue(d.value, at(ol, 'value'), { where: `output ${name}` });
      this.topo.outputs.set(name, { value: d.value, description: typeof d.description === 'string' ? d.description : undefined });
    }
  }

  private checkSubstitution(raw: unknown, loc: Loc): void {
    if (raw === undefined || raw === null) return;
    if (!isDict(raw)) return this.diags.error('INVALID_FIELD', 'substitution_mappings must be a map', loc);
    const entry = this.typeRef('node', raw.node_type, at(loc, 'node_type'), 'substitution_mappings node_type');
    if (!entry) return;
    const mapping = (v: unknown): unknown[] | undefined => (Array.isArray(v) ? v : isDict(v) && Array.isArray(v.mapping) ? v.mapping : undefined);
    for (const section of ['capabilities', 'requirements'] as const) {
      const m = raw[section];
      if (!isDict(m)) continue;
      const known = section === 'capabilities' ? this.registry.capabilities(entry) : this.registry.requirements(entry);
      for (const [name, v] of Object.entries(m)) {
        const l = at(at(loc, section), name);
        if (!known.has(name)) this.diags.error(section === 'capabilities' ? 'UNKNOWN_CAPABILITY' : 'UNKNOWN_REQUIREMENT', `substitution_mappings: ${entry.name} has no ${section.slice(0, -1).replace('capabilitie', 'capability')} "${name}"`, l);
        const target = mapping(v);
        if (!target || target.length !== 2) {
          this.diags.error('INVALID_FIELD', `substitution_mappings ${section}.${name} must be [ node_template, name ]`, l);
          continue;
        }
        const node = this.topo.nodes.get(String(target[0]));
        if (!node) {
          this.diags.error('UNKNOWN_NODE', `substitution_mappings ${section}.${name}: "${String(target[0])}" is not a node template`, l);
          continue;
        }
        if (!node.entry) continue;
        const ok = section === 'capabilities' ? this.registry.capabilities(node.entry).has(String(target[1])) : this.registry.requirements(node.entry).has(String(target[1]));
        if (!ok) this.diags.error(section === 'capabilities' ? 'UNKNOWN_CAPABILITY' : 'UNKNOWN_REQUIREMENT', `substitution_mappings ${section}.${name}: node ${node.name} has no ${section === 'capabilities' ? 'capability' : 'requirement'} "${String(target[1])}"`, l);
      }
    }
    if (isDict(raw.properties)) {
      const props = this.registry.properties(entry);
      for (const [name, v] of Object.entries(raw.properties)) {
        const l = at(at(loc, 'properties'), name);
        if (!props.has(name)) this.diags.error('UNKNOWN_PROPERTY', `substitution_mappings: ${entry.name} has no property "${name}"`, l);
        const target = mapping(v);
        if (target && target.length === 1 && !this.topo.inputs.has(String(target[0]))) this.diags.error('UNKNOWN_INPUT', `substitution_mappings properties.${name}: input "${String(target[0])}" is not declared`, l);
      }
    }
  }

  // ---------------------------------------------------------------- graph

  private buildGraph(): void {
    const edges: Edge[] = [];
    const kinds = new Map<string, EdgeKind | null>();
    // Nodes by position in template order; each node's dependencies as positions.
    const nodes = [...this.topo.nodes.values()];
    const index = new Map<string, number>();
    for (let i = 0; i < nodes.length; i++) index.set(nodes[i]!.name, i);
    const deps: number[][] = new Array(nodes.length);
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i]!;
      const list: number[] = [];
      for (const r of node.requirements) {
        if (!r.node || !r.relationship) continue;
        let kind = kinds.get(r.relationship);
        if (kind === undefined) {
          kind = edgeKinds.find((k) => this.registry.derives('relationship', r.relationship, `tosca.relationships.${k}`)) ?? null;
          kinds.set(r.relationship, kind);
        }
        if (!kind) continue;
        edges.push({ source: node.name, target: r.node, kind, requirement: r.name, relationship: r.relationship });
        const target = index.get(r.node);
        if (target !== undefined) list.push(target);
      }
      deps[i] = list;
    }
    this.topo.edges = edges;
    // Depth-first (iterative, so long chains cannot overflow the stack), in template order: what
    // a node needs comes first; an edge back into the current path is a cycle.
    // state: 0 not seen, 1 on the current path, 2 done.
    const state = new Uint8Array(nodes.length);
    const order: string[] = [];
    const reported = new Set<string>();
    const path: number[] = [];
    const next: number[] = [];
    for (let root = 0; root < nodes.length; root++) {
      if (state[root]) continue;
      path.push(root);
      next.push(0);
      state[root] = 1;
      while (path.length) {
        const top = path.length - 1;
        const n = path[top]!;
        const list = deps[n]!;
        const i = next[top]!;
        if (i >= list.length) {
          path.pop();
          next.pop();
          state[n] = 2;
          order.push(nodes[n]!.name);
          continue;
        }
        next[top] = i + 1;
        const d = list[i]!;
        if (state[d] === 1) {
          const cycle = [...path.slice(path.indexOf(d)), d].map((c) => nodes[c]!.name);
          const key = cycle.slice(0, -1).sort().join(',');
          if (!reported.has(key)) {
            reported.add(key);
            this.diags.error('DEPENDENCY_CYCLE', `dependency cycle: ${cycle.join(' -> ')}`, nodes[d]!.loc);
          }
        } else if (state[d] === 0) {
          state[d] = 1;
          path.push(d);
          next.push(0);
        }
      }
    }
    this.topo.order = order;
  }
}

function isEmpty(value: Dict): boolean {
  for (const _ in value) return false;
  return true;
}

/** The key of a map with exactly one entry, else undefined. */
function soleKey(value: Dict): string | undefined {
  let key: string | undefined;
  for (const k in value) {
    if (key !== undefined) return undefined;
    key = k;
  }
  return key;
}

function normalizeArtifact(value: unknown): { type?: string; file?: unknown; raw: unknown } {
  if (typeof value === 'string') return { file: value, raw: value };
  if (isDict(value)) return { type: typeof value.type === 'string' ? value.type : undefined, file: typeof value.file === 'string' || isFunction(value.file) ? value.file : undefined, raw: value };
  return { raw: value };
}

export type { Schema };
