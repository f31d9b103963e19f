// Which spot instances give way to a claim that fits nowhere: on each node that could take
// it, the cheapest set of preemptible instances whose room (with what is free) is enough.
// Spot instances rank below every normal claim (that is what makes them spot), whatever
// their own multifactor priority; `priority` only rules out victims when given (< Infinity).
// Cheapest means, in order: fewest instances; then the most recently started (the set whose
// oldest member started last); then the lowest priority (the set's highest priority is the
// lowest); then the node name, for a stable answer.
import { add, fits, sub, ZERO, type ClaimRecord, type Res } from './model';
import { staticallyFits, type NodeView, type Victim } from './placement';

export interface PreemptionPlan {
  node: NodeView;
  victims: Victim[];
}

/** Sets of at most this many are searched exhaustively; larger ones greedily. */
const EXHAUSTIVE_UP_TO = 3;
/** Candidates per node considered for the exhaustive search. */
const MAX_CANDIDATES = 24;

interface Scored {
  victims: Victim[];
  key: [number, number, number];
}

const better = (a: Scored['key'], b: Scored['key']) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];

function keyOf(victims: Victim[]): Scored['key'] {
  const oldest = Math.min(...victims.map((v) => v.placeTime));
  const highest = Math.max(...victims.map((v) => v.priority));
  // Smaller is better in each position.
  return [victims.length, -oldest, highest];
}

function roomWith(victims: Victim[], base: Res): Res {
  return victims.reduce((r, v) => add(r, v.res), base);
}

function devicesOk(c: ClaimRecord, n: NodeView, victims: Victim[]): boolean {
  return c.devices.every((d) => {
    const freed = victims.reduce((s, v) => s + v.devices.filter((x) => x.kind === d.kind).reduce((t, x) => t + x.count, 0), 0);
    return (n.rec.freeDevices[d.kind] ?? 0) - (n.devUsed[d.kind] ?? 0) + freed >= d.count;
  });
}

/** The best set on one node, or undefined when even all its spot instances are not enough. */
export function victimsOnNode(c: ClaimRecord, n: NodeView, priority = Infinity): Scored | undefined {
  if (n.held || !staticallyFits(c, n)) return undefined;
  const eligible = n.spot.filter((v) => v.priority < priority);
  if (eligible.length === 0) return undefined;
  // Anti-affinity: members of the claim's group that stay would still share the node.
  const staying = (vs: Victim[]) => (n.groups.get(c.group) ?? 0) - vs.filter((v) => v.group === c.group).length;
  const freeNow = sub(n.rec.capacity, n.used);
  const ok = (vs: Victim[]) => fits(c.res, roomWith(vs, freeNow)) && devicesOk(c, n, vs) && (!c.group || staying(vs) <= 0);
  if (!ok(eligible)) return undefined;
  // Most recent first, then lowest priority: the order the tie-breakers prefer.
  const ordered = [...eligible].sort((a, b) => b.placeTime - a.placeTime || a.priority - b.priority || (a.id < b.id ? -1 : 1));
  const candidates = ordered.slice(0, MAX_CANDIDATES);
  let best: Scored | undefined;
  const consider = (vs: Victim[]) => {
    if (!ok(vs)) return;
    const key = keyOf(vs);
    if (!best || better(key, best.key) < 0) best = { victims: [...vs], key };
  };
  const combos = (size: number, from: number, picked: Victim[]) => {
    if (picked.length === size) return consider(picked);
    for (let i = from; i < candidates.length; i++) {
      picked.push(candidates[i]!);
      combos(size, i + 1, picked);
      picked.pop();
    }
  };
  for (let size = 1; size <= Math.min(EXHAUSTIVE_UP_TO, candidates.length) && !best; size++) combos(size, 0, []);
  if (best) return best;
  // Larger sets: take the preferred ones in order until it fits, then drop any not needed.
  const greedy: Victim[] = [];
  for (const v of ordered) {
    greedy.push(v);
    if (ok(greedy)) break;
  }
  for (let i = greedy.length - 1; i >= 0; i--) {
    const without = greedy.filter((_, j) => j !== i);
    if (ok(without)) greedy.splice(i, 1);
  }
  return { victims: greedy, key: keyOf(greedy) };
}

/** The cheapest plan over every node given (already narrowed to the claim's partition). */
export function choosePreemption(c: ClaimRecord, nodes: readonly NodeView[], priority = Infinity): PreemptionPlan | undefined {
  let best: (Scored & { node: NodeView }) | undefined;
  for (const n of nodes) {
    if (n.spot.length === 0) continue;
    const s = victimsOnNode(c, n, priority);
    if (!s) continue;
    const cmp = best ? better(s.key, best.key) : -1;
    if (!best || cmp < 0 || (cmp === 0 && n.rec.name < best.node.rec.name)) best = { ...s, node: n };
  }
  return best && { node: best.node, victims: best.victims };
}

export const totalOf = (victims: Victim[]): Res => roomWith(victims, ZERO);
