// Where a claim goes: filters (partition, backend, resources, GPUs and devices,
// anti-affinity, host ports) then weighers (pack or spread, image locality), like Nova's filter
// scheduler. For large clusters only the first `maxScored` feasible nodes from a rotating
// start are weighed (kube-scheduler's percentageOfNodesToScore idea), so a decision costs
// O(maxScored) in the usual case instead of O(nodes).
import { Backend, type DeviceKind } from '@lapis/proto/lapis/common/v1/common';
import { add, claimHostPorts, fits, sub, type ClaimRecord, type DeviceNeed, type NodeRecord, type Res } from './model';

export type Strategy = 'pack' | 'spread';

export interface Victim {
  id: string;
  res: Res;
  devices: DeviceNeed[];
  placeTime: number;
  priority: number;
  group: string;
}

/** A node during one cycle: what it has and what this cycle has given away. */
export interface NodeView {
  rec: NodeRecord;
  used: Res;
  devUsed: Partial<Record<DeviceKind, number>>;
  /** Anti-affinity groups on the node, with how many instances of each. */
  groups: Map<string, number>;
  /** Host ports held on the node ("8080/tcp"), with how many instances; absent: none. */
  hostPorts?: Map<string, number>;
  /** Running spot instances that may be preempted. */
  spot: Victim[];
  /** Held for a claim waiting on preemption: nobody else takes room here this cycle. */
  held: boolean;
}

export const free = (n: NodeView): Res => sub(n.rec.capacity, n.used);

export interface PlacementOptions {
  strategy: Strategy;
  /** Weight of the image-locality weigher next to pack/spread (each 0..1). */
  imageWeight: number;
  /** Weigh at most this many feasible nodes (0: all). */
  maxScored: number;
}

/** Can the node ever take the claim (ignoring what runs there now)? */
export function staticallyFits(c: ClaimRecord, n: NodeView): boolean {
  if (c.backend !== Backend.UNSPECIFIED && n.rec.backend !== c.backend) return false;
  if (!fits(c.res, n.rec.capacity)) return false;
  if (n.rec.instanceLimit && !fits(c.res, n.rec.instanceLimit)) return false;
  return c.devices.every((d) => (n.rec.totalDevices[d.kind] ?? 0) >= d.count);
}

/** Does it fit now? Returns the first filter that fails, or '' when it fits. */
export function filterNode(c: ClaimRecord, n: NodeView): string {
  if (n.held) return 'held';
  if (!fits(c.res, free(n))) return 'resources';
  for (const d of c.devices) {
    if ((n.rec.freeDevices[d.kind] ?? 0) - (n.devUsed[d.kind] ?? 0) < d.count) return 'devices';
  }
  if (c.group && (n.groups.get(c.group) ?? 0) > 0) return 'anti-affinity';
  // Two instances cannot bind one host port on a node: the claim waits for a node where it is free.
  if (n.hostPorts && n.hostPorts.size > 0 && claimHostPorts(c).some((p) => n.hostPorts!.has(p))) return 'host-ports';
  return '';
}

const fraction = (part: number, whole: number) => (whole > 0 ? part / whole : 0);

/** Higher is better, 0..1+imageWeight. */
export function weighNode(c: ClaimRecord, n: NodeView, options: PlacementOptions): number {
  const after = add(n.used, c.res);
  const cap = n.rec.capacity;
  const load = (fraction(after.cpu, cap.cpu) + fraction(after.mem, cap.mem)) / 2;
  const base = options.strategy === 'pack' ? load : 1 - load;
  const cached = c.spec.image !== '' && n.rec.images.some((i) => i === c.spec.image || c.spec.image.endsWith(`@${i}`));
  return base + (cached ? options.imageWeight : 0);
}

export function takeRoom(n: NodeView, c: ClaimRecord): void {
  n.used = add(n.used, c.res);
  for (const d of c.devices) n.devUsed[d.kind] = (n.devUsed[d.kind] ?? 0) + d.count;
  if (c.group) n.groups.set(c.group, (n.groups.get(c.group) ?? 0) + 1);
  for (const p of claimHostPorts(c)) (n.hostPorts ??= new Map()).set(p, (n.hostPorts.get(p) ?? 0) + 1);
}

export interface Choice {
  node?: NodeView;
  /** Nodes that could ever take it. */
  possible: number;
}

/**
 * The nodes of one partition, in a fixed order, with the most free CPU, memory and GPUs over
 * every range of them (a segment tree): the next node at or after a position that may have
 * room for a claim is found without looking at the nodes that have not (O(log n) a step), and
 * a placement updates its node in O(log n). Only free resources are indexed; devices,
 * anti-affinity and holds are checked on the nodes it yields.
 */
export class FreeIndex {
  private readonly size: number;
  private readonly cpu: Float64Array;
  private readonly mem: Float64Array;
  private readonly gpus: Float64Array;
  private readonly position = new Map<NodeView, number>();

  constructor(nodes: readonly NodeView[]) {
    let size = 1;
    while (size < nodes.length) size <<= 1;
    this.size = size;
    this.cpu = new Float64Array(2 * size).fill(-Infinity);
    this.mem = new Float64Array(2 * size).fill(-Infinity);
    this.gpus = new Float64Array(2 * size).fill(-Infinity);
    nodes.forEach((n, i) => {
      this.position.set(n, i);
      this.setLeaf(i, n);
    });
    for (let i = size - 1; i >= 1; i--) this.pull(i);
  }

  /** The node's room changed (a placement took some). */
  update(n: NodeView): void {
    const i = this.position.get(n);
    if (i === undefined) return;
    this.setLeaf(i, n);
    for (let k = (this.size + i) >> 1; k >= 1; k >>= 1) this.pull(k);
  }

  /** Has the node at `i` room for `need` (CPU, memory, GPUs)? O(1). */
  roomAt(i: number, need: Res): boolean {
    const k = this.size + i;
    return this.cpu[k]! >= need.cpu && this.mem[k]! >= need.mem && this.gpus[k]! >= need.gpus;
  }

  /** The first position in [from, to) whose node may have room for `need`, or -1. */
  next(from: number, to: number, need: Res): number {
    return from >= to ? -1 : this.find(1, 0, this.size, from, to, need);
  }

  private find(k: number, lo: number, hi: number, from: number, to: number, need: Res): number {
    if (hi <= from || lo >= to) return -1;
    if (this.cpu[k]! < need.cpu || this.mem[k]! < need.mem || this.gpus[k]! < need.gpus) return -1;
    if (hi - lo === 1) return lo;
    const mid = (lo + hi) >> 1;
    const left = this.find(2 * k, lo, mid, from, to, need);
    return left >= 0 ? left : this.find(2 * k + 1, mid, hi, from, to, need);
  }

  private setLeaf(i: number, n: NodeView): void {
    const k = this.size + i;
    this.cpu[k] = n.rec.capacity.cpu - n.used.cpu;
    this.mem[k] = n.rec.capacity.mem - n.used.mem;
    this.gpus[k] = n.rec.capacity.gpus - n.used.gpus;
  }

  private pull(k: number): void {
    this.cpu[k] = Math.max(this.cpu[2 * k]!, this.cpu[2 * k + 1]!);
    this.mem[k] = Math.max(this.mem[2 * k]!, this.mem[2 * k + 1]!);
    this.gpus[k] = Math.max(this.gpus[2 * k]!, this.gpus[2 * k + 1]!);
  }
}

/**
 * The best node for the claim among `nodes` (already narrowed to its partition), starting
 * the scan at `start` (callers rotate it so that decisions spread over the list). With the
 * partition's FreeIndex the scan skips the nodes without room: it weighs the same nodes in
 * the same order as the plain scan, without visiting the full ones.
 */
export function chooseNode(c: ClaimRecord, nodes: readonly NodeView[], options: PlacementOptions, start = 0, index?: FreeIndex): Choice {
  if (index) return chooseIndexed(c, nodes, options, start, index);
  let best: NodeView | undefined;
  let bestScore = -Infinity;
  let scored = 0;
  let possible = 0;
  const count = nodes.length;
  for (let k = 0; k < count; k++) {
    const n = nodes[(start + k) % count]!;
    if (!staticallyFits(c, n)) continue;
    possible++;
    if (filterNode(c, n) !== '') continue;
    const score = weighNode(c, n, options);
    if (score > bestScore || (score === bestScore && best && n.rec.name < best.rec.name)) {
      best = n;
      bestScore = score;
    }
    if (options.maxScored > 0 && ++scored >= options.maxScored) break;
  }
  return { node: best, possible };
}

function chooseIndexed(c: ClaimRecord, nodes: readonly NodeView[], options: PlacementOptions, start: number, index: FreeIndex): Choice {
  let best: NodeView | undefined;
  let bestScore = -Infinity;
  let scored = 0;
  /** Scans [from, to); true once enough nodes were weighed. */
  const scan = (from: number, to: number): boolean => {
    for (let i = from; i < to; i++) {
      // Nodes with room are looked at in turn; a run of full ones is jumped over.
      if (!index.roomAt(i, c.res)) {
        i = index.next(i + 1, to, c.res);
        if (i < 0) break;
      }
      const n = nodes[i]!;
      if (!staticallyFits(c, n) || filterNode(c, n) !== '') continue;
      const score = weighNode(c, n, options);
      if (score > bestScore || (score === bestScore && best && n.rec.name < best.rec.name)) {
        best = n;
        bestScore = score;
      }
      if (options.maxScored > 0 && ++scored >= options.maxScored) return true;
    }
    return false;
  };
  if (!scan(start, nodes.length)) scan(0, start);
  if (best) return { node: best, possible: 1 };
  // Nothing has room now: could any node ever take it (NoMatchingNode), or is it waiting?
  let possible = 0;
  for (const n of nodes) if (staticallyFits(c, n)) possible++;
  return { node: undefined, possible };
}
