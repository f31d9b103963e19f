// The incrementally kept sums (ClusterSums) and the kept queue (PendingQueue) against what
// recomputing from every claim gives, after long seeded random sequences of claim changes.
import { strict as assert } from 'node:assert';
import { ClaimState } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { queueOrder, runCycle, type CycleInput } from '../../src/domain/cycle';
import { isActive, isPending, type ClaimRecord } from '../../src/domain/model';
import { DEFAULT_WEIGHTS, weigh } from '../../src/domain/priority';
import { PendingQueue, type ClassFactors } from '../../src/domain/queue';
import { ClusterSums } from '../../src/domain/state';
import { chooseNode, FreeIndex, takeRoom, type NodeView } from '../../src/domain/placement';
import { claim, cpus, node } from './helpers';
import { randomStep, seeded } from './random';

function plain(s: ClusterSums) {
  const sorted = <V>(m: Map<string, V>) => [...m].sort(([a], [b]) => (a < b ? -1 : 1));
  return {
    projects: sorted(s.projects),
    users: sorted(s.users),
    known: sorted(s.known),
    active: s.active,
    nodes: sorted(s.nodes).map(([k, v]) => [k, v.n, v.res, sorted(v.groups), [...v.spot.keys()].sort(), sorted(v.byClaimPartition)]),
  };
}

describe('incremental sums (ClusterSums)', () => {
  for (const seed of [1, 2, 3, 42]) {
    it(`equal the sums recomputed from every claim after 3,000 random changes (seed ${seed})`, () => {
      const random = seeded(seed);
      const claims = new Map<string, ClaimRecord>();
      const sums = new ClusterSums();
      for (let step = 0; step < 3000; step++) {
        const { id, after } = randomStep(random, claims, step);
        sums.change(claims.get(id), after);
        if (after) claims.set(id, after);
        else claims.delete(id);
        if (step % 250 === 0 || step === 2999) assert.deepEqual(plain(sums), plain(ClusterSums.of(claims.values())), `after step ${step}`);
      }
      // Every active claim leaves: nothing is left over (no drift, no empty entries kept).
      for (const [id, c] of claims) {
        sums.change(c, undefined);
        claims.delete(id);
      }
      assert.deepEqual(plain(sums), plain(new ClusterSums()));
    });
  }

  it('lets a cycle on kept sums decide what a cycle summing every claim decides', () => {
    const random = seeded(7);
    const claims = new Map<string, ClaimRecord>();
    for (let step = 0; step < 400; step++) {
      const { id, after } = randomStep(random, claims, step);
      if (after) claims.set(id, after);
      else claims.delete(id);
    }
    const nodes = ['n1', 'n2', 'n3'].map((n) => node(n, cpus(16, 32), { lastSeen: 1000 }));
    const base: CycleInput = {
      now: 1000,
      claims: claims.values(),
      nodes,
      partitions: new Map([
        ['gpu', { name: 'gpu', tier: 2, allowPreemptible: true, maxResources: cpus(8), batchPartition: '', minNodes: 0, maxNodes: 0 }],
      ]),
      defaultPartition: 'default',
      quotas: new Map([['a', { maxInstances: 0, maxResources: cpus(20, 100) }]]),
      qos: new Map([['high', 10]]),
      weights: DEFAULT_WEIGHTS,
      fairShare: (p) => (p === 'a' ? 0.2 : 0.6),
      placement: { strategy: 'spread', imageWeight: 0, maxScored: 0 },
      downAfterMs: 15_000,
      maxPlacements: 1000,
      seed: 3,
    };
    const summing = runCycle(base);
    const kept = runCycle({ ...base, claims: claims.values(), sums: ClusterSums.of(claims.values()), lookup: (id) => claims.get(id) });
    const view = (r: ReturnType<typeof runCycle>) => ({
      placements: r.placements.map((p) => [p.claim.id, p.node]),
      preemptions: r.preemptions.map((p) => [p.claim.id, p.node, p.victims]),
      pending: [...r.pending].sort(([a], [b]) => (a < b ? -1 : 1)),
    });
    assert.ok(summing.placements.length > 0, 'the sample places something');
    assert.deepEqual(view(kept), view(summing));
  });
});

describe('pending queue (PendingQueue)', () => {
  const weights = DEFAULT_WEIGHTS;
  const factors = (c: ClaimRecord): ClassFactors => ({
    fairShare: c.project === 'a' ? 0.9 : c.project === 'b' ? 0.5 : 0.1,
    jobSize: 1 - c.res.cpu / 100_000,
    partition: c.partition === 'gpu' ? 1 : 0.5,
    qos: c.qos === 'high' ? 1 : 0,
  });
  /** The order a full sort of every pending claim by its recalculated priority gives. */
  const fullSort = (pending: ClaimRecord[], at: number) => {
    const prio = new Map(
      pending.map((c) => [
        c.id,
        weigh({ ...factors(c), age: Math.min(Math.max(at - c.submitTime, 0), weights.maxAgeMs) / weights.maxAgeMs }, weights),
      ]),
    );
    return queueOrder(pending, prio).map((c) => c.id);
  };

  for (const seed of [5, 6, 7]) {
    it(`walks in the order of a full sort by priority after random changes (seed ${seed})`, () => {
      const random = seeded(seed);
      const claims = new Map<string, ClaimRecord>();
      const queue = new PendingQueue(weights, 'default');
      let at = 0;
      queue.recalculate(at, factors);
      for (let step = 0; step < 2000; step++) {
        const { id, after } = randomStep(random, claims, step);
        if (after) claims.set(id, after);
        else claims.delete(id);
        queue.change(id, after, after !== undefined && isPending(after));
        if (step % 200 === 0) {
          at = step * 3;
          queue.recalculate(at, factors);
        }
        if (step % 50 === 0 || step === 1999) {
          const pending = [...claims.values()].filter(isPending);
          const expected = fullSort(pending, at);
          assert.deepEqual(queue.order(), expected, `after step ${step}`);
          assert.equal(queue.size, pending.length);
        }
      }
    });
  }

  it('drops the entries of claims that left behind a head that stays, and takes them back when requeued', () => {
    const queue = new PendingQueue(weights, 'default');
    queue.recalculate(1000, factors);
    const cs = Array.from({ length: 200 }, (_, i) => claim(`c${i}`, { submitTime: i }));
    for (const c of cs) queue.change(c.id, c, true);
    // c0 stays (it fits nowhere, say); c1..c150 are placed.
    for (const c of cs.slice(1, 151)) queue.change(c.id, { ...c, state: ClaimState.PLACED }, false);
    const expected = ['c0', ...cs.slice(151).map((c) => c.id)];
    assert.deepEqual(queue.order(), expected);
    assert.deepEqual(queue.order(), expected, 'after compaction');
    queue.change('c5', { ...cs[5]!, state: ClaimState.REQUEUED }, true);
    queue.change('c150', { ...cs[150]!, state: ClaimState.REQUEUED }, true);
    assert.deepEqual(queue.order(), ['c0', 'c5', 'c150', ...cs.slice(151).map((c) => c.id)]);
  });

  it('stops where the caller stops and keeps the rest for the next walk', () => {
    const queue = new PendingQueue(weights, 'default');
    queue.recalculate(100, factors);
    const cs = Array.from({ length: 10 }, (_, i) => claim(`c${i}`, { project: i % 2 ? 'a' : 'c', submitTime: i }));
    for (const c of cs) queue.change(c.id, c, true);
    const first: string[] = [];
    for (const c of queue.walk()) {
      first.push(c.id);
      if (first.length === 3) break;
    }
    assert.deepEqual(first, ['c1', 'c3', 'c5']);
    // Two of them were placed: the next walk starts with the third.
    queue.change('c1', { ...cs[1]!, state: ClaimState.PLACED }, false);
    queue.change('c3', { ...cs[3]!, state: ClaimState.PLACED }, false);
    assert.deepEqual(queue.order(), ['c5', 'c7', 'c9', 'c0', 'c2', 'c4', 'c6', 'c8']);
    // A requeued claim goes back to its place (same submit time and class).
    queue.change('c1', { ...cs[1]!, state: ClaimState.REQUEUED }, true);
    assert.deepEqual(queue.order().slice(0, 3), ['c1', 'c5', 'c7']);
    // A claim holding a reservation goes first.
    queue.change('c8', { ...cs[8]!, reservedNode: 'n' }, true);
    assert.deepEqual(queue.order().slice(0, 2), ['c8', 'c1']);
    assert.ok(!isActive(queue.pending.get('c8')!));
  });
});

describe('free-room index (FreeIndex)', () => {
  it('lets chooseNode weigh the same nodes as the plain scan while placements fill the nodes', () => {
    const random = seeded(11);
    const views: NodeView[] = Array.from({ length: 300 }, (_, i) => ({
      rec: node(
        `n${String(i).padStart(3, '0')}`,
        cpus(1 + Math.floor(random() * 16), 1 + Math.floor(random() * 64), random() < 0.1 ? 2 : 0),
        { images: random() < 0.2 ? ['img:1'] : [] },
      ),
      used: { cpu: 0, mem: 0, gpus: 0 },
      devUsed: {},
      groups: new Map(),
      spot: [],
      held: random() < 0.05,
    }));
    // The plain scan gets its own copy of the nodes, filled by the same placements.
    const plain: NodeView[] = views.map((v) => ({ ...v, groups: new Map() }));
    const index = new FreeIndex(views);
    let placed = 0;
    let refused = 0;
    for (let i = 0; i < 3000; i++) {
      const c = claim(`c${i}`, {
        res: cpus(0.5 * (1 + Math.floor(random() * 8)), 0.5 * (1 + Math.floor(random() * 16)), random() < 0.05 ? 1 : 0),
        group: random() < 0.1 ? 'g' : '',
      });
      const options = {
        strategy: random() < 0.5 ? ('pack' as const) : ('spread' as const),
        imageWeight: 0.3,
        maxScored: random() < 0.5 ? 0 : 1 + Math.floor(random() * 20),
      };
      const start = Math.floor(random() * views.length);
      const a = chooseNode(c, views, options, start, index);
      const b = chooseNode(c, plain, options, start);
      assert.equal(a.node?.rec.name, b.node?.rec.name, `claim ${i}`);
      if (!a.node) {
        assert.equal(a.possible === 0, b.possible === 0, `claim ${i}: possible`);
        refused++;
        continue;
      }
      takeRoom(a.node, c);
      index.update(a.node);
      takeRoom(plain.find((v) => v.rec.name === a.node!.rec.name)!, c);
      placed++;
    }
    assert.ok(placed > 500 && refused > 500, `both paths exercised (${placed} placed, ${refused} refused)`);
  });
});
