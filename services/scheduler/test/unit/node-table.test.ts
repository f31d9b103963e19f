// The node views kept from cycle to cycle (NodeTable) against views made anew for each cycle:
// over seeded random sequences of claim changes, node records replaced, nodes going down,
// joining, leaving and changing partition, a cycle on the kept table decides what a cycle on
// new views decides, and its own decisions (held room, reservations) do not leak into the next.
import { strict as assert } from 'node:assert';
import { ClaimState } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { runCycle, type CycleInput, type CycleResult, type PartitionDef } from '../../src/domain/cycle';
import type { ClaimRecord, NodeRecord, Res } from '../../src/domain/model';
import { NodeTable } from '../../src/domain/node-table';
import { DEFAULT_WEIGHTS } from '../../src/domain/priority';
import { ClusterSums } from '../../src/domain/state';
import { cpus, node } from './helpers';
import { randomStep, seeded } from './random';

const decisions = (r: CycleResult) => ({
  placements: r.placements.map((p) => [p.claim.id, p.node]),
  preemptions: r.preemptions.map((p) => [p.claim.id, p.node, p.victims]),
  pending: [...r.pending].sort(([a], [b]) => (a < b ? -1 : 1)),
});

/** A partition with a limit, so what each partition holds (kept by the table too) decides. */
const partition = (name: string, maxResources: Res): [string, PartitionDef] => [
  name,
  { name, tier: 1, allowPreemptible: true, maxResources, batchPartition: '', minNodes: 0, maxNodes: 0 },
];

/** A random change to the nodes: a new record (heartbeat), down or up, a move, one joins or leaves. */
function changeNodes(random: () => number, nodes: NodeRecord[], round: number): void {
  const i = Math.floor(random() * nodes.length);
  const n = nodes[i]!;
  const r = random();
  if (r < 0.3) nodes[i] = { ...n, reported: cpus(Math.floor(random() * 13)) };
  else if (r < 0.4) nodes[i] = { ...n, lastSeen: n.lastSeen === 1000 ? -50_000 : 1000 };
  else if (r < 0.45) nodes[i] = { ...n, partition: n.partition ? '' : 'gpu' };
  else if (r < 0.5) nodes.push(node(`x${round}`, cpus(8, 16), { lastSeen: 1000 }));
  else if (r < 0.55 && nodes.length > 2) nodes.splice(i, 1);
}

describe('node views kept between cycles (NodeTable)', () => {
  for (const seed of [1, 2, 3]) {
    it(`decide as views made anew over 80 cycles of random changes (seed ${seed})`, () => {
      const random = seeded(seed);
      const claims = new Map<string, ClaimRecord>();
      const sums = new ClusterSums();
      const set = (id: string, after: ClaimRecord | undefined) => {
        sums.change(claims.get(id), after);
        if (after) claims.set(id, after);
        else claims.delete(id);
      };
      const nodes = ['n1', 'n2', 'n3', 'n4'].map((n, i) => node(n, cpus(12, 24), { lastSeen: 1000, partition: i === 3 ? 'gpu' : '' }));
      const table = new NodeTable('default');
      let placed = 0;
      let step = 0;
      for (let round = 0; round < 80; round++) {
        for (let k = 0; k < 15; k++, step++) {
          const { id, after } = randomStep(random, claims, step);
          set(id, after);
        }
        if (random() < 0.6) changeNodes(random, nodes, round);
        const input = (): CycleInput => ({
          now: 1000,
          claims: claims.values(),
          nodes: [...nodes],
          // Limits, so what each partition holds (kept by the table too) decides.
          partitions: new Map([partition('gpu', cpus(10)), partition('default', cpus(34, 200))]),
          defaultPartition: 'default',
          quotas: new Map(),
          qos: new Map([['high', 10]]),
          weights: DEFAULT_WEIGHTS,
          fairShare: (p) => (p === 'a' ? 0.2 : 0.6),
          placement: { strategy: 'spread', imageWeight: 0, maxScored: 0 },
          downAfterMs: 15_000,
          maxPlacements: 6,
          seed: round,
          sums,
          lookup: (id) => claims.get(id),
        });
        const kept = runCycle({ ...input(), nodeTable: table });
        const fresh = runCycle(input());
        assert.deepEqual(decisions(kept), decisions(fresh), `round ${round}`);
        // What the cycle decided is recorded, as the placement writer does.
        for (const p of kept.placements) set(p.claim.id, { ...p.claim, state: ClaimState.PLACED, node: p.node });
        for (const p of kept.preemptions) {
          set(p.claim.id, { ...claims.get(p.claim.id)!, reservedNode: p.node, victims: p.victims });
          for (const v of p.victims) set(v, { ...claims.get(v)!, preemptedBy: p.claim.id });
        }
        placed += kept.placements.length;
      }
      assert.ok(placed > 20, `the sample places enough (${placed})`);
    });
  }
});
