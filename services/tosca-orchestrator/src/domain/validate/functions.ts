// Function calls inside values (get_input, get_property, get_attribute, get_operation_output,
// concat, join, token, get_artifact, get_nodes_of_type): their arguments, the entity they name
// (SELF, SOURCE, TARGET, HOST, a node template) and what they look up on it.
import { at, type Loc } from '../diagnostics';
import type { NodeTemplate } from '../model';
import { isDict, type TypeEntry } from '../registry';
import { isFunction } from '../values';
import type { FnContext, ValidationRun } from './run';

type Fail = (message: string, code?: string) => void;

/** A value with no declared type: only its functions are checked. */
export function checkAnyValue(run: ValidationRun, value: unknown, loc: Loc, fn: FnContext): void {
  if (isFunction(value)) checkFunction(run, value, loc, fn);
  else if (Array.isArray(value)) for (const [i, v] of value.entries()) checkAnyValue(run, v, at(loc, i), fn);
  else if (isDict(value)) for (const [k, v] of Object.entries(value)) checkAnyValue(run, v, at(loc, k), fn);
}

export function checkFunction(run: ValidationRun, value: Record<string, unknown>, loc: Loc, fn: FnContext): void {
  const { registry, topo } = run;
  const [name, args] = Object.entries(value)[0]!;
  const fail = (message: string, code = 'INVALID_FUNCTION') => run.diags.error(code, `${name}: ${message}`, loc);
  const list = Array.isArray(args) ? args : [args];
  for (const [i, a] of list.entries()) if (isFunction(a)) checkFunction(run, a, at(at(loc, name), i), fn);
  switch (name) {
    case 'get_input': {
      const input = list[0];
      if (typeof input !== 'string') return fail('needs an input name');
      // TOSCA 1.0 reads one input name; the nested form [ name, key or index... ] came later.
      if (Array.isArray(args) && args.length !== 1 && (fn.version ?? run.main.tosca_definitions_version) === 'tosca_simple_yaml_1_0')
        fail(`takes one input name in tosca_simple_yaml_1_0 (got ${args.length} arguments)`);
      if (fn.shapeOnly) return;
      if (!topo.inputs.has(input)) fail(`input "${input}" is not declared`, 'UNKNOWN_INPUT');
      return;
    }
    case 'get_property':
    case 'get_attribute': {
      if (!Array.isArray(args) || args.length < 2) return fail('needs [ entity, (capability or requirement,) name ]');
      if (fn.shapeOnly) return;
      if (args[0] === 'SELF' && fn.relationship) return lookupOnRelationship(run, fn.relationship, args[1], name === 'get_attribute', fail);
      if ((args[0] === 'SOURCE' || args[0] === 'TARGET') && fn.relationship && !fn.source) return;
      const entity = functionEntity(run, args[0], fn, fail);
      if (!entity) return;
      if (args[0] === 'HOST') {
        // HOST searches the whole HostedOn chain, nearest host first.
        const chain: NodeTemplate[] = [];
        for (let h: NodeTemplate | undefined = entity; h && !chain.includes(h); h = run.hostOf(h)) chain.push(h);
        const found = chain.find((h) => {
          let ok = true;
          lookupProperty(run, h, args.slice(1), name === 'get_attribute', () => (ok = false));
          return ok;
        });
        if (found) return;
      }
      lookupProperty(run, entity, args.slice(1), name === 'get_attribute', fail);
      return;
    }
    case 'get_operation_output': {
      if (!Array.isArray(args) || args.length !== 4) return fail('needs [ entity, interface, operation, output ]');
      if (fn.shapeOnly) return;
      const entity = functionEntity(run, args[0], fn, fail);
      if (!entity?.entry) return;
      const iface = registry.interfaces(entity.entry).get(String(args[1]));
      if (!iface) return fail(`node ${entity.name} has no interface "${String(args[1])}"`, 'UNKNOWN_INTERFACE');
      if (!iface.operations.has(String(args[2])))
        fail(`interface ${String(args[1])} of ${entity.name} has no operation "${String(args[2])}"`, 'UNKNOWN_OPERATION');
      return;
    }
    case 'concat':
      if (!Array.isArray(args) || args.length < 1) fail('needs a list of values');
      return;
    case 'join':
      if (!Array.isArray(args) || args.length < 1 || args.length > 2 || (!Array.isArray(args[0]) && !isFunction(args[0])))
        fail('needs [ [values], delimiter ]');
      else if (args.length === 2 && typeof args[1] !== 'string') fail('the delimiter must be a string');
      return;
    case 'token':
      if (!Array.isArray(args) || args.length !== 3 || typeof args[1] !== 'string' || !Number.isInteger(args[2]))
        fail('needs [ string, separator, index ]');
      return;
    case 'get_artifact': {
      if (!Array.isArray(args) || args.length < 2 || args.length > 4) return fail('needs [ entity, artifact, (location, (remove)) ]');
      if (fn.shapeOnly) return;
      const entity = functionEntity(run, args[0], fn, fail);
      if (!entity?.entry) return;
      const declared = isDict(entity.raw.artifacts) && String(args[1]) in entity.raw.artifacts;
      if (!declared && !registry.mapSection(entity.entry, 'artifacts').has(String(args[1])))
        fail(`node ${entity.name} has no artifact "${String(args[1])}"`, 'UNKNOWN_ARTIFACT');
      return;
    }
    case 'get_nodes_of_type':
      if (typeof args !== 'string' || !registry.resolve('node', args)) fail(`unknown node type ${JSON.stringify(args)}`, 'UNKNOWN_TYPE');
      return;
    default:
      return;
  }
}

/** The node template a function's first argument names, in the context it is evaluated in. */
function functionEntity(run: ValidationRun, name: unknown, fn: FnContext, fail: Fail): NodeTemplate | undefined {
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
      const host = run.hostOf(fn.self);
      if (!host) fail(`node ${fn.self.name} is not hosted on another node`, 'INVALID_FUNCTION_CONTEXT');
      return host;
    }
    default: {
      const node = typeof name === 'string' ? run.topo.nodes.get(name) : undefined;
      if (!node) fail(`"${String(name)}" is not a node template`, 'UNKNOWN_NODE');
      return node;
    }
  }
}

/** [SELF, name, index...] inside a relationship: a property (or attribute) of its type. */
function lookupOnRelationship(
  run: ValidationRun,
  relationship: NonNullable<FnContext['relationship']>,
  first: unknown,
  attribute: boolean,
  fail: Fail,
): void {
  const word = attribute ? 'attribute' : 'property';
  if (typeof first !== 'string') return fail(`the ${word} name must be a string`);
  const { registry } = run;
  const { entry } = relationship;
  if (registry.properties(entry).has(first) || (attribute && registry.attributes(entry).has(first))) return;
  fail(`relationship ${relationship.name} (${entry.name}) has no ${word} "${first}"`, attribute ? 'UNKNOWN_ATTRIBUTE' : 'UNKNOWN_PROPERTY');
}

/** [name, index...] or [capability|requirement, name, index...] on `node`. */
function lookupProperty(run: ValidationRun, node: NodeTemplate, path: unknown[], attribute: boolean, fail: Fail): void {
  const { registry } = run;
  if (!node.entry) return;
  const word = attribute ? 'attribute' : 'property';
  const code = attribute ? 'UNKNOWN_ATTRIBUTE' : 'UNKNOWN_PROPERTY';
  const has = (entry: TypeEntry, name: string) =>
    registry.properties(entry).has(name) || (attribute && registry.attributes(entry).has(name));
  const [first, second] = path;
  if (typeof first !== 'string') return fail(`the ${word} name must be a string`);
  if (has(node.entry, first)) return;
  const caps = registry.capabilities(node.entry);
  const capDef = caps.get(first);
  if (capDef) {
    const ctype = registry.resolve('capability', capDef.type);
    if (typeof second !== 'string') return fail(`needs a ${word} name after capability ${first}`);
    if (ctype && !has(ctype, second) && !(second in capDef.properties))
      fail(`capability ${first} of ${node.name} has no ${word} "${second}"`, code);
    return;
  }
  const req = node.requirements.find((r) => r.name === first);
  if (req || registry.requirements(node.entry).has(first)) {
    if (typeof second !== 'string') return fail(`needs a ${word} name after requirement ${first}`);
    const target = req?.node ? run.topo.nodes.get(req.node) : undefined;
    if (!target?.entry) return;
    if (has(target.entry, second)) return;
    const tcap = registry.capabilities(target.entry).get(req!.capability ?? first) ?? registry.capabilities(target.entry).get(first);
    const ctype = tcap ? registry.resolve('capability', tcap.type) : undefined;
    if (ctype && has(ctype, second)) return;
    const capByName = registry.capabilities(target.entry).get(second);
    if (capByName && typeof path[2] === 'string') return;
    fail(`node ${target.name} (through requirement ${first} of ${node.name}) has no ${word} "${second}"`, code);
    return;
  }
  fail(`node ${node.name} (${node.type}) has no ${word}, capability or requirement "${first}"`, code);
}
