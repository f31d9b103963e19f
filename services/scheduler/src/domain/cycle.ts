// One scheduling cycle, pure: the queue in priority order, each claim checked against its
// project's quota and its partition's limit, then placed (filters and weighers), or, for a
// normal claim that fits nowhere, given room by preempting spot instances; everything left
// gets its pending reason. The caller records and publishes the decisions.
import { Backend } from '@lapis/proto/lapis/common/v1/common';
import { PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import {
  add,
  claimHostPorts,
  describe,
  fits,
  isActive,
  isPending,
  sub,
  withinLimit,
  ZERO,
  type ClaimRecord,
  type NodeRecord,
  type Res,
} from './model';
import type { AllocationRatios } from './overcommit';
import { type CycleView, nodePartition, NodeTable } from './node-table';
import { chooseNode, filterNode, free, takeRoom, type NodeView, type PlacementOptions, type Victim } from './placement';
import { choosePreemption } from './preemption';
import { ClusterSums, type Use } from './state';
import { ageFactor, jobSizeFactor, relative, weigh, type Breakdown, type Weights } from './priority';

export interface PartitionDef {
  name: string;
  /** Sum of what its running instances may use; zeros are no limit. */
  maxResources: Res;
  /** PriorityJobFactor of the partition (any non-negative number; normalized by the largest). */
  tier: number;
  allowPreemptible: boolean;
  batchPartition: string;
  minNodes: number;
  maxNodes: number;
  /** Takes no claims: its nodes are the batch system's (where the partition director keeps them). */
  closed?: boolean;
  /** CPU and memory allocation ratios of its nodes from the configuration (0 or absent: 1). */
  ratios?: AllocationRatios;
}

export interface QuotaDef {
  /** 0: no limit. */
  maxInstances: number;
  maxResources: Res;
}

export interface CycleInput {
  now: number;
  /** Every claim that is not final: pending ones are scheduled, active ones hold room. */
  claims: Iterable<ClaimRecord>;
  nodes: Iterable<NodeRecord>;
  partitions: ReadonlyMap<string, PartitionDef>;
  defaultPartition: string;
  quotas: ReadonlyMap<string, QuotaDef>;
  qos: ReadonlyMap<string, number>;
  weights: Weights;
  fairShare: (project: string, user: string) => number;
  placement: PlacementOptions;
  /** A node silent this long is down. */
  downAfterMs: number;
  /** Stop after this many placements (the rest waits for the next cycle). */
  maxPlacements: number;
  /** Rotates where node scans start. */
  seed?: number;
  /**
   * Priorities kept from earlier cycles (SLURM recalculates them every PriorityCalcPeriod,
   * not every cycle): only claims missing from it are computed, and added to it.
   */
  priorityCache?: Map<string, Breakdown>;
  /**
   * The pending claims in `claims` already come in queue order (see queueOrder) and are all
   * of them: the cycle does not sort, and stops at maxPlacements.
   */
  ordered?: boolean;
  /** The claims already split (pending in queue order when `ordered`); `claims` is then ignored. */
  split?: { pending: Iterable<ClaimRecord>; active: ClaimRecord[] };
  /**
   * What the active claims hold, kept up to date by the caller (see ClusterSums): the cycle
   * then sums nothing per claim, reads the sums and leaves them as they were (what it decides
   * is in the result); `split.active` is not needed.
   */
  sums?: ClusterSums;
  /** With `sums`: a claim by id (the victims a reservation waits for). */
  lookup?: (id: string) => ClaimRecord | undefined;
  /**
   * With `sums`: the nodes' views kept from the caller's earlier cycles over the same sums
   * (see NodeTable); without it the cycle makes new ones.
   */
  nodeTable?: NodeTable;
}

/** Queue order: claims holding a reservation first, then priority, submit time, id. */
export function queueCompare(a: { c: ClaimRecord; r: number; p: number }, b: { c: ClaimRecord; r: number; p: number }): number {
  return b.r - a.r || b.p - a.p || a.c.submitTime - b.c.submitTime || (a.c.id < b.c.id ? -1 : a.c.id > b.c.id ? 1 : 0);
}

export const queueKey = (c: ClaimRecord, prio: ReadonlyMap<string, Breakdown>) => ({
  c,
  r: c.reservedNode !== '' ? 1 : 0,
  p: prio.get(c.id)?.priority ?? 0,
});

export function queueOrder(pending: ClaimRecord[], prio: ReadonlyMap<string, Breakdown>): ClaimRecord[] {
  return pending
    .map((c) => queueKey(c, prio))
    .sort(queueCompare)
    .map((k) => k.c);
}

export interface Decision {
  reason: PendingReason;
  detail: string;
}

export interface CycleResult {
  placements: Array<{ claim: ClaimRecord; node: string }>;
  preemptions: Array<{ claim: ClaimRecord; node: string; victims: string[] }>;
  /** For every pending claim not placed. */
  pending: Map<string, Decision>;
  priorities: Map<string, Breakdown>;
  /** Pending claims, highest priority first. */
  order: ClaimRecord[];
}

export function partitionOf(c: ClaimRecord, defaultPartition: string): string {
  return c.partition || defaultPartition;
}

export { nodePartition };

/** The priority of every claim given (pending or running), by id. */
export function priorities(
  input: Pick<CycleInput, 'now' | 'weights' | 'fairShare' | 'partitions' | 'qos' | 'defaultPartition'>,
  claims: Iterable<ClaimRecord>,
  clusterCpu: number,
  result = new Map<string, Breakdown>(),
): Map<string, Breakdown> {
  const maxTier = Math.max(0, ...[...input.partitions.values()].map((p) => p.tier));
  const maxQos = Math.max(0, ...input.qos.values());
  const fsCache = new Map<string, number>();
  for (const c of claims) {
    if (result.has(c.id)) continue;
    const key = `${c.project}/${c.user}`;
    let fs = fsCache.get(key);
    if (fs === undefined) fsCache.set(key, (fs = input.fairShare(c.project, c.user)));
    result.set(
      c.id,
      weigh(
        {
          age: ageFactor(input.now - c.submitTime, input.weights.maxAgeMs),
          fairShare: fs,
          jobSize: jobSizeFactor(c.res.cpu, clusterCpu, input.weights.favorSmall),
          partition: relative(input.partitions.get(partitionOf(c, input.defaultPartition))?.tier ?? 0, maxTier),
          qos: relative(input.qos.get(c.qos) ?? 0, maxQos),
        },
        input.weights,
      ),
    );
  }
  return result;
}

/** CPU of the nodes that take instances now (the job-size factor's denominator). */
export function clusterCpuOf(nodes: Iterable<NodeRecord>, now: number, downAfterMs: number): number {
  let cpu = 0;
  for (const n of nodes) if (n.ready && now - n.lastSeen <= downAfterMs) cpu += n.capacity.cpu;
  return cpu;
}

export function runCycle(input: CycleInput): CycleResult {
  const { now, defaultPartition } = input;
  // The pending claims, and what the active ones hold: kept by the caller (`sums`), or summed here.
  let pending: Iterable<ClaimRecord>;
  let sums: ClusterSums;
  let lookup: (id: string) => ClaimRecord | undefined;
  if (input.sums) {
    sums = input.sums;
    pending = input.split ? input.split.pending : [...input.claims].filter(isPending);
    const find = input.lookup ?? (() => undefined);
    lookup = (id) => {
      const c = find(id);
      return c && isActive(c) ? c : undefined;
    };
  } else {
    const p: ClaimRecord[] = input.split ? [...input.split.pending] : [];
    const active: ClaimRecord[] = input.split ? input.split.active : [];
    if (!input.split) {
      for (const c of input.claims) {
        if (isActive(c)) active.push(c);
        else if (isPending(c)) p.push(c);
      }
    }
    pending = p;
    sums = ClusterSums.of(active);
    let activeIndex: Map<string, ClaimRecord> | undefined;
    lookup = (id) => (activeIndex ??= new Map(active.map((c) => [c.id, c]))).get(id);
  }

  const table = (input.sums && input.nodeTable) || new NodeTable(defaultPartition, false);
  table.sync(Array.isArray(input.nodes) ? input.nodes : [...input.nodes], sums, now, input.downAfterMs);
  const { views, byPartition, clusterCpu } = table;
  let prio!: Map<string, Breakdown>;
  table.spots = {
    // Spot instances of a node become victims (with their priority) only when a cycle looks
    // for room to preempt there.
    victims(use) {
      const list: Victim[] = [];
      for (const c of use.spot.values()) {
        if (!prio.has(c.id)) priorities(input, [c], clusterCpu, prio);
        list.push({
          id: c.id,
          res: c.res,
          devices: c.devices,
          placeTime: c.placeTime,
          priority: prio.get(c.id)?.priority ?? 0,
          group: c.group,
        });
      }
      return list;
    },
  };
  // With `ordered` input the caller computed the pending claims' priorities into the cache.
  prio = input.ordered && input.priorityCache ? input.priorityCache : priorities(input, pending, clusterCpu, input.priorityCache);
  // What each partition's running instances hold (this cycle adds what it places).
  const partitionUse = table.partitionUse();
  // What this cycle gives each project, over what the sums say.
  const projectUse = new Map<string, Use>();

  // Room at the start of the cycle, before anything is placed (PRIORITY vs RESOURCES): a
  // placement replaces a view's `used`, so the first one is what the node had.
  const freeAtStart = (v: NodeView) => sub(v.rec.capacity, (v as CycleView).start);

  // Claims already waiting on a preemption go first, then by priority, submit time, id
  // (sorted on plain numbers, not through map lookups).
  const order = input.ordered ? pending : queueOrder([...pending], prio);
  const result: CycleResult = {
    placements: [],
    preemptions: [],
    pending: new Map(),
    priorities: prio,
    order: Array.isArray(order) ? order : [],
  };
  const failedShapes = new Map<string, Decision>();
  let rotate = input.seed ?? 0;

  for (const c of order) {
    if (result.placements.length >= input.maxPlacements) {
      // The rest is not looked at in this cycle; with `ordered` input the caller keeps their
      // earlier reasons instead of being handed one entry per waiting claim.
      if (input.ordered) break;
      result.pending.set(c.id, CYCLE_LIMIT);
      continue;
    }
    if (!Array.isArray(order)) result.order.push(c);
    const decide = (reason: PendingReason, detail: string) => result.pending.set(c.id, { reason, detail });
    const partitionName = partitionOf(c, defaultPartition);
    const partition = input.partitions.get(partitionName);
    const nodes = byPartition.get(partitionName) ?? [];
    const quota = input.quotas.get(c.project);
    const used = projectUse.get(c.project) ?? sums.projectUse(c.project);
    if (quota && ((quota.maxInstances > 0 && used.n + 1 > quota.maxInstances) || !withinLimit(add(used.res, c.res), quota.maxResources))) {
      decide(PendingReason.QUOTA_EXCEEDED, `project ${c.project} uses ${used.n} instances and ${describe(used.res)} of its quota`);
      continue;
    }
    if (partition && !withinLimit(add(partitionUse.get(partitionName) ?? ZERO, c.res), partition.maxResources)) {
      decide(PendingReason.PARTITION_FULL, `partition ${partitionName} is at its limit of ${describe(partition.maxResources)}`);
      continue;
    }
    if (c.preemptible && partition && !partition.allowPreemptible) {
      decide(PendingReason.NO_MATCHING_NODE, `partition ${partitionName} takes no preemptible claims`);
      continue;
    }
    const placeOn = (view: NodeView) => {
      if (c.group) (view as CycleView).ownGroups();
      if (c.spec.ports.length) (view as CycleView).ownHostPorts();
      takeRoom(view, c);
      table.changed(view as CycleView);
      table.index(nodePartition(view.rec, defaultPartition))?.update(view);
      projectUse.set(c.project, { n: used.n + 1, res: add(used.res, c.res) });
      partitionUse.set(partitionName, add(partitionUse.get(partitionName) ?? ZERO, c.res));
      result.placements.push({ claim: c, node: view.rec.name });
    };
    if (c.reservedNode) {
      const view = views.get(c.reservedNode);
      if (view && !view.held && filterNode(c, view) === '') {
        placeOn(view);
        continue;
      }
      // Still waiting for the spot instances to leave: keep everyone else off that room, and
      // tell again any victim whose notice was not recorded (its record lost a race).
      const staying = c.victims.map(lookup).filter((v): v is ClaimRecord => v !== undefined && v.node === c.reservedNode);
      if (view && !view.held && staying.length > 0 && byPartition.get(partitionName)?.includes(view)) {
        view.held = true;
        table.changed(view);
        const untold = staying.filter((v) => v.preemptedBy !== c.id).map((v) => v.id);
        if (untold.length) result.preemptions.push({ claim: c, node: c.reservedNode, victims: untold });
        decide(PendingReason.PREEMPTION, `waiting for ${staying.length} spot instance(s) on ${c.reservedNode} to stop`);
        continue;
      }
      // The node went away, or the victims left and the room went elsewhere: schedule afresh.
    }
    // Group and host port filters depend on more than the shape: no shortcut for those claims.
    const shape = c.group || claimHostPorts(c).length ? '' : shapeKey(c);
    const known = shape ? failedShapes.get(shape) : undefined;
    // Room only shrinks during a cycle and the queue goes down in priority, so a shape that
    // found neither room nor spot instances to preempt finds none later in the same cycle.
    if (known) {
      result.pending.set(c.id, known);
      continue;
    }
    const choice = chooseNode(c, nodes, input.placement, nodes.length > 0 ? rotate++ % nodes.length : 0, table.index(partitionName));
    if (choice.node) {
      placeOn(choice.node);
      continue;
    }
    if (choice.possible === 0) {
      const d = { reason: PendingReason.NO_MATCHING_NODE, detail: noMatchDetail(c, partitionName, nodes.length) };
      if (shape) failedShapes.set(shape, d);
      result.pending.set(c.id, d);
      continue;
    }
    const ports = claimHostPorts(c);
    // Room is there but its host ports are taken: preempting spot instances for room would not help.
    const portsHeld = ports.length > 0 && nodes.some((n) => fits(c.res, free(n)) && filterNode(c, n) === 'host-ports');
    if (!c.preemptible && !portsHeld) {
      const plan = choosePreemption(c, nodes);
      if (plan) {
        plan.node.held = true;
        table.changed(plan.node as CycleView);
        const ids = new Set(plan.victims.map((v) => v.id));
        plan.node.spot = plan.node.spot.filter((v) => !ids.has(v.id));
        result.preemptions.push({ claim: c, node: plan.node.rec.name, victims: [...ids] });
        decide(PendingReason.PREEMPTION, `preempting ${ids.size} spot instance(s) on ${plan.node.rec.name}`);
        continue;
      }
    }
    const wouldHaveFit = nodes.some((n) => fits(c.res, freeAtStart(n)));
    const d = portsHeld
      ? {
          reason: PendingReason.RESOURCES,
          detail: `host port ${ports.join(', ')} is held on every node of partition ${partitionName} with room`,
        }
      : wouldHaveFit
        ? { reason: PendingReason.PRIORITY, detail: 'claims with a higher priority took the free room' }
        : { reason: PendingReason.RESOURCES, detail: `needs ${describe(c.res)}; no node in partition ${partitionName} has that free` };
    if (shape) failedShapes.set(shape, d);
    result.pending.set(c.id, d);
  }
  return result;
}

const CYCLE_LIMIT: Decision = Object.freeze({
  reason: PendingReason.PRIORITY,
  detail: 'claims with a higher priority go first (cycle limit reached)',
});

function shapeKey(c: ClaimRecord): string {
  return `${c.partition}|${c.backend}|${c.res.cpu}|${c.res.mem}|${c.res.gpus}|${c.devices.map((d) => `${d.kind}:${d.count}`).join(',')}`;
}

function noMatchDetail(c: ClaimRecord, partition: string, nodes: number): string {
  if (nodes === 0) return `partition ${partition} has no ready node`;
  const parts = [`${describe(c.res)}`];
  if (c.devices.length) parts.push(c.devices.map((d) => `${d.count} device(s) of kind ${d.kind}`).join(', '));
  if (c.backend !== Backend.UNSPECIFIED) parts.push(`backend ${Backend[c.backend]}`);
  return `no node of partition ${partition} has ${parts.join(' and ')}`;
}
