// Fairness over a simulated week (pure domain, simulated clock): two projects with shares
// 70/30 keep the cluster saturated; the CPU time each receives follows the shares. Then a
// third project bursts in and gets its share within a few cycles.
import { strict as assert } from 'node:assert';
import { ClaimState } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { runCycle } from '../../src/domain/cycle';
import { accrueUsage, billing, computeFairShare, type AccountDef, type Algorithm } from '../../src/domain/fairshare';
import type { ClaimRecord } from '../../src/domain/model';
import { DEFAULT_WEIGHTS } from '../../src/domain/priority';
import { claim, cpus, node } from './helpers';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const CYCLE = 5 * MINUTE;

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Simulation {
  now = 0;
  claims = new Map<string, ClaimRecord>();
  ends = new Map<string, number>();
  usage = new Map<string, number>();
  delivered = new Map<string, number>();
  nodes = Array.from({ length: 10 }, (_, i) => node(`n${i}`, cpus(10, 40)));
  private seq = 0;
  private random = rng(42);

  constructor(
    readonly accounts: AccountDef[],
    readonly algorithm: Algorithm,
  ) {}

  /** Keeps `depth` claims of the project waiting. */
  fill(project: string, depth: number): void {
    const waiting = [...this.claims.values()].filter((c) => c.project === project && c.state === ClaimState.PENDING).length;
    for (let i = waiting; i < depth; i++) {
      const id = `${project}-${this.seq++}`;
      this.claims.set(id, claim(id, { project, user: `${project}-user`, res: cpus(1, 4), submitTime: this.now }));
    }
  }

  running(project: string): number {
    return [...this.claims.values()].filter((c) => c.project === project && c.state === ClaimState.RUNNING).length;
  }

  step(): void {
    this.now += CYCLE;
    const active = [...this.claims.values()].filter((c) => c.state === ClaimState.RUNNING);
    for (const c of active) this.delivered.set(c.project, (this.delivered.get(c.project) ?? 0) + CYCLE);
    accrueUsage(
      this.usage,
      CYCLE,
      24 * HOUR,
      active.map((c) => ({ account: c.project, user: c.user, rate: billing(c.res, { cpu: 1, memGiB: 0, gpu: 0 }) })),
    );
    for (const c of active) {
      if (this.ends.get(c.id)! <= this.now) {
        this.claims.delete(c.id);
        this.ends.delete(c.id);
      }
    }
    const users = [...new Set([...this.claims.values()].map((c) => `${c.project}/${c.user}`))].map((k) => k.split('/') as [string, string]);
    const fs = computeFairShare(this.accounts, this.usage, this.algorithm, users);
    for (const n of this.nodes) n.lastSeen = this.now;
    const result = runCycle({
      now: this.now,
      claims: this.claims.values(),
      nodes: this.nodes,
      partitions: new Map(),
      defaultPartition: 'default',
      quotas: new Map(),
      qos: new Map(),
      weights: DEFAULT_WEIGHTS,
      fairShare: fs.factorOf,
      placement: { strategy: 'spread', imageWeight: 0, maxScored: 0 },
      downAfterMs: 3 * CYCLE,
      maxPlacements: 1000,
    });
    for (const p of result.placements) {
      p.claim.state = ClaimState.RUNNING;
      p.claim.node = p.node;
      p.claim.placeTime = this.now;
      // Instances run 30 minutes to 2 hours.
      this.ends.set(p.claim.id, this.now + 30 * MINUTE + Math.floor(this.random() * 90 * MINUTE));
    }
  }
}

for (const algorithm of ['fair_tree', 'classic'] as const) {
  describe(`fairness over a simulated week (${algorithm})`, () => {
    it('delivers 70/30 to projects with shares 70/30, then serves a bursting project within a few cycles', () => {
      const sim = new Simulation(
        [
          { name: 'big', parent: '', shares: 70, userShares: {} },
          { name: 'small', parent: '', shares: 30, userShares: {} },
        ],
        algorithm,
      );
      const week = (7 * 24 * HOUR) / CYCLE;
      for (let i = 0; i < week; i++) {
        sim.fill('big', 120);
        sim.fill('small', 120);
        sim.step();
      }
      const big = sim.delivered.get('big')!;
      const small = sim.delivered.get('small')!;
      const share = big / (big + small);
      assert.ok(Math.abs(share - 0.7) <= 0.03, `big got ${(share * 100).toFixed(1)}% of the CPU time (want 70 +- 3)`);
      // The cluster was kept busy: 100 CPUs, at least 95% of the week.
      assert.ok(big + small >= 0.95 * 100 * week * CYCLE, 'the cluster stays saturated');

      // A third project with 20 shares of 120 (16.7%, ~17 of 100 CPUs) starts submitting.
      sim.accounts.push({ name: 'burst', parent: '', shares: 20, userShares: {} });
      let cycles = 0;
      while (sim.running('burst') < 16 && cycles < 20) {
        sim.fill('big', 120);
        sim.fill('small', 120);
        sim.fill('burst', 60);
        sim.step();
        cycles++;
      }
      assert.ok(sim.running('burst') >= 16, `burst runs ${sim.running('burst')} after ${cycles} cycles`);
      assert.ok(cycles <= 6, `burst needed ${cycles} cycles to get its share`);
    });
  });
}
