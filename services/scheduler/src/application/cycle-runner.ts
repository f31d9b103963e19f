// Scheduling cycles while this instance leads: on events (a new claim, an instance event, a
// node change) and on a timer. One cycle at a time; asks that come while one runs make one
// more. A cycle charges usage, recalculates priorities when due, runs the pure cycle
// (domain/cycle.ts) over the caches, and hands its decisions to the placement writer.
import type { Logger } from '@lapis/platform';
import { clusterCpuOf, partitionOf, runCycle } from '../domain/cycle';
import type { FairShareResult } from '../domain/fairshare';
import { NodeTable } from '../domain/node-table';
import { jobSizeFactor, relative } from '../domain/priority';
import type { Settings } from '../config';
import type { ClaimCache } from './claim-cache';
import type { Cluster } from './cluster';
import type { InFlight } from './in-flight';
import { recordCycle } from './metrics';
import type { PlacementWriter } from './placement-writer';
import type { PlacementPublisher } from './publisher';
import type { UsageLedger } from './usage';

export interface CycleStats {
  /** Time spent deciding (the pure cycle), ms. */
  decideMs: number;
  /** Of which recalculating every priority and sorting the queue anew (0 when not due), ms. */
  recalcMs: number;
  /** Waited before the cycle for writes in flight to drop under the limit (not in `ms`). */
  waitMs: number;
  placed: number;
  preempted: number;
  pending: number;
  ms: number;
}

export interface CycleRunnerOptions {
  cache: ClaimCache;
  cluster: Cluster;
  usage: UsageLedger;
  inFlight: InFlight;
  writer: PlacementWriter;
  publisher: PlacementPublisher;
  settings: Settings;
  log: Logger;
  now: () => number;
  /** Whether cycles may run: leading, and not stopped. */
  leading: () => boolean;
  /** Whether this instance still holds the leader lease (with its margin). */
  holdsLease: () => boolean;
  cycleMs: number;
  maxPlacements: number;
  maxInFlight: number;
  /** Recalculate every priority this often (SLURM's PriorityCalcPeriod). */
  priorityCalcMs: number;
  /** Test hook: after a cycle decided, before anything is recorded. */
  decided: () => Promise<void> | void;
  /** Called after every cycle. */
  cycled: (stats: CycleStats) => void;
}

export class CycleRunner {
  lastCycle?: CycleStats;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private priorityAt = 0;
  private fsSnapshot?: FairShareResult;
  /** The nodes' views from cycle to cycle: a cycle redoes only what changed since the last. */
  private readonly nodeTable: NodeTable;

  constructor(private readonly o: CycleRunnerOptions) {
    this.nodeTable = new NodeTable(o.settings.defaultPartition);
  }

  /** The fair share the cycles rank by, as of the last recalculation (none before the first). */
  get fairShareInUse(): FairShareResult | undefined {
    return this.fsSnapshot;
  }

  /** Runs a cycle every cycleMs, and one now. */
  startTimer(): void {
    this.timer = setInterval(() => this.trigger(), this.o.cycleMs);
    this.trigger();
  }

  stopTimer(): void {
    clearInterval(this.timer);
  }

  /** Resolves when no cycle runs. */
  async idle(): Promise<void> {
    await this.running;
  }

  /** The next cycle recalculates every priority (an account changed). */
  recalculateSoon(): void {
    this.priorityAt = 0;
  }

  /** Asks for a cycle soon; several asks in a row make one cycle. */
  trigger(): void {
    if (!this.o.leading()) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.cycle())
      .then(() => undefined)
      .catch((error) => this.o.log.error({ err: error }, 'scheduling cycle failed'))
      .finally(() => {
        this.running = undefined;
        // A cycle that stopped at its placement limit leaves work: go on at once.
        if (this.again || (this.lastCycle?.placed ?? 0) >= this.o.maxPlacements) {
          this.again = false;
          this.trigger();
        }
      });
  }

  /** Runs one cycle now (tests and the benchmark drive it directly). */
  async runOnce(): Promise<CycleStats> {
    while (this.running) await this.running;
    return this.cycle();
  }

  /**
   * One scheduling cycle: charge usage, recalculate priorities when due, walk the queue from
   * the head deciding at most maxPlacements claims, and send (not await) the writes recording
   * them. A cycle first waits, outside its own time, until a full cycle's writes fit under
   * maxInFlight, so a cycle never blocks on acknowledgements midway.
   */
  private async cycle(): Promise<CycleStats> {
    const { cache, cluster, settings } = this.o;
    const stats: CycleStats = { decideMs: 0, recalcMs: 0, waitMs: 0, placed: 0, preempted: 0, pending: 0, ms: 0 };
    const waitFrom = performance.now();
    await this.o.inFlight.room(Math.max(0, this.o.maxInFlight - this.o.maxPlacements));
    stats.waitMs = performance.now() - waitFrom;
    const started = performance.now();
    const now = this.o.now();
    if (!this.o.holdsLease()) return stats;
    // Placements recorded but not yet published (a publish failed, or a new leader took over).
    this.o.publisher.republish();
    // Usage: decay, and charge the instances that ran since the last cycle (per user, summed
    // as claims change).
    this.o.usage.accrue(now, cache.sums);
    const nodes = cluster.nodeViews();
    const downAfterMs = cluster.downAfterMs;
    // Priorities are recalculated every priorityCalcMs (SLURM's PriorityCalcPeriod), and the
    // queue sorted anew; claims that arrived since get theirs from the same fair-share
    // snapshot and are merged in.
    const recalc = now - this.priorityAt >= this.o.priorityCalcMs || !this.fsSnapshot;
    const partitions = new Map(cluster.partitions().map((p) => [p.name, p]));
    const base = {
      now,
      partitions,
      defaultPartition: settings.defaultPartition,
      qos: settings.qos,
      weights: settings.weights,
      fairShare: (project: string, user: string) => this.fsSnapshot!.factorOf(project, user),
    };
    if (recalc) {
      const t = performance.now();
      const fs = (this.fsSnapshot = this.o.usage.fairShare(cluster.accounts.values(), cache.sums));
      this.priorityAt = now;
      const clusterCpu = clusterCpuOf(nodes, now, downAfterMs);
      const maxTier = Math.max(0, ...[...partitions.values()].map((p) => p.tier));
      const { weights, defaultPartition, qos } = settings;
      const maxQos = Math.max(0, ...qos.values());
      cache.queue.recalculate(now, (c) => ({
        fairShare: fs.factorOf(c.project, c.user),
        jobSize: jobSizeFactor(c.res.cpu, clusterCpu, weights.favorSmall),
        partition: relative(partitions.get(partitionOf(c, defaultPartition))?.tier ?? 0, maxTier),
        qos: relative(qos.get(c.qos) ?? 0, maxQos),
      }));
      stats.recalcMs = performance.now() - t;
    }
    const result = runCycle({
      ...base,
      claims: [],
      split: { pending: cache.queue.walk(), active: [] },
      sums: cache.sums,
      lookup: (id) => cache.entries.get(id)?.rec,
      nodes,
      nodeTable: this.nodeTable,
      quotas: cluster.quotas,
      placement: settings.placement,
      downAfterMs,
      maxPlacements: this.o.maxPlacements,
      seed: Math.floor(Math.random() * 1e9),
      // Priorities of spot instances, when the cycle looks at preempting them.
      priorityCache: new Map(),
      ordered: true,
    });
    // Claims the cycle did not reach keep their earlier reasons.
    for (const [id, d] of result.pending) cache.reasons.set(id, d);
    for (const p of result.placements) cache.reasons.delete(p.claim.id);
    stats.decideMs = performance.now() - started;
    await this.o.decided();
    await this.o.writer.apply(result, now);
    // The usage document is written every few seconds in the background: the cycle does not
    // wait for its acknowledgement behind the placements' writes.
    const writing = this.o.usage.writeSoon();
    if (writing) this.o.inFlight.track(writing);
    stats.placed = result.placements.length;
    stats.preempted = result.preemptions.length;
    stats.pending = cache.queue.size;
    stats.ms = performance.now() - started;
    recordCycle(stats.ms);
    this.lastCycle = stats;
    this.o.cycled(stats);
    return stats;
  }
}
