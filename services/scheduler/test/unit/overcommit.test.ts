// Overcommit: allocation ratios enlarge a node's room for placement only; quotas, partition
// limits and fair share keep charging what the claims requested.
import { strict as assert } from 'node:assert';
import { ClaimState, PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { runCycle, type PartitionDef } from '../../src/domain/cycle';
import { accrueUsage, billing } from '../../src/domain/fairshare';
import type { ClaimRecord } from '../../src/domain/model';
import { ratioProblem, resolveRatios, withRatios } from '../../src/domain/overcommit';
import { ClusterSums } from '../../src/domain/state';
import { parseSettings } from '../../src/config';
import { claim, cpus, cycleInput as input, node } from './helpers';

/** `n` claims of one CPU and 1 GiB each, submitted in order. */
const oneCpuClaims = (n: number, over: Partial<ClaimRecord> = {}) =>
  Array.from({ length: n }, (_, i) => claim(`c${i}`, { submitTime: i, ...over }));

describe('overcommit (allocation ratios)', () => {
  it('resolves each ratio from the first layer that sets it, else 1', () => {
    assert.deepEqual(resolveRatios(undefined, undefined), { cpu: 1, mem: 1 });
    assert.deepEqual(resolveRatios({ cpu: 8, mem: 0 }, { cpu: 4, mem: 1.5 }), { cpu: 8, mem: 1.5 }, 'the node wins, memory inherited');
    assert.deepEqual(resolveRatios(undefined, { cpu: 0, mem: 0 }, { cpu: 16, mem: 0 }), { cpu: 16, mem: 1 });
  });

  it('accepts ratios from 1 to 64 (0: not set, where allowed) and names what it refuses', () => {
    for (const ok of [1, 1.5, 16, 64]) assert.equal(ratioProblem(ok, false), '', String(ok));
    assert.equal(ratioProblem(0, true), '');
    for (const bad of [0, 0.5, -1, 64.5, Number.NaN, Number.POSITIVE_INFINITY]) assert.match(ratioProblem(bad, false), /from 1 to 64/);
    assert.match(ratioProblem(0.5, true), /0: not set/);
  });

  it('keeps capacity as hard room without ratios (today’s behaviour)', () => {
    const n = node('n1', cpus(2, 8));
    assert.equal(withRatios(n, { cpu: 1, mem: 1 }), n, 'the same record: nothing changes');
    const r = runCycle(input(oneCpuClaims(3), [n]));
    assert.equal(r.placements.length, 2);
    // The claims placed before it took the room (PRIORITY: the node had room when the cycle began).
    assert.equal(r.pending.get('c2')?.reason, PendingReason.PRIORITY);
  });

  it('places up to capacity × ratio on a node, CPU and memory each by its own ratio', () => {
    const n = withRatios(node('n1', cpus(2, 8)), { cpu: 4, mem: 1 });
    assert.deepEqual(n.capacity, cpus(8, 8));
    const r = runCycle(input(oneCpuClaims(9), [n]));
    assert.equal(r.placements.length, 8, '2 cores × 4');
    assert.equal(r.pending.get('c8')?.reason, PendingReason.PRIORITY);
    // Memory was not overcommitted: 1 CPU and 3 GiB claims stop at 8 GiB.
    const big = Array.from({ length: 4 }, (_, i) => claim(`m${i}`, { res: cpus(1, 3), submitTime: i }));
    assert.equal(runCycle(input(big, [n])).placements.length, 2);
  });

  it('never gives one instance more than the node has', () => {
    const n = withRatios(node('n1', cpus(2, 8)), { cpu: 16, mem: 4 });
    const r = runCycle(input([claim('big', { res: cpus(3, 1) })], [n]));
    assert.equal(r.placements.length, 0);
    assert.equal(r.pending.get('big')?.reason, PendingReason.NO_MATCHING_NODE);
  });

  it('charges quotas, partition limits and fair share with what was requested, not the node’s ratio', () => {
    const n = withRatios(node('n1', cpus(2, 16), { partition: 'web' }), { cpu: 4, mem: 1 });
    const quotas = new Map([['p', { maxInstances: 0, maxResources: { cpu: 5000, mem: 0, gpus: 0 } }]]);
    const byQuota = runCycle(input(oneCpuClaims(8, { partition: 'web' }), [n], { quotas }));
    assert.equal(byQuota.placements.length, 5, 'the quota of 5 CPUs holds 5 one-CPU claims');
    assert.equal(byQuota.pending.get('c5')?.reason, PendingReason.QUOTA_EXCEEDED);

    const web: PartitionDef = {
      name: 'web',
      tier: 1,
      allowPreemptible: true,
      maxResources: { cpu: 6000, mem: 0, gpus: 0 },
      batchPartition: '',
      minNodes: 0,
      maxNodes: 0,
    };
    const byPartition = runCycle(input(oneCpuClaims(8, { partition: 'web' }), [n], { partitions: new Map([['web', web]]) }));
    assert.equal(byPartition.placements.length, 6);
    assert.equal(byPartition.pending.get('c6')?.reason, PendingReason.PARTITION_FULL);

    // Running, the 8 instances on 2 cores are charged 8 CPUs: the project's use and the rate
    // its usage grows by are what was asked for.
    const running = oneCpuClaims(8).map((c) => ({ ...c, state: ClaimState.RUNNING, node: 'n1' }));
    const sums = ClusterSums.of(running);
    assert.deepEqual(sums.projectUse('p').res, cpus(8, 8));
    const weights = { cpu: 1, memGiB: 0, gpu: 0 };
    const usage = new Map<string, number>();
    accrueUsage(
      usage,
      1000,
      Number.POSITIVE_INFINITY,
      [...sums.users.values()].map((u) => ({ ...u, rate: billing(u.res, weights) })),
    );
    assert.equal(Math.round([...usage.values()].reduce((a, b) => a + b, 0)), 8, '8 CPU-seconds in one second');
  });

  it('reads partition ratios from the settings and names a bad one', () => {
    const s = parseSettings({ partitions: [{ name: 'web', cpu_allocation_ratio: 4, memory_allocation_ratio: 1.5 }, { name: 'hpc' }] }, 'f');
    assert.deepEqual(
      s.partitions.map((p) => p.ratios),
      [
        { cpu: 4, mem: 1.5 },
        { cpu: 0, mem: 0 },
      ],
    );
    assert.throws(
      () => parseSettings({ partitions: [{ name: 'web', cpu_allocation_ratio: 0.5 }] }, 'f'),
      /partitions\[0\]\.cpu_allocation_ratio/,
    );
    assert.throws(() => parseSettings({ partitions: [{ name: 'web', memory_allocation_ratio: 'lots' }] }, 'f'), /memory_allocation_ratio/);
    assert.throws(() => parseSettings({ partitions: [{ name: 'web', cpu_allocation_ratio: 65 }] }, 'f'), /from 1 to 64/);
  });
});
