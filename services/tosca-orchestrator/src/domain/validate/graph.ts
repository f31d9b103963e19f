// The dependency graph: an edge for every requirement whose relationship is HostedOn,
// AttachesTo, ConnectsTo or DependsOn; the deployment order (what a node needs comes first) and
// every cycle, reported once.
import type { Edge, EdgeKind } from '../model';
import type { ValidationRun } from './run';

const edgeKinds: EdgeKind[] = ['HostedOn', 'AttachesTo', 'ConnectsTo', 'DependsOn'];

export function buildGraph(run: ValidationRun): void {
  const { registry, topo } = run;
  const edges: Edge[] = [];
  const kinds = new Map<string, EdgeKind | null>();
  // Nodes by position in template order; each node's dependencies as positions.
  const nodes = [...topo.nodes.values()];
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
        kind = edgeKinds.find((k) => registry.derives('relationship', r.relationship, `tosca.relationships.${k}`)) ?? null;
        kinds.set(r.relationship, kind);
      }
      if (!kind) continue;
      edges.push({ source: node.name, target: r.node, kind, requirement: r.name, relationship: r.relationship });
      const target = index.get(r.node);
      if (target !== undefined) list.push(target);
    }
    deps[i] = list;
  }
  topo.edges = edges;
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
          run.diags.error('DEPENDENCY_CYCLE', `dependency cycle: ${cycle.join(' -> ')}`, nodes[d]!.loc);
        }
      } else if (state[d] === 0) {
        state[d] = 1;
        path.push(d);
        next.push(0);
      }
    }
  }
  topo.order = order;
}
