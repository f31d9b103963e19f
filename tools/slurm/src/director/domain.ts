// The partition director's decisions, pure: from what Slurm and the Lapis scheduler report
// now to the steps that move idle nodes between Slurm's batch partition and the Lapis cloud
// partition. No memory between rounds: every state a node can be in is visible in the two
// systems, so a restarted director carries on where the last one stopped.
//
// Where a shared node is (it is in Slurm's batch partition and in one of the two Lapis partitions):
//   slurm side:  Lapis partition = the Slurm-side partition, Slurm has it in service.
//   in transit:  Lapis partition = the Slurm-side partition, Slurm has it DRAINed with a reason
//                starting "lapis:" (draining for Lapis, or back from Lapis waiting for its
//                instances to end).
//   cloud side:  Lapis partition = the cloud partition; Slurm keeps it DRAINed, reason "lapis: ...".
//
// Slurm -> Lapis: drain an IDLE node in Slurm; once Slurm reports it drained and idle (no job,
// nothing allocated), MoveNode it into the cloud partition.
// Lapis -> Slurm: MoveNode a node on which no instance runs to the Slurm-side partition (no new
// placements), then resume it in Slurm. With the preemption policy, a node whose instances are
// all preemptible is moved with drain and its instances get a preemption notice; it is resumed
// in Slurm once none runs.
// A node whose Lapis agent is down (no heartbeat: the scheduler's down_nodes) never moves to
// Lapis, which would place nothing on it; one drained for Lapis meanwhile goes back to Slurm.

/** Drain reasons the director writes start with this; other drains are an admin's and left alone. */
export const REASON_PREFIX = 'lapis:';

export interface SlurmNode {
  name: string;
  /** Base state as scontrol prints it before any '+': IDLE, ALLOCATED, MIXED, DOWN, ... */
  state: string;
  /** The '+' flags: DRAIN, COMPLETING, NOT_RESPONDING, RESERVED, ... */
  flags: string[];
  /** Drain/down reason without the "[user@time]" suffix; empty if none. */
  reason: string;
  /** CPUs allocated to jobs now. */
  cpuAlloc: number;
  partitions: string[];
}

export interface LapisClaimOnNode {
  id: string;
  project: string;
  preemptible: boolean;
}

export interface Observation {
  slurm: {
    nodes: SlurmNode[];
    /**
     * Nodes asked for by the jobs pending in the batch partition that more nodes would help
     * (not held, no dependency): a job that needs four nodes counts four.
     */
    pendingJobNodes: number;
  };
  lapis: {
    /** Lapis partition of every node the scheduler knows. */
    partitionOf: Map<string, string>;
    /** Nodes whose Lapis agent is down (no heartbeat): the scheduler places nothing on them. */
    downNodes: Set<string>;
    /** Active (placed or running) claims per node. */
    claimsOn: Map<string, LapisClaimOnNode[]>;
    /** Claims pending in the cloud partition that more nodes would help. */
    pendingClaims: number;
    /** The cloud partition's min/max nodes from the scheduler (0 = none). */
    cloudMin: number;
    cloudMax: number;
  };
}

export interface Policy {
  /** The Lapis partition shared with Slurm. */
  cloudPartition: string;
  /** The Lapis partition holding the shared nodes that Slurm has. */
  slurmSidePartition: string;
  /** Slurm's partition shared with Lapis. */
  batchPartition: string;
  /** Slurm side's min/max nodes (0 = none). */
  slurmMin: number;
  slurmMax: number;
  /** Most nodes in transit at once (and so moved in one round). */
  maxInTransit: number;
  /** Preempt preemptible instances to give a node back to Slurm. */
  preempt: boolean;
}

export type Action =
  /** scontrol update state=drain: the first step of a move to Lapis, or a repair. */
  | { kind: 'drain'; node: string; reason: string; repair?: boolean }
  /** MoveNode into the cloud partition (Slurm reports the node drained and idle). */
  | { kind: 'to-cloud'; node: string; reason: string }
  /** MoveNode to the Slurm-side partition; drain=false: then resume it in Slurm at once. */
  | { kind: 'to-slurm'; node: string; reason: string; drain: boolean }
  /** scontrol update state=resume: no instance runs on it and it is out of the cloud partition. */
  | { kind: 'resume'; node: string; reason: string }
  /** Preemption notices for the node's (preemptible) instances. */
  | { kind: 'preempt'; node: string; claims: LapisClaimOnNode[] };

export type Side = 'cloud' | 'slurm' | 'transit';
export type Want = 'cloud' | 'slurm' | 'none';

export interface SharedNode {
  name: string;
  side: Side;
  slurm: SlurmNode;
  claims: LapisClaimOnNode[];
}

export interface Decision {
  want: Want;
  /** Why it wants that, for the log. */
  why: string;
  cloudSize: number;
  slurmSize: number;
  shared: SharedNode[];
  actions: Action[];
  /** Things worth a log line: why nothing moved, nodes waiting, repairs. */
  notes: string[];
}

const UNUSABLE_FLAGS = new Set([
  'NOT_RESPONDING',
  'FAIL',
  'MAINT',
  'REBOOT_REQUESTED',
  'REBOOT_ISSUED',
  'POWERED_DOWN',
  'POWERING_DOWN',
  'POWERING_UP',
  'POWER_DOWN',
  'INVALID_REG',
]);

export const hasFlag = (n: SlurmNode, flag: string): boolean => n.flags.includes(flag);
export const drainedByLapis = (n: SlurmNode): boolean => hasFlag(n, 'DRAIN') && n.reason.startsWith(REASON_PREFIX);
/** Up and not in any state a move could make worse. */
export const slurmUsable = (n: SlurmNode): boolean =>
  !['DOWN', 'FUTURE', 'UNKNOWN'].includes(n.state) && !n.flags.some((f) => UNUSABLE_FLAGS.has(f));
/** No job on it and nothing allocated (a drained node Slurm has finished with). */
export const slurmIdle = (n: SlurmNode): boolean => n.state === 'IDLE' && n.cpuAlloc === 0 && !hasFlag(n, 'COMPLETING');

/** Where each node shared by the two partitions is. */
export function sharedNodes(obs: Observation, policy: Policy): SharedNode[] {
  const result: SharedNode[] = [];
  for (const slurm of obs.slurm.nodes) {
    if (!slurm.partitions.includes(policy.batchPartition)) continue;
    const partition = obs.lapis.partitionOf.get(slurm.name);
    if (partition !== policy.cloudPartition && partition !== policy.slurmSidePartition) continue;
    const side: Side = partition === policy.cloudPartition ? 'cloud' : drainedByLapis(slurm) ? 'transit' : 'slurm';
    result.push({ name: slurm.name, side, slurm, claims: obs.lapis.claimsOn.get(slurm.name) ?? [] });
  }
  return result.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const limit = (max: number, size: number): number => (max > 0 ? max - size : Number.POSITIVE_INFINITY);

export function decide(obs: Observation, policy: Policy): Decision {
  const shared = sharedNodes(obs, policy);
  const notes: string[] = [];
  const actions: Action[] = [];
  // Sizes as the limits mean them: every node the cloud partition has; every node of Slurm's
  // batch partition that Slurm may use (not drained for Lapis). Nodes in transit count on neither.
  let cloudSize = 0;
  for (const p of obs.lapis.partitionOf.values()) if (p === policy.cloudPartition) cloudSize++;
  const slurmSize = obs.slurm.nodes.filter((n) => n.partitions.includes(policy.batchPartition) && !drainedByLapis(n)).length;
  const lp = obs.lapis.pendingClaims;
  const sp = obs.slurm.pendingJobNodes;
  const { cloudMin, cloudMax } = obs.lapis;

  let want: Want = 'none';
  let why = `${lp} Lapis claim(s) pending, ${sp} node(s) asked for by pending Slurm jobs`;
  if (cloudSize < cloudMin) {
    want = 'cloud';
    why = `the cloud partition has ${cloudSize} node(s), fewer than its minimum ${cloudMin}`;
  } else if (slurmSize < policy.slurmMin) {
    want = 'slurm';
    why = `Slurm's ${policy.batchPartition} has ${slurmSize} node(s), fewer than its minimum ${policy.slurmMin}`;
  } else if (lp > sp) want = 'cloud';
  else if (sp > lp) want = 'slurm';

  // Repairs: a node in the cloud partition must not take Slurm jobs.
  for (const n of shared) {
    if (n.side === 'cloud' && !hasFlag(n.slurm, 'DRAIN')) {
      actions.push({ kind: 'drain', node: n.name, reason: `${REASON_PREFIX} in Lapis partition ${policy.cloudPartition}`, repair: true });
      notes.push(`${n.name} is in the cloud partition but Slurm had it in service: drained it in Slurm`);
    }
  }

  const transit = shared.filter((n) => n.side === 'transit');
  // Nodes in transit go where the demand is now; with none either way, a node drained for
  // Lapis goes into the cloud partition only if claims wait, else back to Slurm.
  // (Not past the cloud's maximum, which may have been lowered meanwhile.)
  const towardCloud = (want === 'cloud' || (want === 'none' && lp > 0)) && limit(cloudMax, cloudSize) > 0;
  let cloudRoom = limit(cloudMax, cloudSize);
  for (const n of transit) {
    const lapisDown = obs.lapis.downNodes.has(n.name);
    if (lapisDown && n.claims.length === 0) {
      // Useless to Lapis while its agent is down: Slurm has it back.
      actions.push({ kind: 'resume', node: n.name, reason: `director: its Lapis agent is down (no heartbeat); ${why}` });
      notes.push(`${n.name} was drained for Lapis, but its Lapis agent is down: resumed in Slurm`);
    } else if (towardCloud && cloudRoom > 0 && !lapisDown) {
      if (slurmIdle(n.slurm) && slurmUsable(n.slurm)) {
        actions.push({ kind: 'to-cloud', node: n.name, reason: `director: drained in Slurm and idle; ${why}` });
        cloudRoom--;
      } else
        notes.push(
          `${n.name} is draining in Slurm (${n.slurm.state}${n.slurm.flags.map((f) => `+${f}`).join('')}, ${n.slurm.cpuAlloc} CPU(s) allocated): waiting for its jobs to end`,
        );
    } else if (n.claims.length === 0) {
      actions.push({ kind: 'resume', node: n.name, reason: `director: no instance runs on it; ${why}` });
    } else {
      notes.push(`${n.name} still runs ${n.claims.length} Lapis instance(s): resumed in Slurm once they end`);
      if (want === 'slurm' && policy.preempt && n.claims.every((c) => c.preemptible))
        actions.push({ kind: 'preempt', node: n.name, claims: n.claims });
    }
  }

  if (want === 'cloud') {
    const room = Math.min(policy.maxInTransit - transit.length, limit(cloudMax, cloudSize + transit.length), slurmSize - policy.slurmMin);
    const idle = shared.filter((n) => n.side === 'slurm' && slurmUsable(n.slurm) && slurmIdle(n.slurm) && !hasFlag(n.slurm, 'DRAIN'));
    // A node whose Lapis agent is down would only leave Slurm to take no claim.
    const candidates = idle.filter((n) => !obs.lapis.downNodes.has(n.name));
    for (const n of idle)
      if (obs.lapis.downNodes.has(n.name))
        notes.push(`${n.name} is idle in Slurm but its Lapis agent is down (no heartbeat): not moved to Lapis`);
    if (room <= 0) {
      if (transit.length === 0)
        notes.push(
          `wants a node for Lapis (${why}) but limits allow none (cloud ${cloudSize}/${cloudMax || '-'}, Slurm ${slurmSize}, min ${policy.slurmMin})`,
        );
    } else if (candidates.length === 0) {
      notes.push(`wants a node for Lapis (${why}) but no shared node is idle in Slurm`);
    }
    for (const n of candidates.slice(0, Math.max(0, room))) {
      actions.push({ kind: 'drain', node: n.name, reason: `${REASON_PREFIX} moving to Lapis partition ${policy.cloudPartition}` });
    }
  } else if (want === 'slurm') {
    const room = Math.min(policy.maxInTransit - transit.length, limit(policy.slurmMax, slurmSize + transit.length), cloudSize - cloudMin);
    // A node of the cloud partition that Slurm also has, and that Slurm could use.
    const movable = shared.filter((n) => n.side === 'cloud' && slurmUsable(n.slurm) && drainedByLapis(n.slurm));
    const free = movable.filter((n) => n.claims.length === 0);
    const preemptible = policy.preempt ? movable.filter((n) => n.claims.length > 0 && n.claims.every((c) => c.preemptible)) : [];
    if (room <= 0) {
      if (transit.length === 0)
        notes.push(
          `wants a node for Slurm (${why}) but limits allow none (Slurm ${slurmSize}/${policy.slurmMax || '-'}, cloud ${cloudSize}, min ${cloudMin})`,
        );
    } else if (free.length + preemptible.length === 0) {
      notes.push(
        `wants a node for Slurm (${why}) but every shared node in the cloud partition runs instances${policy.preempt ? ' that are not all preemptible' : ''}`,
      );
    }
    let left = Math.max(0, room);
    for (const n of free) {
      if (left-- <= 0) break;
      actions.push({ kind: 'to-slurm', node: n.name, reason: `director: no instance runs on it; ${why}`, drain: false });
    }
    // Fewest instances to preempt first.
    for (const n of [...preemptible].sort((a, b) => a.claims.length - b.claims.length)) {
      if (left-- <= 0) break;
      actions.push({
        kind: 'to-slurm',
        node: n.name,
        reason: `director: preempting ${n.claims.length} preemptible instance(s); ${why}`,
        drain: true,
      });
      actions.push({ kind: 'preempt', node: n.name, claims: n.claims });
    }
  }
  return { want, why, cloudSize, slurmSize, shared, actions, notes };
}
