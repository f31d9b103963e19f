// Node templates: first collected with their type and default values (so requirements can point
// anywhere), then checked once requirements are resolved: properties, attributes, capabilities,
// interfaces, artifacts, node_filter and copy.
import { at, type Loc } from '../diagnostics';
import type { NodeTemplate } from '../model';
import { isDict, type Dict, type TypeEntry } from '../registry';
import { checkValue, isFunction } from '../values';
import { checkInterfaces, checkProperties, checkPropertyValues } from './properties';
import type { FnContext, ValidationRun } from './run';

const nodeTemplateKeys = new Set([
  'type',
  'description',
  'metadata',
  'directives',
  'properties',
  'attributes',
  'requirements',
  'capabilities',
  'interfaces',
  'artifacts',
  'node_filter',
  'copy',
]);

/** The node template with its type, property values with defaults and capability defaults. */
export function collectNode(run: ValidationRun, name: string, raw: unknown, loc: Loc): void {
  const def = isDict(raw) ? raw : {};
  if (!isDict(raw)) run.diags.error('INVALID_FIELD', `node template "${name}" must be a map`, loc);
  for (const key in def)
    if (!nodeTemplateKeys.has(key)) run.diags.error('UNKNOWN_FIELD', `unknown field "${key}" in node template ${name}`, at(loc, key));
  let entry: TypeEntry | undefined;
  if (def.type === undefined) run.diags.error('MISSING_FIELD', `node template ${name} has no type`, loc);
  else entry = run.typeRef('node', def.type, at(loc, 'type'), `node template ${name}`);
  const facts = entry ? nodeTypeFacts(run, entry) : undefined;
  const node: NodeTemplate = {
    name,
    type: entry?.name ?? String(def.type ?? ''),
    entry,
    ancestors: facts?.ancestorNames ?? [],
    raw: def,
    properties: {},
    capabilities: {},
    requirements: [],
    artifacts: {},
    loc,
  };
  if (entry && facts) {
    // Property values with defaults, so functions and filters can see them.
    const given = isDict(def.properties) ? def.properties : {};
    for (const [prop, pdef] of run.registry.properties(entry)) {
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
  run.topo.nodes.set(name, node);
}

/** What every template of a node type starts from, worked out once per type. */
function nodeTypeFacts(
  run: ValidationRun,
  entry: TypeEntry,
): { ancestorNames: string[]; capabilityDefaults: [string, string, Dict][]; capabilityEntries: NodeTemplate['capabilities'] } {
  const { registry } = run;
  return registry.memo('node-template-facts', entry, () => {
    const capabilityDefaults: [string, string, Dict][] = [];
    for (const [cap, cdef] of registry.capabilities(entry)) {
      const ctype = registry.resolve('capability', cdef.type);
      const props: Dict = {};
      if (ctype) for (const [p, pd] of registry.properties(ctype)) if (pd.default !== undefined) props[p] = pd.default;
      for (const [p, pd] of Object.entries(cdef.properties)) if (isDict(pd) && pd.default !== undefined) props[p] = pd.default;
      capabilityDefaults.push([cap, ctype?.name ?? cdef.type, props]);
    }
    return {
      ancestorNames: registry.ancestors(entry).map((t) => t.name),
      capabilityDefaults,
      capabilityEntries: Object.fromEntries(capabilityDefaults.map(([cap, type, props]) => [cap, { type, properties: props }])),
    };
  });
}

/** Everything a node template assigns, against its type (after requirements are resolved). */
export function checkNodeValues(run: ValidationRun, node: NodeTemplate): void {
  const { registry, diags } = run;
  const entry = node.entry;
  if (!entry) return;
  const { raw, loc } = node;
  const fn: FnContext = { where: node.name, self: node };
  const substitutable = Array.isArray(raw.directives) && raw.directives.includes('substitutable');
  checkProperties(run, entry, raw.properties, at(loc, 'properties'), `node template ${node.name}`, fn, undefined, !substitutable);
  // Attributes: known names, values checked when given.
  if (isDict(raw.attributes)) {
    const attrs = registry.attributes(entry);
    const props = registry.properties(entry);
    for (const [name, value] of Object.entries(raw.attributes)) {
      const def = attrs.get(name) ?? props.get(name);
      if (!def)
        diags.error(
          'UNKNOWN_ATTRIBUTE',
          `node template ${node.name}: ${entry.name} has no attribute "${name}"`,
          at(at(loc, 'attributes'), name),
        );
      else checkValue(run.valueCtx(fn), value, def, at(at(loc, 'attributes'), name), `node template ${node.name} attribute ${name}`);
    }
  }
  if (raw.capabilities !== undefined && raw.capabilities !== null) checkCapabilities(run, node, entry, raw.capabilities, fn);
  if (raw.interfaces !== undefined && raw.interfaces !== null) {
    checkInterfaces(run, registry.interfaces(entry), raw.interfaces, at(loc, 'interfaces'), `node template ${node.name}`, fn);
  }
  checkArtifacts(run, node, entry);
  if (raw.node_filter !== undefined && !isDict(raw.node_filter))
    diags.error('INVALID_FIELD', `node_filter of ${node.name} must be a map`, at(loc, 'node_filter'));
  if (raw.copy !== undefined) {
    if (typeof raw.copy !== 'string' || !run.topo.nodes.has(raw.copy))
      diags.error('UNKNOWN_NODE', `node template ${node.name} copies "${String(raw.copy)}", which is not a node template`, at(loc, 'copy'));
  }
}

/** Capability assignments: known capabilities, known fields, property values. */
function checkCapabilities(run: ValidationRun, node: NodeTemplate, entry: TypeEntry, caps: unknown, fn: FnContext): void {
  const { registry, diags } = run;
  const cl = at(node.loc, 'capabilities');
  if (!isDict(caps)) {
    diags.error('INVALID_FIELD', `capabilities of ${node.name} must be a map`, cl);
    return;
  }
  const defs = registry.capabilities(entry);
  // The capability type's property definitions refined by the node type's, per node type.
  const merged = registry.memo('capability-property-defs', entry, () => new Map<string, Map<string, Dict>>());
  for (const name in caps) {
    const value = caps[name];
    const def = defs.get(name);
    if (!def) {
      diags.error('UNKNOWN_CAPABILITY', `node template ${node.name}: ${entry.name} has no capability "${name}"`, at(cl, name));
      continue;
    }
    const ctype = registry.resolve('capability', def.type);
    if (!ctype) continue;
    const v = isDict(value) ? value : {};
    for (const key in v)
      if (key !== 'properties' && key !== 'attributes' && key !== 'occurrences')
        diags.error('UNKNOWN_FIELD', `unknown field "${key}" in capability ${name} of ${node.name}`, at(at(cl, name), key));
    let propertyDefs = merged.get(name);
    if (!propertyDefs) {
      propertyDefs = registry.properties(ctype);
      const refined = Object.entries(def.properties).filter(([, pd]) => isDict(pd)) as [string, Dict][];
      if (refined.length) {
        propertyDefs = new Map(propertyDefs);
        for (const [p, pd] of refined) propertyDefs.set(p, { ...(propertyDefs.get(p) ?? {}), ...pd });
      }
      merged.set(name, propertyDefs);
    }
    checkPropertyValues(
      run,
      ctype,
      propertyDefs,
      v.properties,
      at(at(cl, name), 'properties'),
      `capability ${name} of ${node.name}`,
      fn,
      v.properties !== undefined,
    );
  }
}

/** Artifacts: the type's, then the template's (a file each, a known type). */
function checkArtifacts(run: ValidationRun, node: NodeTemplate, entry: TypeEntry): void {
  const { registry, diags } = run;
  const { raw, loc } = node;
  const typeArtifacts = registry.mapSection(entry, 'artifacts');
  if (typeArtifacts.size) {
    const normalized = registry.memo('artifacts', entry, () =>
      Object.fromEntries([...typeArtifacts].map(([name, { def }]) => [name, normalizeArtifact(def)])),
    );
    node.artifacts = { ...normalized };
  }
  if (raw.artifacts === undefined || raw.artifacts === null) return;
  const al = at(loc, 'artifacts');
  if (!isDict(raw.artifacts)) {
    diags.error('INVALID_FIELD', `artifacts of ${node.name} must be a map`, al);
    return;
  }
  for (const [name, value] of Object.entries(raw.artifacts)) {
    const a = normalizeArtifact(value);
    const l = at(al, name);
    if (!a.file) diags.error('MISSING_FIELD', `artifact ${name} of ${node.name} has no file`, l);
    if (a.type !== undefined) {
      const t = run.typeRef('artifact', a.type, isDict(value) ? at(l, 'type') : l, `artifact ${name}`);
      if (t) a.type = t.name;
    } else if (!typeArtifacts.has(name)) diags.warn('MISSING_FIELD', `artifact ${name} of ${node.name} has no type`, l);
    node.artifacts[name] = {
      ...(node.artifacts[name] ?? {}),
      ...Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined)),
    } as NodeTemplate['artifacts'][string];
  }
}

function normalizeArtifact(value: unknown): { type?: string; file?: unknown; raw: unknown } {
  if (typeof value === 'string') return { file: value, raw: value };
  if (isDict(value))
    return {
      type: typeof value.type === 'string' ? value.type : undefined,
      file: typeof value.file === 'string' || isFunction(value.file) ? value.file : undefined,
      raw: value,
    };
  return { raw: value };
}

function isEmpty(value: Dict): boolean {
  for (const _ in value) return false;
  return true;
}
