// Placement, preemption choices and the pending reasons of one cycle.
import { strict as assert } from 'node:assert';
import { Backend, PortProtocol } from '@lapis/proto/lapis/common/v1/common';
import { ClaimState, PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { runCycle } from '../../src/domain/cycle';
import type { ClaimRecord, NodeRecord } from '../../src/domain/model';
import { chooseNode, type NodeView, type Victim } from '../../src/domain/placement';
import { choosePreemption } from '../../src/domain/preemption';
import { claim, cpus, cycleInput as input, DeviceKind, node } from './helpers';

const view = (rec: NodeRecord, over: Partial<NodeView> = {}): NodeView => ({
  rec,
  used: { cpu: 0, mem: 0, gpus: 0 },
  devUsed: {},
  groups: new Map(),
  spot: [],
  held: false,
  ...over,
});
const victim = (id: string, cpu: number, placeTime: number, priority = 0.1): Victim => ({
  id,
  res: cpus(cpu),
  devices: [],
  placeTime,
  priority,
  group: '',
});

describe('placement', () => {
  it('spreads or packs', () => {
    const a = view(node('a', cpus(8)), { used: cpus(4) });
    const b = view(node('b', cpus(8)), { used: cpus(1) });
    const c = claim('c');
    assert.equal(chooseNode(c, [a, b], { strategy: 'spread', imageWeight: 0, maxScored: 0 }).node?.rec.name, 'b');
    assert.equal(chooseNode(c, [a, b], { strategy: 'pack', imageWeight: 0, maxScored: 0 }).node?.rec.name, 'a');
  });

  it('prefers a node with the image cached', () => {
    const a = view(node('a', cpus(8)));
    const b = view(node('b', cpus(8), { images: ['img:1'] }));
    assert.equal(chooseNode(claim('c'), [a, b], { strategy: 'spread', imageWeight: 0.3, maxScored: 0 }).node?.rec.name, 'b');
  });

  it('filters on GPUs, devices, backend and anti-affinity', () => {
    const plain = view(node('plain', cpus(8)));
    const gpu = view(node('gpu', cpus(8, 8, 2)));
    const ib = view(node('ib', cpus(8), { freeDevices: { [DeviceKind.INFINIBAND]: 1 }, totalDevices: { [DeviceKind.INFINIBAND]: 1 } }));
    const k8s = view(node('k8s', cpus(8), { backend: Backend.KUBERNETES }));
    const all = [plain, gpu, ib, k8s];
    const opts = { strategy: 'spread' as const, imageWeight: 0, maxScored: 0 };
    assert.equal(chooseNode(claim('g', { res: cpus(1, 1, 1) }), all, opts).node?.rec.name, 'gpu');
    assert.equal(chooseNode(claim('i', { devices: [{ kind: DeviceKind.INFINIBAND, count: 1 }] }), all, opts).node?.rec.name, 'ib');
    assert.equal(chooseNode(claim('k', { backend: Backend.KUBERNETES }), all, opts).node?.rec.name, 'k8s');
    const grouped = all.map((v) => (v === k8s ? v : { ...v, groups: new Map([['db', 1]]) }));
    assert.equal(chooseNode(claim('a', { group: 'db' }), grouped, opts).node?.rec.name, 'k8s');
  });
});

describe('preemption choices', () => {
  // One node of 4 CPUs, full of spot instances.
  const full = (spot: Victim[]) => view(node('n', cpus(4)), { used: cpus(4), spot });

  it('takes the fewest instances first', () => {
    // Needs 2 CPUs: {v1 (2 CPUs)} frees it with one instance; {v2, v3} would need two,
    // although they started more recently.
    const plan = choosePreemption(
      claim('c', { res: cpus(2) }),
      [full([victim('v1', 2, 100), victim('v2', 1, 200), victim('v3', 1, 300)])],
      0.9,
    );
    assert.deepEqual(
      plan?.victims.map((v) => v.id),
      ['v1'],
    );
  });

  it('then the most recently started', () => {
    const plan = choosePreemption(
      claim('c', { res: cpus(1) }),
      [full([victim('v1', 2, 100), victim('v2', 1, 200), victim('v3', 1, 300)])],
      0.9,
    );
    assert.deepEqual(
      plan?.victims.map((v) => v.id),
      ['v3'],
    );
  });

  it('then the lowest priority', () => {
    const plan = choosePreemption(
      claim('c', { res: cpus(1) }),
      [full([victim('hi', 1, 300, 0.4), victim('lo', 1, 300, 0.2), victim('x', 2, 300, 0.3)])],
      0.9,
    );
    assert.deepEqual(
      plan?.victims.map((v) => v.id),
      ['lo'],
    );
  });

  it('compares across nodes, and takes only victims below a priority when one is given', () => {
    const n1 = view(node('n1', cpus(4)), { used: cpus(4), spot: [victim('old', 1, 100)] });
    const n2 = view(node('n2', cpus(4)), { used: cpus(4), spot: [victim('new', 1, 500)] });
    assert.deepEqual(
      choosePreemption(claim('c', { res: cpus(1) }), [n1, n2], 0.9)?.victims.map((v) => v.id),
      ['new'],
    );
    assert.equal(choosePreemption(claim('c', { res: cpus(1) }), [n1, n2], 0.05), undefined);
  });

  it('uses free room together with the victims', () => {
    const n = view(node('n', cpus(4)), { used: cpus(3), spot: [victim('a', 1, 100), victim('b', 2, 200)] });
    // Needs 2 with 1 free: a alone gives 1 + 1 = 2, b alone 1 + 2 = 3; both are one instance,
    // b started later -> b
    assert.deepEqual(
      choosePreemption(claim('c', { res: cpus(2) }), [n], 0.9)?.victims.map((v) => v.id),
      ['b'],
    );
  });
});

describe('a scheduling cycle', () => {
  it('places by priority and says why the rest waits', () => {
    const claims = [claim('low', { res: cpus(2), project: 'a' }), claim('high', { res: cpus(2), project: 'b' })];
    const result = runCycle(input(claims, [node('n', cpus(2), { lastSeen: 1000 })], { fairShare: (p) => (p === 'b' ? 1 : 0.1) }));
    assert.deepEqual(
      result.placements.map((p) => p.claim.id),
      ['high'],
    );
    assert.equal(result.pending.get('low')?.reason, PendingReason.PRIORITY);
  });

  it('reports Resources, NoMatchingNode, QuotaExceeded and PartitionFull', () => {
    const running = claim('r', { state: ClaimState.RUNNING, node: 'n', project: 'q', res: cpus(1) });
    const claims = [
      running,
      claim('big', { res: cpus(4) }),
      claim('huge', { res: cpus(64) }),
      claim('quota', { project: 'q' }),
      claim('part', { partition: 'small' }),
    ];
    const result = runCycle(
      input(claims, [node('n', cpus(4), { lastSeen: 1000 }), node('s', cpus(4), { lastSeen: 1000, partition: 'small' })], {
        quotas: new Map([['q', { maxInstances: 1, maxResources: { cpu: 0, mem: 0, gpus: 0 } }]]),
        partitions: new Map([
          [
            'small',
            {
              name: 'small',
              tier: 1,
              allowPreemptible: true,
              maxResources: { cpu: 500, mem: 0, gpus: 0 },
              batchPartition: '',
              minNodes: 0,
              maxNodes: 0,
            },
          ],
        ]),
      }),
    );
    assert.equal(result.pending.get('big')?.reason, PendingReason.RESOURCES);
    assert.equal(result.pending.get('huge')?.reason, PendingReason.NO_MATCHING_NODE);
    assert.equal(result.pending.get('quota')?.reason, PendingReason.QUOTA_EXCEEDED);
    assert.equal(result.pending.get('part')?.reason, PendingReason.PARTITION_FULL);
  });

  it('keeps a claim waiting while every node with room has its host port taken (a running instance, or this cycle)', () => {
    const withPort = (id: string, hostPort: number, over: Partial<ClaimRecord> = {}) => {
      const c = claim(id, over);
      return { ...c, spec: { ...c.spec, ports: [{ containerPort: 80, hostPort, protocol: PortProtocol.TCP }] } };
    };
    const running = withPort('running', 30_080, { state: ClaimState.RUNNING, node: 'a' });
    const claims = [
      running,
      withPort('same', 30_080, { submitTime: 1 }),
      withPort('other', 30_081, { submitTime: 2 }),
      withPort('picked', 0, { submitTime: 3 }),
    ];
    const one = runCycle(input(claims, [node('a', cpus(8), { lastSeen: 1000 })]));
    assert.deepEqual(
      one.placements.map((p) => p.claim.id).sort(),
      ['other', 'picked'],
      'another port, or one the node picks, fits beside it',
    );
    assert.equal(one.pending.get('same')?.reason, PendingReason.RESOURCES);
    assert.match(one.pending.get('same')!.detail, /host port 30080\/tcp is held on every node/);
    // Two new claims for one port and two nodes: one each, whatever the strategy.
    const two = runCycle(
      input(
        [withPort('x', 30_090), withPort('y', 30_090, { submitTime: 1 })],
        [node('a', cpus(8), { lastSeen: 1000 }), node('b', cpus(8), { lastSeen: 1000 })],
        { placement: { strategy: 'pack', imageWeight: 0, maxScored: 0 } },
      ),
    );
    assert.deepEqual(two.placements.map((p) => p.node).sort(), ['a', 'b']);
    // Once the running instance is gone the waiting claim goes there.
    const after = runCycle(
      input([{ ...running, state: ClaimState.ENDED }, withPort('same', 30_080)], [node('a', cpus(8), { lastSeen: 1000 })]),
    );
    assert.deepEqual(
      after.placements.map((p) => p.claim.id),
      ['same'],
    );
  });

  it('ignores nodes silent for three heartbeats', () => {
    const result = runCycle(input([claim('c')], [node('n', cpus(4), { lastSeen: 0 })], { now: 20_000 }));
    assert.equal(result.placements.length, 0);
    assert.equal(result.pending.get('c')?.reason, PendingReason.NO_MATCHING_NODE);
  });

  it('preempts spot instances for a normal claim, then holds the room for it', () => {
    const spot = claim('spot', { preemptible: true, state: ClaimState.RUNNING, node: 'n', res: cpus(4), placeTime: 10 });
    const normal = claim('normal', { res: cpus(2) });
    const first = runCycle(
      input([spot, normal, claim('other', { res: cpus(2), submitTime: 5 })], [node('n', cpus(4), { lastSeen: 1000 })], {
        fairShare: () => 0.5,
      }),
    );
    assert.deepEqual(
      first.preemptions.map((p) => [p.claim.id, p.node, p.victims]),
      [['normal', 'n', ['spot']]],
    );
    assert.equal(first.pending.get('normal')?.reason, PendingReason.PREEMPTION);
    // A spot claim never preempts; the other normal one finds the node held.
    assert.equal(first.pending.get('other')?.reason === PendingReason.PREEMPTION, false);
    // The notice was not recorded (the victim changed meanwhile): the next cycle tells it again
    // and keeps the room held.
    const untold = runCycle(
      input(
        [spot, { ...normal, reservedNode: 'n', victims: ['spot'] }, claim('later', { res: cpus(1), submitTime: 9 })],
        [node('n', cpus(4), { lastSeen: 1000 })],
      ),
    );
    assert.deepEqual(
      untold.preemptions.map((p) => [p.claim.id, p.victims]),
      [['normal', ['spot']]],
    );
    assert.equal(untold.placements.length, 0);
    // The spot instance left: the claim goes where it reserved room.
    const waiting = { ...normal, reservedNode: 'n', victims: ['spot'] };
    const second = runCycle(input([waiting], [node('n', cpus(4), { lastSeen: 1000 })]));
    assert.deepEqual(
      second.placements.map((p) => [p.claim.id, p.node]),
      [['normal', 'n']],
    );
  });

  it('keeps spot claims out of partitions that refuse them', () => {
    const result = runCycle(
      input([claim('s', { preemptible: true })], [node('n', cpus(4), { lastSeen: 1000 })], {
        partitions: new Map([
          [
            'default',
            {
              name: 'default',
              tier: 1,
              allowPreemptible: false,
              maxResources: { cpu: 0, mem: 0, gpus: 0 },
              batchPartition: '',
              minNodes: 0,
              maxNodes: 0,
            },
          ],
        ]),
      }),
    );
    assert.equal(result.pending.get('s')?.reason, PendingReason.NO_MATCHING_NODE);
  });
});
