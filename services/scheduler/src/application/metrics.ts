// The scheduler's metrics: the queue by project, state and reason; placements, preemptions
// and failed placements; fair share and usage per project; nodes up and down; cycle time.
// They are counted where things happen (a few calls from the cycle, the writer, the publisher
// and the runtime events); the rest is read from the scheduler's memory when Prometheus
// scrapes, so the cycle pays next to nothing for it.
// Every replica reports what it has in memory: alerts take max() across replicas.
// Projects are tenant-chosen names: past PROJECT_LABEL_LIMIT distinct ones they fold into
// "other", so a tenant creating projects cannot blow up the series a site stores.
import { BoundedLabel, instrumentsOnFirstUse, lastKnown, platformMeter } from '@lapis/platform';
import type { Counter, Histogram } from '@opentelemetry/api';
import { ClaimState, PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import type { Scheduler } from './scheduler';

/** Distinct project label values kept before the rest are reported as "other". */
export const PROJECT_LABEL_LIMIT = 100;

const projects = new BoundedLabel(PROJECT_LABEL_LIMIT);

interface Instruments {
  failures: Counter;
  cycle: Histogram;
}

// Placements and preemptions can come thousands a second: each is a plain count per project
// here, and the observable counters of observeScheduler report the totals when Prometheus
// scrapes, so the hot path never goes through the metrics SDK.
const placed = new Map<string, number>();
const preempted = new Map<string, number>();
const tally = (counts: Map<string, number>, project: string) => {
  const label = projects.of(project);
  counts.set(label, (counts.get(label) ?? 0) + 1);
};

const scheduler = instrumentsOnFirstUse((meter): Instruments => {
  const made = {
    failures: meter.createCounter('lapis.scheduler.placement.failures', {
      unit: '{placement}',
      description:
        'placements that failed: publish (the event could not be sent yet; retried) or instance_error (the node could not start the instance)',
    }),
    cycle: meter.createHistogram('lapis.scheduler.cycle.duration', {
      unit: 'ms',
      description: 'time of one scheduling cycle (deciding and sending its writes)',
    }),
  };
  // From 0, so that the first failure is an increase Prometheus sees (a series that starts
  // at 1 has no increase until its second step).
  for (const reason of ['publish', 'instance_error']) made.failures.add(0, { reason });
  return made;
});

export function recordCycle(ms: number): void {
  scheduler().cycle.record(ms);
}

export function countPlacement(project: string): void {
  tally(placed, project);
}

export function countPreemption(project: string): void {
  tally(preempted, project);
}

export function countPlacementFailure(reason: 'publish' | 'instance_error'): void {
  scheduler().failures.add(1, { reason });
}

/** The claims that are not over: the queue and what it placed. */
const LIVE = new Set([ClaimState.PENDING, ClaimState.REQUEUED, ClaimState.PLACED, ClaimState.RUNNING]);

/**
 * The queue is counted by walking every claim the scheduler holds: O(claims), a few
 * microseconds each, so in the background, in slices that give the event loop back (a cycle
 * never waits behind a count of a million claims), at most every QUEUE_COUNT_EVERY_MS whatever
 * the scrape interval; scrapes report the last count.
 */
const QUEUE_COUNT_EVERY_MS = 15_000;
const QUEUE_COUNT_SLICE = 5_000;

interface QueueRow {
  project: string;
  state: string;
  reason: string;
  n: number;
}

async function countQueue(s: Scheduler): Promise<QueueRow[]> {
  const counts = new Map<string, QueueRow>();
  let seen = 0;
  // A Map's iterator survives changes between slices (claims added or removed meanwhile are
  // counted or not): a metric, not a ledger.
  for (const { rec } of s.claims.values()) {
    if (++seen % QUEUE_COUNT_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
    if (!LIVE.has(rec.state)) continue;
    const project = projects.of(rec.project);
    const waiting = rec.state === ClaimState.PENDING || rec.state === ClaimState.REQUEUED;
    const reason = waiting ? (s.pendingReason(rec.id) ?? rec.reason) : PendingReason.UNSPECIFIED;
    const key = `${project}\u0000${rec.state}\u0000${reason}`;
    const row = counts.get(key);
    if (row) row.n++;
    // "PENDING", "RESOURCES": the enum names without their CLAIM_STATE_ / PENDING_REASON_ prefix.
    else counts.set(key, { project, state: ClaimState[rec.state], reason: waiting ? PendingReason[reason] : '', n: 1 });
  }
  return [...counts.values()];
}

/** Reports the scheduler's state at each collection (queue, nodes, fair share, leadership). */
export function observeScheduler(s: Scheduler): void {
  const meter = platformMeter();
  const queue = meter.createObservableGauge('lapis.scheduler.queue.length', {
    unit: '{claim}',
    description: 'claims not over, by project, state (PENDING, REQUEUED, PLACED, RUNNING) and, for waiting ones, reason',
  });
  const nodes = meter.createObservableGauge('lapis.scheduler.nodes', {
    unit: '{node}',
    description: 'nodes by state: up, or down (no heartbeat for three intervals, or not ready)',
  });
  const factor = meter.createObservableGauge('lapis.scheduler.fairshare.factor', {
    description: 'fair-share factor of each project (0..1; 0.5 = using exactly its share)',
  });
  const usage = meter.createObservableGauge('lapis.scheduler.usage', {
    description: 'decayed usage of each project, in billing units (what fair share is computed from)',
  });
  const leader = meter.createObservableGauge('lapis.scheduler.leader', {
    description: '1 on the instance that holds the leader lease (runs the cycles), 0 on the others',
  });
  const placements = meter.createObservableCounter('lapis.scheduler.placements', {
    unit: '{placement}',
    description: 'placements recorded and published to their node, by project',
  });
  const preemptions = meter.createObservableCounter('lapis.scheduler.preemptions', {
    unit: '{instance}',
    description: 'spot instances told to stop to make room, by the project of the instance preempted',
  });
  const queueRows = lastKnown(() => countQueue(s), QUEUE_COUNT_EVERY_MS);
  // The leader reports the factors its cycles rank by; another replica computes them, at most
  // every QUEUE_COUNT_EVERY_MS (the whole tree: too much for every scrape).
  const computedFairShare = lastKnown(async () => s.fairShare(), QUEUE_COUNT_EVERY_MS);
  meter.addBatchObservableCallback(
    (result) => {
      const counts = queueRows() ?? [];
      for (const row of counts) result.observe(queue, row.n, { project: row.project, state: row.state, reason: row.reason });
      // A project's placements counted from 0 once it has claims, for the same reason.
      for (const row of counts) if (!placed.has(row.project)) placed.set(row.project, 0);
      for (const [project, n] of placed) result.observe(placements, n, { project });
      for (const [project, n] of preempted) result.observe(preemptions, n, { project });

      let down = 0;
      for (const n of s.nodes.values()) if (s.nodeIsDown(n)) down++;
      result.observe(nodes, s.nodes.size - down, { state: 'up' });
      result.observe(nodes, down, { state: 'down' });
      result.observe(leader, s.leader ? 1 : 0);

      const perProject = new Map<string, number>();
      for (const [key, value] of s.usageByUser()) {
        const project = projects.of(key.slice(0, key.indexOf('/')));
        perProject.set(project, (perProject.get(project) ?? 0) + value);
      }
      for (const [project, value] of perProject) result.observe(usage, value, { project });
      for (const row of (s.fairShareInUse() ?? computedFairShare())?.rows ?? []) {
        if (row.user === '' && row.account !== 'root') result.observe(factor, row.factor, { project: projects.of(row.account) });
      }
    },
    [queue, nodes, factor, usage, leader, placements, preemptions],
  );
}
