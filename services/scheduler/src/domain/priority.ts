// SLURM's multifactor priority (slurm.schedmd.com/priority_multifactor.html):
//   Job_priority = W_age * age + W_fairshare * fairshare + W_jobsize * job_size
//                + W_partition * partition + W_qos * qos          (each factor 0..1)
// with age = min(time queued, PriorityMaxAge) / PriorityMaxAge, job size = the claim's CPUs
// over the cluster's (1 - that with PriorityFavorSmall), partition = the partition's
// PriorityJobFactor over the largest one, qos = the QOS priority over the largest one.
// Lapis reports the sum divided by the sum of the weights, so a priority is 0..1.

export interface Weights {
  age: number;
  fairShare: number;
  jobSize: number;
  partition: number;
  qos: number;
  /** PriorityMaxAge. */
  maxAgeMs: number;
  /** PriorityFavorSmall. */
  favorSmall: boolean;
}

export const DEFAULT_WEIGHTS: Weights = {
  age: 1000,
  fairShare: 10000,
  jobSize: 1000,
  partition: 1000,
  qos: 1000,
  maxAgeMs: 7 * 24 * 3600_000,
  favorSmall: true,
};

export interface Factors {
  age: number;
  fairShare: number;
  jobSize: number;
  partition: number;
  qos: number;
}

export interface Breakdown extends Factors {
  weightedAge: number;
  weightedFairShare: number;
  weightedJobSize: number;
  weightedPartition: number;
  weightedQos: number;
  /** 0..1. */
  priority: number;
}

export const ageFactor = (queuedMs: number, maxAgeMs: number): number =>
  maxAgeMs <= 0 ? 0 : Math.min(Math.max(queuedMs, 0), maxAgeMs) / maxAgeMs;

export function jobSizeFactor(cpuMillis: number, clusterCpuMillis: number, favorSmall: boolean): number {
  const share = clusterCpuMillis > 0 ? Math.min(cpuMillis / clusterCpuMillis, 1) : 0;
  return favorSmall ? 1 - share : share;
}

/** A value over the largest of its kind (partition tiers, QOS priorities), 0 when all are 0. */
export const relative = (value: number, max: number): number => (max > 0 ? Math.min(value / max, 1) : 0);

/**
 * The priority of `weigh` for an age factor and the other factors, without the breakdown and
 * without allocating (the same arithmetic, so the same number).
 */
export function priorityOf(age: number, f: Omit<Factors, 'age'>, w: Weights): number {
  const total = w.age + w.fairShare + w.jobSize + w.partition + w.qos;
  const k = total > 0 ? 1 / total : 0;
  return w.age * age * k + w.fairShare * f.fairShare * k + w.jobSize * f.jobSize * k + w.partition * f.partition * k + w.qos * f.qos * k;
}

export function weigh(factors: Factors, w: Weights): Breakdown {
  const total = w.age + w.fairShare + w.jobSize + w.partition + w.qos;
  const k = total > 0 ? 1 / total : 0;
  const weightedAge = w.age * factors.age * k;
  const weightedFairShare = w.fairShare * factors.fairShare * k;
  const weightedJobSize = w.jobSize * factors.jobSize * k;
  const weightedPartition = w.partition * factors.partition * k;
  const weightedQos = w.qos * factors.qos * k;
  return {
    age: factors.age,
    fairShare: factors.fairShare,
    jobSize: factors.jobSize,
    partition: factors.partition,
    qos: factors.qos,
    weightedAge,
    weightedFairShare,
    weightedJobSize,
    weightedPartition,
    weightedQos,
    priority: weightedAge + weightedFairShare + weightedJobSize + weightedPartition + weightedQos,
  };
}

/** The weights as a breakdown row ("the weights in use" of sprio -w), normalized to sum 1. */
export function weightsRow(w: Weights): Breakdown {
  return weigh({ age: 1, fairShare: 1, jobSize: 1, partition: 1, qos: 1 }, w);
}
