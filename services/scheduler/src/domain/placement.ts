// Where a claim goes: filters (partition, backend, resources, GPUs and devices,
// anti-affinity) then weighers (pack or spread, image locality), like Nova's filter
// scheduler. For large clusters only the first `maxScored` feasible nodes from a rotating
// start are weighed (kube-scheduler's percentageOfNodesToScore idea), so a decision costs
// O(maxScored) in the usual case instead of O(nodes).
import { Backend, type DeviceKind } from '@lapis/proto/lapis/common/v1/common';
import { add, fits, sub, type ClaimRecord, type DeviceNeed, type NodeRecord, type Res } from './model';

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
}

export interface Choice {
  node?: NodeView;
  /** Nodes that could ever take it. */
  possible: number;
}

/**
 * The best node for the claim among `nodes` (already narrowed to its partition), starting
 * the scan at `start` (callers rotate it so that decisions spread over the list).
 */
export function chooseNode(c: ClaimRecord, nodes: readonly NodeView[], options: PlacementOptions, start = 0): Choice {
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
