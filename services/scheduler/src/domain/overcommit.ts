// Overcommit, as OpenStack's allocation ratios: a node hands out more CPU and memory than it
// has (capacity × ratio), since instances seldom use all they ask for. An admin sets the ratios
// per partition and per node; a node's own win over its partition's, and where none is set a
// node offers exactly its capacity, as before ratios existed. Only placement sees the larger
// room: quotas, partition limits and fair share keep charging what claims requested. Pure.
import type { NodeRecord, Res } from './model';

/** CPU and memory allocation ratios; 0 means not set here (inherited). */
export interface AllocationRatios {
  cpu: number;
  mem: number;
}

/** The largest ratio accepted: beyond it a node's room means nothing any more. */
export const MAX_ALLOCATION_RATIO = 64;

export const UNSET_RATIOS: AllocationRatios = Object.freeze({ cpu: 0, mem: 0 });
export const NO_OVERCOMMIT: AllocationRatios = Object.freeze({ cpu: 1, mem: 1 });

/** Why `value` is not a ratio ('' when it is): finite, 1..64, or 0 where `unsetAllowed`. */
export function ratioProblem(value: number, unsetAllowed: boolean): string {
  if (unsetAllowed && value === 0) return '';
  if (!Number.isFinite(value) || value < 1 || value > MAX_ALLOCATION_RATIO)
    return `an allocation ratio from 1 to ${MAX_ALLOCATION_RATIO}${unsetAllowed ? ' (0: not set)' : ''}, got ${value}`;
  return '';
}

/** Each ratio from the first layer that sets it (node, partition, ...), else 1. */
export function resolveRatios(...layers: Array<AllocationRatios | undefined>): AllocationRatios {
  const pick = (key: keyof AllocationRatios) => layers.find((l) => l && l[key] > 0)?.[key] ?? 1;
  return { cpu: pick('cpu'), mem: pick('mem') };
}

export const isOvercommitted = (r: AllocationRatios) => r.cpu !== 1 || r.mem !== 1;

/** What a node hands out: CPU and memory times their ratios (whole units), GPUs as they are. */
export const allocatable = (capacity: Res, r: AllocationRatios): Res => ({
  cpu: Math.floor(capacity.cpu * r.cpu),
  mem: Math.floor(capacity.mem * r.mem),
  gpus: capacity.gpus,
});

/**
 * The node as placement sees it: capacity × ratios, and its real capacity as the most one
 * instance may ask for (overcommit shares a node among instances; it makes none larger than
 * its host).
 */
export function withRatios(n: NodeRecord, r: AllocationRatios): NodeRecord {
  if (!isOvercommitted(r)) return n;
  return { ...n, capacity: allocatable(n.capacity, r), instanceLimit: n.capacity };
}
