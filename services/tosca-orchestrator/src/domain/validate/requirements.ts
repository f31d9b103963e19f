// Relationship templates, and every node template's requirements resolved: the relationship
// (a type, a relationship template or a map), the target node (named, or the one template that
// matches the type, the capability and the node_filter), the target capability (valid source
// types, valid relationship targets, occurrences).
import { at, type Loc } from '../diagnostics';
import type { NodeTemplate, RequirementAssignment } from '../model';
import { isDict, type Dict, type TypeEntry } from '../registry';
import { filterMismatch, findCapability } from './node-filter';
import { checkInterfaces, checkProperties } from './properties';
import type { ValidationRun } from './run';

export function collectRelationshipTemplates(run: ValidationRun, raw: unknown, loc: Loc): void {
  if (raw === undefined || raw === null) return;
  if (!isDict(raw)) {
    run.diags.error('INVALID_FIELD', 'relationship_templates must be a map', loc);
    return;
  }
  for (const [name, d] of Object.entries(raw)) {
    const rl = at(loc, name);
    const def = isDict(d) ? d : {};
    const entry = run.typeRef('relationship', def.type, at(rl, 'type'), `relationship template ${name}`);
    const props = isDict(def.properties) ? def.properties : {};
    run.topo.relationshipTemplates.set(name, { type: entry?.name ?? String(def.type), properties: props, raw: def });
    const fn = entry ? { where: name, relationship: { name, entry } } : { where: name };
    if (entry) checkProperties(run, entry, props, at(rl, 'properties'), `relationship template ${name}`, fn);
    if (entry && isDict(def.interfaces))
      checkInterfaces(run, run.registry.interfaces(entry), def.interfaces, at(rl, 'interfaces'), `relationship template ${name}`, fn);
  }
}

export function resolveRequirements(run: ValidationRun, node: NodeTemplate): void {
  const { registry, diags, topo } = run;
  const raw = node.raw.requirements;
  if (raw === undefined || raw === null || !node.entry) return;
  const rl = at(node.loc, 'requirements');
  if (!Array.isArray(raw)) {
    diags.error('INVALID_FIELD', `requirements of node template ${node.name} must be a list`, rl);
    return;
  }
  const defs = registry.requirements(node.entry);
  const counts = new Map<string, number>();
  raw.forEach((item, index) => {
    const il = at(rl, index);
    const name = isDict(item) ? soleKey(item) : undefined;
    if (name === undefined) {
      diags.error('INVALID_FIELD', `requirement ${index} of ${node.name} must be a map with one entry`, il);
      return;
    }
    const value = (item as Dict)[name];
    const loc = at(il, name);
    const def = defs.get(name);
    if (!def) {
      diags.error('UNKNOWN_REQUIREMENT', `node template ${node.name}: ${node.type} has no requirement "${name}"`, il);
      return;
    }
    counts.set(name, (counts.get(name) ?? 0) + 1);
    const a = typeof value === 'string' ? { node: value } : isDict(value) ? value : {};
    // Every field from the start, so all assignments share one shape (later reads stay fast).
    const assignment: RequirementAssignment = {
      name,
      index,
      node: undefined,
      capability: undefined,
      relationship: undefined,
      relationshipTemplate: undefined,
      properties: {},
      loc: il,
    };
    // The relationship: a type name, a relationship template, or a map with a type.
    let relType = def.relationship;
    let relDef: Dict | undefined;
    if (typeof a.relationship === 'string') {
      const tpl = topo.relationshipTemplates.get(a.relationship);
      if (tpl) {
        assignment.relationshipTemplate = a.relationship;
        relType = tpl.type;
      } else if (registry.resolve('relationship', a.relationship)) relType = a.relationship;
      else {
        diags.error(
          'UNKNOWN_TYPE',
          `requirement ${name} of ${node.name}: "${a.relationship}" is neither a relationship type nor a relationship template`,
          at(loc, 'relationship'),
        );
      }
    } else if (isDict(a.relationship)) {
      relDef = a.relationship;
      if (a.relationship.type !== undefined) {
        const e = run.typeRef('relationship', a.relationship.type, at(at(loc, 'relationship'), 'type'), `requirement ${name} relationship`);
        if (e) relType = e.name;
      }
    }
    const relEntry = relType ? registry.resolve('relationship', relType) : undefined;
    assignment.relationship = relEntry?.name ?? relType ?? 'tosca.relationships.DependsOn';
    if (relEntry && relDef) {
      const props = isDict(relDef.properties) ? relDef.properties : {};
      assignment.properties = props;
      checkProperties(
        run,
        relEntry,
        props,
        at(at(loc, 'relationship'), 'properties'),
        `relationship of ${node.name}.${name}`,
        { where: node.name, self: node, relationship: { name: `${node.name}.${name}`, entry: relEntry } },
        undefined,
        false,
      );
    }
    // The target node: a node template, or a node type to find one by.
    let targetName = typeof a.node === 'string' ? a.node : undefined;
    const filter = isDict(a.node_filter) ? a.node_filter : def.nodeFilter;
    let target = targetName ? topo.nodes.get(targetName) : undefined;
    const nodeType = targetName && !target ? targetName : def.node;
    if (targetName && !target) {
      if (registry.resolve('node', targetName)) targetName = undefined;
      else {
        diags.error(
          'UNKNOWN_NODE',
          `requirement ${name} of ${node.name} names node "${targetName}", which is neither a node template nor a node type`,
          at(loc, 'node'),
        );
        return;
      }
    }
    if (!targetName) {
      const candidates = [...topo.nodes.values()].filter(
        (n) =>
          n !== node &&
          n.entry &&
          (!nodeType || registry.derivesFrom(n.entry, nodeType)) &&
          (!filter || filterMismatch(run, n, filter).length === 0) &&
          findCapability(run, n, typeof a.capability === 'string' ? a.capability : def.capability) !== undefined,
      );
      if (candidates.length === 1) targetName = candidates[0]!.name;
      else {
        diags.warn(
          'REQUIREMENT_UNRESOLVED',
          `requirement ${name} of ${node.name}: ${candidates.length === 0 ? 'no' : `${candidates.length}`} node templates match${nodeType ? ` type ${nodeType}` : ''}; left to the orchestrator`,
          il,
        );
        node.requirements.push(assignment);
        return;
      }
    }
    target ??= topo.nodes.get(targetName)!;
    assignment.node = target.name;
    if (nodeType && target.entry && !registry.derivesFrom(target.entry, nodeType) && registry.resolve('node', nodeType)) {
      diags.error(
        'REQUIREMENT_TYPE_MISMATCH',
        `requirement ${name} of ${node.name}: node ${target.name} is a ${target.type}, not a ${nodeType}`,
        at(loc, 'node').path === loc.path ? il : typeof value === 'string' ? il : at(loc, 'node'),
      );
    }
    const capWanted = typeof a.capability === 'string' ? a.capability : def.capability;
    if (target.entry && capWanted) {
      const cap = findCapability(run, target, capWanted);
      if (!cap) {
        diags.error(
          'CAPABILITY_NOT_FOUND',
          `requirement ${name} of ${node.name}: node ${target.name} (${target.type}) has no capability ${capWanted}`,
          il,
        );
      } else {
        assignment.capability = cap;
        const cdef = registry.capabilities(target.entry).get(cap)!;
        // Only capabilities that limit their occurrences need counting.
        if (cdef.occurrences !== undefined) {
          const key = `${target.name}\u0000${cap}`;
          run.incoming.set(key, (run.incoming.get(key) ?? 0) + 1);
        }
        if (cdef.validSourceTypes.length && node.entry && !cdef.validSourceTypes.some((t) => registry.derivesFrom(node.entry!, t))) {
          diags.error(
            'INVALID_SOURCE_TYPE',
            `requirement ${name} of ${node.name}: capability ${cap} of ${target.name} accepts only ${cdef.validSourceTypes.join(', ')}, not ${node.type}`,
            il,
          );
        }
        const validTargets = relEntry
          ? registry.memo(
              'valid-target-types',
              relEntry,
              () =>
                registry
                  .ancestors(relEntry)
                  .map((t) => t.def.valid_target_types)
                  .find(Array.isArray) ?? null,
            )
          : undefined;
        if (Array.isArray(validTargets) && validTargets.length && !acceptsTarget(run, relEntry!, validTargets, cdef.type)) {
          diags.warn(
            'INVALID_RELATIONSHIP_TARGET',
            `requirement ${name} of ${node.name}: relationship ${relEntry!.name} targets ${validTargets.join(', ')}, not ${cdef.type}`,
            il,
          );
        }
      }
    }
    if (filter && target.entry) {
      for (const problem of filterMismatch(run, target, filter)) {
        diags.error(
          'NODE_FILTER_MISMATCH',
          `requirement ${name} of ${node.name}: node ${target.name} does not satisfy the node_filter: ${problem}`,
          il,
        );
      }
    }
    if (relDef && relEntry && isDict(relDef.interfaces)) {
      checkInterfaces(
        run,
        registry.interfaces(relEntry),
        relDef.interfaces,
        at(at(loc, 'relationship'), 'interfaces'),
        `relationship of ${node.name}.${name}`,
        {
          where: node.name,
          self: node,
          source: node,
          target,
          ...(relEntry ? { relationship: { name: `${node.name}.${name}`, entry: relEntry } } : {}),
        },
      );
    }
    node.requirements.push(assignment);
  });
  for (const [name, count] of counts) {
    const [, max] = defs.get(name)!.occurrences;
    if (count > max)
      diags.error(
        'REQUIREMENT_OCCURRENCES',
        `node template ${node.name}: requirement "${name}" is used ${count} times, at most ${max} allowed`,
        rl,
      );
  }
}

/** Whether a capability type is among a relationship type's valid targets (once per pair). */
function acceptsTarget(run: ValidationRun, relEntry: TypeEntry, validTargets: unknown[], capabilityType: string): boolean {
  const accepted = run.registry.memo('accepts-target', relEntry, () => new Map<string, boolean>());
  let ok = accepted.get(capabilityType);
  if (ok === undefined) {
    ok = validTargets.some((t) => run.registry.derives('capability', capabilityType, t));
    accepted.set(capabilityType, ok);
  }
  return ok;
}

/** Capabilities that are the target of more requirements than their occurrences allow. */
export function checkCapabilityOccurrences(run: ValidationRun): void {
  for (const [key, count] of run.incoming) {
    const [nodeName, cap] = key.split('\u0000') as [string, string];
    const node = run.topo.nodes.get(nodeName)!;
    const max = node.entry ? run.registry.capabilities(node.entry).get(cap)?.occurrences?.[1] : undefined;
    if (max !== undefined && count > max) {
      run.diags.error(
        'CAPABILITY_OCCURRENCES',
        `capability ${cap} of ${nodeName} is the target of ${count} requirements, at most ${max} allowed`,
        node.loc,
      );
    }
  }
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
