// Evaluation of TOSCA functions over a validated topology. Attributes come from the caller
// (a deployment's instances, or a translator that turns them into its own references).
import type { NodeTemplate, Topology } from './model';
import { isDict } from './registry';
import { isFunction } from './values';

export interface EvalContext {
  topology: Topology;
  self?: NodeTemplate;
  source?: NodeTemplate;
  target?: NodeTemplate;
  /** Resolves get_attribute; undefined when not known (yet). */
  attribute?: (node: NodeTemplate, path: unknown[]) => unknown;
  /** Nodes of a type (get_nodes_of_type). */
  nodesOfType?: (type: string) => string[];
}

const index = (value: unknown, keys: unknown[]): unknown => {
  let current = value;
  for (const k of keys) {
    if (Array.isArray(current) && typeof k === 'number') current = current[k];
    else if (isDict(current) && (typeof k === 'string' || typeof k === 'number')) current = current[String(k)];
    else return undefined;
  }
  return current;
};

export function hostOf(topology: Topology, node: NodeTemplate): NodeTemplate | undefined {
  const edge = topology.edges.find((e) => e.source === node.name && e.kind === 'HostedOn');
  return edge ? topology.nodes.get(edge.target) : undefined;
}

function entity(ctx: EvalContext, name: unknown): NodeTemplate | undefined {
  if (name === 'SELF') return ctx.self;
  if (name === 'SOURCE') return ctx.source;
  if (name === 'TARGET') return ctx.target;
  if (name === 'HOST') return ctx.self ? hostOf(ctx.topology, ctx.self) : undefined;
  return typeof name === 'string' ? ctx.topology.nodes.get(name) : undefined;
}

/** A property through [name, ...index] or [capability|requirement, name, ...index]. */
export function propertyOf(ctx: EvalContext, node: NodeTemplate, path: unknown[]): unknown {
  const [first, ...rest] = path;
  if (typeof first !== 'string') return undefined;
  const inner = { ...ctx, self: node };
  if (first in node.properties)
    return evaluate(
      inner,
      index(
        node.properties[first],
        rest.map((r) => evaluate(inner, r)),
      ),
    );
  const cap = node.capabilities[first];
  if (cap && typeof rest[0] === 'string') return evaluate(inner, index(cap.properties[rest[0]], rest.slice(1)));
  const req = node.requirements.find((r) => r.name === first);
  const target = req?.node ? ctx.topology.nodes.get(req.node) : undefined;
  if (target && typeof rest[0] === 'string') {
    const tcap = target.capabilities[req!.capability ?? first] ?? target.capabilities[first];
    if (tcap && rest[0] in tcap.properties) return evaluate({ ...ctx, self: target }, index(tcap.properties[rest[0]], rest.slice(1)));
    return propertyOf(ctx, target, rest);
  }
  return undefined;
}

/** The value with every function it can resolve replaced; what it cannot resolve stays. */
export function evaluate(ctx: EvalContext, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => evaluate(ctx, v));
  if (!isDict(value)) return value;
  if (!isFunction(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, evaluate(ctx, v)]));
  const [name, rawArgs] = Object.entries(value)[0]!;
  const args = Array.isArray(rawArgs) ? rawArgs : [rawArgs];
  switch (name) {
    case 'get_input': {
      const v = ctx.topology.inputValues[String(args[0])];
      return v === undefined
        ? value
        : evaluate(
            ctx,
            index(
              v,
              args.slice(1).map((a) => evaluate(ctx, a)),
            ),
          );
    }
    case 'get_property': {
      const node = entity(ctx, args[0]);
      const v = node ? propertyOf(ctx, node, args.slice(1)) : undefined;
      return v === undefined ? value : v;
    }
    case 'get_attribute': {
      let node = entity(ctx, args[0]);
      if (!node) return value;
      if (args[0] === 'HOST') {
        // The nearest host along the HostedOn chain that has the attribute.
        for (let h: NodeTemplate | undefined = node; h; h = hostOf(ctx.topology, h)) {
          if (h.entry && (h.ancestors.includes('tosca.nodes.Compute') || propertyOf(ctx, h, args.slice(1)) !== undefined)) {
            node = h;
            break;
          }
        }
      }
      const fromInstances = ctx.attribute?.(node, args.slice(1));
      if (fromInstances !== undefined) return fromInstances;
      // Properties are attributes too.
      const v = propertyOf(ctx, node, args.slice(1));
      return v === undefined ? value : v;
    }
    case 'concat': {
      const parts = args.map((a) => evaluate(ctx, a));
      return parts.some((p) => isFunction(p) || p === undefined)
        ? { concat: parts }
        : parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join('');
    }
    case 'join': {
      const list = evaluate(ctx, args[0]);
      const sep = typeof args[1] === 'string' ? args[1] : '';
      if (!Array.isArray(list) || list.some((p) => isFunction(p))) return { join: [list, ...args.slice(1)] };
      return list.map(String).join(sep);
    }
    case 'token': {
      const s = evaluate(ctx, args[0]);
      if (typeof s !== 'string') return { token: [s, args[1], args[2]] };
      return s.split(String(args[1]))[Number(args[2])] ?? '';
    }
    case 'get_artifact': {
      const node = entity(ctx, args[0]);
      const file = node?.artifacts[String(args[1])]?.file;
      return file === undefined ? value : evaluate({ ...ctx, self: node }, file);
    }
    case 'get_nodes_of_type':
      return (
        ctx.nodesOfType?.(String(rawArgs)) ??
        [...ctx.topology.nodes.values()]
          .filter((n) => n.ancestors.some((a) => a === rawArgs || a.endsWith(`.${String(rawArgs)}`)))
          .map((n) => n.name)
      );
    default:
      return value;
  }
}
