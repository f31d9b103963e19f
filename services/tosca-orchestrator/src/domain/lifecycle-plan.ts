// Which lifecycle operations a topology's software runs, in which instance and in which order
// (TOSCA 1.3: the Standard interface of nodes, the Configure interface of relationships).
//
// Order: a node deploys only once everything it requires (its host, what it depends on or
// connects to) has deployed; then, on each instance that hosts it: create; pre_configure_source
// and pre_configure_target of its relationships; configure; post_configure_source/target;
// start; add_target and add_source. Undeploying goes the other way: a node's remove_target and
// remove_source, stop and delete run once whatever requires it has undeployed. Each operation
// runs in the instance hosting the node it belongs to (HostedOn down to a compute or
// container); a relationship's *_source operations in the source's instance, *_target in the
// target's, once per pair of source and target instances. Pure: no I/O.
import { posix } from 'node:path';
import { evaluate, hostOf } from './functions';
import type { NodeTemplate, RequirementAssignment, Topology } from './model';
import { plan, type Plan } from './plan';
import { isDict, type Dict } from './registry';

export interface LifecycleOp {
  key: string;
  /** The node template the operation is for (a relationship's source or target). */
  node: string;
  /** The instance (key) it runs in. */
  instance: string;
  /** Instances whose removal runs it (an undeploy operation); a pair's both ends. */
  involves: string[];
  interface: 'Standard' | 'Configure';
  operation: string;
  /** For Configure: "source.requirement -> target", and the relationship template's name if it has one. */
  relationship?: string;
  relationshipTemplate?: string;
  /** For Configure: the relationship's source node. */
  source?: string;
  direction: 'deploy' | 'undeploy';
  /** The primary artifact's path among the template's files, and its dependencies'. */
  implementation: string;
  dependencies: string[];
  /**
   * Input values with every function resolved but get_attribute of runtime attributes and
   * get_operation_output, whose entities are node names already (resolved when it runs).
   */
  inputs: Dict;
  timeoutS: number;
  /** Operations that must have ended first. */
  after: string[];
  /** Why it does not run, when it does not (an Ansible playbook, an artifact fetched by URL). */
  skip?: string;
}

const DEPLOY_STAGES: [string, string[]][] = [
  ['create', []],
  ['pre_configure', ['pre_configure_source', 'pre_configure_target']],
  ['configure', []],
  ['post_configure', ['post_configure_source', 'post_configure_target']],
  ['start', []],
  ['add', ['add_target', 'add_source']],
];
const UNDEPLOY_STAGES: [string, string[]][] = [
  ['remove', ['remove_target', 'remove_source']],
  ['stop', []],
  ['delete', []],
];
const SOURCE_SIDE = new Set(['pre_configure_source', 'post_configure_source', 'add_target', 'remove_target']);
/** Attributes known only once instances run; anything else resolves from properties now. */
export const RUNTIME_ATTRIBUTES = new Set(['private_address', 'public_address', 'ip_address', 'tosca_id']);
const DEFAULT_TIMEOUT_S = 600;

interface OperationDef {
  implementation?: unknown;
  inputs: Dict;
  timeout?: unknown;
}

/** An interface's operations, type definitions first, then what the template assigns over them. */
function operationsOf(
  typeDefs: Map<string, { type?: string; operations: Map<string, unknown>; inputs: Dict }>,
  assignedList: unknown[],
  wanted: string,
) {
  const out = new Map<string, OperationDef>();
  const merge = (op: string, value: unknown, interfaceInputs: Dict) => {
    const previous = out.get(op) ?? { inputs: { ...interfaceInputs } };
    if (typeof value === 'string') out.set(op, { ...previous, implementation: value });
    else if (isDict(value))
      out.set(op, {
        implementation: value.implementation ?? previous.implementation,
        inputs: { ...previous.inputs, ...interfaceInputs, ...(isDict(value.inputs) ? value.inputs : {}) },
        timeout: value.timeout ?? previous.timeout,
      });
  };
  for (const [name, def] of typeDefs) {
    if (name !== wanted && def.type !== fullInterface(wanted)) continue;
    for (const [op, value] of def.operations) merge(op, value, definedInputs(def.inputs));
  }
  for (const assigned of assignedList) {
    if (!isDict(assigned)) continue;
    for (const [name, value] of Object.entries(assigned)) {
      if ((name !== wanted && name !== fullInterface(wanted)) || !isDict(value)) continue;
      const ops = isDict(value.operations) ? value.operations : value;
      const interfaceInputs = isDict(value.inputs) ? value.inputs : {};
      for (const [op, body] of Object.entries(ops)) {
        if (!['inputs', 'type', 'description', 'notifications', 'operations'].includes(op)) merge(op, body, interfaceInputs);
      }
    }
  }
  return out;
}

const fullInterface = (name: string) =>
  name === 'Standard' ? 'tosca.interfaces.node.lifecycle.Standard' : 'tosca.interfaces.relationship.Configure';

/** Input definitions of a type's interface give their value or default; assignments are values. */
function definedInputs(inputs: Dict): Dict {
  const out: Dict = {};
  for (const [k, v] of Object.entries(inputs)) {
    if (isDict(v) && typeof v.type === 'string' && ('value' in v || 'default' in v)) out[k] = v.value ?? v.default;
    else if (!(isDict(v) && typeof v.type === 'string')) out[k] = v;
  }
  return out;
}

/** The relationship's interfaces: its type's, its template's, and those written in the requirement. */
function relationshipAssigned(topology: Topology, node: NodeTemplate, r: RequirementAssignment): unknown[] {
  const out: unknown[] = [];
  if (r.relationshipTemplate) out.push(topology.relationshipTemplates.get(r.relationshipTemplate)?.raw.interfaces);
  const item = Array.isArray(node.raw.requirements) ? node.raw.requirements[r.index] : undefined;
  const value = isDict(item) ? item[r.name] : undefined;
  if (isDict(value) && isDict(value.relationship)) out.push(value.relationship.interfaces);
  return out;
}

/** A relationship as functions read it (SELF in its operations): its name and property values. */
function relationshipEntity(topology: Topology, node: NodeTemplate, r: RequirementAssignment): NodeTemplate {
  const template = r.relationshipTemplate ? topology.relationshipTemplates.get(r.relationshipTemplate) : undefined;
  return {
    ...{ name: r.relationshipTemplate ?? `${node.name}.${r.name}`, type: r.relationship ?? '', ancestors: [], raw: {} },
    ...{ properties: { ...template?.properties, ...r.properties }, capabilities: {}, requirements: [], artifacts: {}, loc: r.loc },
  };
}

/** The node whose instances host `node` (itself when it is one), if any. */
function instanceNodeOf(topology: Topology, plan: Plan, node: NodeTemplate): string | undefined {
  const seen = new Set<string>();
  for (let n: NodeTemplate | undefined = node; n && !seen.has(n.name); n = hostOf(topology, n)) {
    if (plan.instances.some((i) => i.node === n!.name)) return n.name;
    seen.add(n.name);
  }
  return undefined;
}

export interface LifecyclePlan {
  ops: LifecycleOp[];
  problems: { node: string; message: string }[];
  /** Each node's property and capability values, as text: what an update compares. */
  fingerprints: Record<string, string>;
  /** The nodes each node requires (its requirements' targets). */
  requires: Record<string, string[]>;
}

/** The lifecycle operations of the topology's nodes over the plan's instances. */
export function lifecyclePlan(topology: Topology, plan: Plan, files: Record<string, string>, mainFile: string): LifecyclePlan {
  const built: LifecyclePlan = { ops: [], problems: [], fingerprints: {}, requires: {} };
  const hostsOf = (node: NodeTemplate) => {
    const owner = instanceNodeOf(topology, plan, node);
    return { owner, instances: plan.instances.filter((i) => i.node === owner).map((i) => i.key) };
  };
  const base = posix.dirname(mainFile);
  /** Every operation of (node, instance), by stage, to chain them. */
  const stages = new Map<string, Map<string, string[]>>();
  const stageOf = (node: string, instance: string) => {
    const key = `${node}@${instance}`;
    let m = stages.get(key);
    if (!m) stages.set(key, (m = new Map()));
    return m;
  };
  const add = (
    stageNode: string,
    stageInstance: string,
    stage: string,
    op: Omit<LifecycleOp, 'key' | 'after' | 'implementation' | 'dependencies' | 'inputs' | 'timeoutS'>,
    def: OperationDef,
    side: NodeTemplate,
    pair?: { source: NodeTemplate; target: NodeTemplate; relationship: NodeTemplate },
  ) => {
    const key = `${op.node}@${op.instance}${op.relationship ? `[${op.relationship}${pair ? `:${op.involves.join('>')}` : ''}]` : ''}:${op.interface}.${op.operation}`;
    const artifact = implementationOf(side, def.implementation);
    if (!artifact.primary) return;
    const entry: LifecycleOp = {
      ...op,
      key,
      after: [],
      implementation: '',
      dependencies: [],
      // In a relationship's operation SELF is the relationship (TOSCA 1.3, 4.7.1).
      inputs: staticInputs(topology, plan, def.inputs, pair?.relationship ?? side, pair),
      timeoutS: timeoutOf(def.timeout),
    };
    const where = `node ${op.node}: ${op.relationship ? `relationship ${op.relationship} ` : ''}${op.interface}.${op.operation}`;
    entry.skip = skipReason(artifact.primary);
    for (const [i, path] of [artifact.primary, ...artifact.dependencies].entries()) {
      if (entry.skip) break;
      const resolved = posix.normalize(posix.join(base, path));
      if (files[resolved] === undefined) {
        built.problems.push({
          node: op.node,
          message: `${where}: ${i ? 'dependency' : 'implementation'} ${path} is not among the template's files`,
        });
        return;
      }
      if (i) entry.dependencies.push(resolved);
      else entry.implementation = resolved;
    }
    if (entry.skip) entry.implementation = artifact.primary;
    built.ops.push(entry);
    const m = stageOf(stageNode, stageInstance);
    m.set(stage, [...(m.get(stage) ?? []), key]);
  };

  for (const name of topology.order) {
    const node = topology.nodes.get(name)!;
    const { owner, instances } = hostsOf(node);
    // Scaling (the scalable capability) changes instances, not a node's configuration.
    const capabilities = Object.entries(node.capabilities).filter(([cap]) => cap !== 'scalable');
    const values = { properties: node.properties, capabilities: capabilities.map(([, c]) => c.properties) };
    built.fingerprints[name] = JSON.stringify(evaluate({ topology, self: node }, values));
    built.requires[name] = [...new Set(topology.edges.filter((e) => e.source === name).map((e) => e.target))];
    const standard = operationsOf(topology.interfacesOf?.('node', node.type) ?? new Map(), [node.raw.interfaces], 'Standard');
    // Scripts and playbooks need an instance to run in; what would not run anyway (URLs) needs none.
    const runnable = [...standard.values()].some((d) => {
      const primary = implementationOf(node, d.implementation).primary;
      return primary !== undefined && skipReason(primary) === undefined;
    });
    if (runnable && !owner) {
      built.problems.push({ node: name, message: `node ${name} has lifecycle operations but no compute or container hosts it (HostedOn)` });
      continue;
    }
    for (const instance of instances) {
      for (const [stage] of [...DEPLOY_STAGES, ...UNDEPLOY_STAGES]) {
        const def = standard.get(stage);
        if (!def) continue;
        const direction = UNDEPLOY_STAGES.some(([s]) => s === stage) ? 'undeploy' : 'deploy';
        add(
          name,
          instance,
          stage,
          { node: name, instance, involves: [instance], interface: 'Standard', operation: stage, direction },
          def,
          node,
        );
      }
    }
    // Relationship operations, once per pair of the source's and the target's instances.
    for (const r of node.requirements) {
      const target = r.node ? topology.nodes.get(r.node) : undefined;
      if (!target || !r.relationship) continue;
      const typeDefs = topology.interfacesOf?.('relationship', r.relationship) ?? new Map();
      const configure = operationsOf(typeDefs, relationshipAssigned(topology, node, r), 'Configure');
      if (!configure.size) continue;
      const targets = hostsOf(target);
      const relationship = `${name}.${r.name} -> ${target.name}`;
      for (const s of instances) {
        for (const t of targets.instances) {
          for (const [stage, ops] of [...DEPLOY_STAGES, ...UNDEPLOY_STAGES]) {
            for (const operation of ops) {
              const def = configure.get(operation);
              if (!def) continue;
              const sourceSide = SOURCE_SIDE.has(operation);
              const direction = UNDEPLOY_STAGES.some(([u]) => u === stage) ? 'undeploy' : 'deploy';
              add(
                name,
                s,
                stage,
                {
                  node: sourceSide ? name : target.name,
                  instance: sourceSide ? s : t,
                  involves: [s, t],
                  interface: 'Configure',
                  operation,
                  relationship,
                  source: name,
                  ...(r.relationshipTemplate ? { relationshipTemplate: r.relationshipTemplate } : {}),
                  direction,
                },
                def,
                sourceSide ? node : target,
                { source: node, target, relationship: relationshipEntity(topology, node, r) },
              );
            }
          }
        }
      }
    }
  }
  chain(topology, built.ops, stages, hostsOf);
  return built;
}

/** Fills `after`: stages in order per node and instance, nodes after what they require (before, undeploying). */
function chain(
  topology: Topology,
  ops: LifecycleOp[],
  stages: Map<string, Map<string, string[]>>,
  hostsOf: (n: NodeTemplate) => { instances: string[] },
): void {
  const byKey = new Map(ops.map((o) => [o.key, o]));
  const allOf = (node: string, direction: LifecycleOp['direction']) => {
    const n = topology.nodes.get(node);
    if (!n) return [];
    return hostsOf(n).instances.flatMap((i) =>
      [...(stages.get(`${node}@${i}`)?.values() ?? [])].flat().filter((k) => byKey.get(k)!.direction === direction),
    );
  };
  for (const name of topology.order) {
    const required = [...new Set(topology.edges.filter((e) => e.source === name).map((e) => e.target))];
    const requiredBy = [...new Set(topology.edges.filter((e) => e.target === name).map((e) => e.source))];
    for (const instance of hostsOf(topology.nodes.get(name)!).instances) {
      const m = stages.get(`${name}@${instance}`);
      if (!m) continue;
      for (const [list, first] of [
        [DEPLOY_STAGES, required.flatMap((t) => allOf(t, 'deploy'))],
        [UNDEPLOY_STAGES, requiredBy.flatMap((s) => allOf(s, 'undeploy'))],
      ] as const) {
        let previous = first;
        for (const [stage] of list) {
          const keys = m.get(stage) ?? [];
          for (const k of keys) byKey.get(k)!.after = [...previous];
          if (keys.length) previous = keys;
        }
      }
    }
  }
  // A pair's operations wait for the other end's deployment too (a target that scaled out).
  for (const op of ops) {
    if (op.interface !== 'Configure' || op.direction !== 'deploy') continue;
    const [, target] = op.involves;
    const targetNode = op.relationship?.split(' -> ')[1];
    if (target && targetNode)
      for (const k of [...(stages.get(`${targetNode}@${target}`)?.values() ?? [])].flat())
        if (byKey.get(k)!.direction === 'deploy' && !op.after.includes(k)) op.after.push(k);
  }
}

function implementationOf(self: NodeTemplate, value: unknown): { primary?: string; dependencies: string[] } {
  const fileOf = (v: unknown): string | undefined => {
    if (typeof v === 'string') {
      // The name of one of the node's artifacts, or a file.
      const artifact = self.artifacts[v];
      return artifact && typeof artifact.file === 'string' ? artifact.file : v;
    }
    if (isDict(v) && typeof v.file === 'string') return v.file;
    return undefined;
  };
  if (isDict(value) && value.primary !== undefined) {
    const dependencies = Array.isArray(value.dependencies) ? value.dependencies.map(fileOf).filter((d): d is string => !!d) : [];
    return { primary: fileOf(value.primary), dependencies };
  }
  return { primary: fileOf(value), dependencies: [] };
}

/** Why an artifact is not run, when it is not. */
function skipReason(primary: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(primary))
    return `${primary} is fetched from the network, which Lapis does not do: put the file beside the template`;
  return undefined;
}

function timeoutOf(value: unknown): number {
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) && n > 0 ? Math.min(n, 3600) : DEFAULT_TIMEOUT_S;
}

/** get_operation_output names its node: SELF, SOURCE, TARGET and HOST become names now. */
function nameEntities(
  value: unknown,
  self: NodeTemplate,
  topology: Topology,
  pair?: { source: NodeTemplate; target: NodeTemplate },
): unknown {
  if (Array.isArray(value)) return value.map((v) => nameEntities(v, self, topology, pair));
  if (!isDict(value)) return value;
  const args = value.get_operation_output;
  if (Array.isArray(args) && Object.keys(value).length === 1) {
    const which = args[0];
    const named =
      which === 'SELF'
        ? self.name
        : which === 'SOURCE'
          ? pair?.source.name
          : which === 'TARGET'
            ? pair?.target.name
            : which === 'HOST'
              ? hostOf(topology, self)?.name
              : which;
    return { get_operation_output: [named, ...args.slice(1)] };
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, nameEntities(v, self, topology, pair)]));
}

/** Inputs with what is known now resolved; runtime attributes point at the node whose instances have them. */
function staticInputs(
  topology: Topology,
  plan: Plan,
  inputs: Dict,
  self: NodeTemplate,
  pair?: { source: NodeTemplate; target: NodeTemplate },
): Dict {
  const ctx = {
    topology,
    self,
    source: pair?.source,
    target: pair?.target,
    attribute: (node: NodeTemplate, path: unknown[]) => {
      const name = String(path[0]);
      if (name === 'tosca_name') return node.name;
      if (!RUNTIME_ATTRIBUTES.has(name)) return undefined;
      return { get_attribute: [instanceNodeOf(topology, plan, node) ?? node.name, ...path] };
    },
  };
  return evaluate(ctx, nameEntities(inputs, self, topology, pair)) as Dict;
}

/** What stops a topology from deploying: its plan's problems and its operations'. */
export function deployProblems(topology: Topology, files: Record<string, string>, mainFile: string): { node: string; message: string }[] {
  const instances = plan(topology);
  return [...instances.problems, ...lifecyclePlan(topology, instances, files, mainFile).problems];
}

/** A node's Standard operations as its type and its template define them (translators). */
export function standardOperations(
  topology: Topology,
  node: NodeTemplate,
): Map<string, { primary?: string; dependencies: string[]; inputs: Dict }> {
  const out = new Map<string, { primary?: string; dependencies: string[]; inputs: Dict }>();
  for (const [op, def] of operationsOf(topology.interfacesOf?.('node', node.type) ?? new Map(), [node.raw.interfaces], 'Standard'))
    out.set(op, { ...implementationOf(node, def.implementation), inputs: def.inputs });
  return out;
}

/** One operation a node's software runs to deploy, as a translator writes it down. */
export interface DeployOperation {
  interface: 'Standard' | 'Configure';
  operation: string;
  /** For Configure: "source.requirement -> target". */
  relationship?: string;
  /** The artifact's path as the template wrote it (beside the template, or a URL), and its dependencies'. */
  primary?: string;
  dependencies: string[];
  /** Input values as written (functions in place). */
  inputs: Dict;
  /** What the inputs' functions read: SELF (the node, or in a relationship's operation the relationship), SOURCE, TARGET. */
  context: { self: NodeTemplate; source?: NodeTemplate; target?: NodeTemplate };
}

/**
 * A node's deploy operations in TOSCA's order (IM's too): its Standard create, configure and
 * start, and between them the Configure operations of its relationships that run on its side
 * (*_source and add_target where it is the source, *_target and add_source where the target).
 */
export function deployOperations(topology: Topology, node: NodeTemplate): DeployOperation[] {
  const sides: { name: string; source: NodeTemplate; target: NodeTemplate; ops: Map<string, OperationDef>; self: NodeTemplate }[] = [];
  for (const source of topology.nodes.values())
    for (const r of source.requirements) {
      const target = r.node ? topology.nodes.get(r.node) : undefined;
      if (!target || !r.relationship || (source !== node && target !== node)) continue;
      const ops = operationsOf(
        topology.interfacesOf?.('relationship', r.relationship) ?? new Map(),
        relationshipAssigned(topology, source, r),
        'Configure',
      );
      if (ops.size)
        sides.push({
          name: `${source.name}.${r.name} -> ${target.name}`,
          source,
          target,
          ops,
          self: relationshipEntity(topology, source, r),
        });
    }
  const standard = operationsOf(topology.interfacesOf?.('node', node.type) ?? new Map(), [node.raw.interfaces], 'Standard');
  const out: DeployOperation[] = [];
  for (const [stage, relationshipOps] of DEPLOY_STAGES) {
    const def = standard.get(stage);
    if (def)
      out.push({
        interface: 'Standard',
        operation: stage,
        ...implementationOf(node, def.implementation),
        inputs: def.inputs,
        context: { self: node },
      });
    for (const operation of relationshipOps)
      for (const side of sides) {
        const def = side.ops.get(operation);
        if (!def || (SOURCE_SIDE.has(operation) ? side.source : side.target) !== node) continue;
        out.push({
          interface: 'Configure',
          operation,
          relationship: side.name,
          ...implementationOf(node, def.implementation),
          inputs: def.inputs,
          context: { self: side.self, source: side.source, target: side.target },
        });
      }
  }
  return out;
}
