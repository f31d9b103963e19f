import { strict as assert } from 'node:assert';
import { decide, type LapisClaimOnNode, type Observation, type Policy, type SlurmNode } from '../src/director/domain.js';
import { parseNodes, parsePendingJobNodes } from '../src/director/slurm.js';

const POLICY: Policy = {
  cloudPartition: 'cloud',
  slurmSidePartition: 'slurm-batch',
  batchPartition: 'batch',
  slurmMin: 0,
  slurmMax: 0,
  maxInTransit: 1,
  preempt: false,
};

const node = (name: string, state = 'IDLE', o: Partial<SlurmNode> = {}): SlurmNode => {
  const [base = 'IDLE', ...flags] = state.split('+');
  return { name, state: base, flags, reason: '', cpuAlloc: base === 'IDLE' ? 0 : 1, partitions: ['batch'], ...o };
};
const lapisDrained = (name: string, state = 'IDLE+DRAIN', cpuAlloc = 0): SlurmNode =>
  node(name, state, { reason: 'lapis: moving to Lapis partition cloud', cpuAlloc });
const claim = (id: string, preemptible = false): LapisClaimOnNode => ({ id, project: 'physics', preemptible });

function obs(o: {
  slurm: SlurmNode[];
  partitions: Record<string, string>;
  claims?: Record<string, LapisClaimOnNode[]>;
  lp?: number;
  sp?: number;
  cloudMin?: number;
  cloudMax?: number;
  down?: string[];
}): Observation {
  return {
    slurm: { nodes: o.slurm, pendingJobNodes: o.sp ?? 0 },
    lapis: {
      partitionOf: new Map(Object.entries(o.partitions)),
      downNodes: new Set(o.down ?? []),
      claimsOn: new Map(Object.entries(o.claims ?? {})),
      pendingClaims: o.lp ?? 0,
      cloudMin: o.cloudMin ?? 0,
      cloudMax: o.cloudMax ?? 0,
    },
  };
}

const kinds = (d: ReturnType<typeof decide>) =>
  d.actions.map((a) => `${a.kind} ${a.node}${a.kind === 'to-slurm' ? (a.drain ? ' drain' : '') : ''}`);

describe('partition director: decisions (pure)', function () {
  it('Lapis claims waiting: drains an idle Slurm node, never a busy one', function () {
    const d = decide(
      obs({
        slurm: [node('n1', 'ALLOCATED'), node('n2', 'MIXED'), node('n3')],
        partitions: { n1: 'slurm-batch', n2: 'slurm-batch', n3: 'slurm-batch' },
        lp: 2,
      }),
      POLICY,
    );
    assert.equal(d.want, 'cloud');
    assert.deepEqual(kinds(d), ['drain n3']);
    assert.match((d.actions[0] as { reason: string }).reason, /^lapis: /);
    const busy = decide(
      obs({ slurm: [node('n1', 'ALLOCATED'), node('n2', 'MIXED')], partitions: { n1: 'slurm-batch', n2: 'slurm-batch' }, lp: 2 }),
      POLICY,
    );
    assert.deepEqual(kinds(busy), []);
    assert.match(busy.notes.join('\n'), /no shared node is idle in Slurm/);
  });

  it('a node drained for Lapis moves into the cloud partition once Slurm reports it drained and idle', function () {
    const ready = decide(
      obs({ slurm: [lapisDrained('n1'), node('n2')], partitions: { n1: 'slurm-batch', n2: 'slurm-batch' }, lp: 1 }),
      POLICY,
    );
    assert.deepEqual(kinds(ready), ['to-cloud n1']);
    const draining = decide(
      obs({ slurm: [lapisDrained('n1', 'MIXED+DRAIN', 1), node('n2')], partitions: { n1: 'slurm-batch', n2: 'slurm-batch' }, lp: 1 }),
      POLICY,
    );
    assert.deepEqual(kinds(draining), [], 'one node in transit at most: no second drain, no move of a draining node');
    assert.match(draining.notes.join('\n'), /n1 is draining in Slurm .*waiting for its jobs to end/);
    const full = decide(
      obs({ slurm: [lapisDrained('n1'), lapisDrained('n2')], partitions: { n1: 'slurm-batch', n2: 'cloud' }, lp: 1, cloudMax: 1 }),
      POLICY,
    );
    assert.deepEqual(kinds(full), ['resume n1'], 'the cloud is at its maximum (lowered meanwhile): back to Slurm');
    const completing = decide(
      obs({ slurm: [lapisDrained('n1', 'IDLE+COMPLETING+DRAIN')], partitions: { n1: 'slurm-batch' }, lp: 1 }),
      POLICY,
    );
    assert.deepEqual(kinds(completing), []);
  });

  it('Slurm jobs waiting: moves a cloud node with no instance back (MoveNode, then resume), never one with an instance', function () {
    const o = obs({
      slurm: [lapisDrained('n1'), lapisDrained('n2'), node('n3', 'ALLOCATED')],
      partitions: { n1: 'cloud', n2: 'cloud', n3: 'slurm-batch' },
      claims: { n1: [claim('c1')] },
      sp: 3,
    });
    const d = decide(o, POLICY);
    assert.equal(d.want, 'slurm');
    assert.deepEqual(kinds(d), ['to-slurm n2']);
    const allBusy = decide(obs({ slurm: [lapisDrained('n1')], partitions: { n1: 'cloud' }, claims: { n1: [claim('c1')] }, sp: 1 }), POLICY);
    assert.deepEqual(kinds(allBusy), []);
    assert.match(allBusy.notes.join('\n'), /every shared node in the cloud partition runs instances/);
  });

  it('demand on both sides: the side with more waiting gets the node; equal demand moves nothing', function () {
    const o = (lp: number, sp: number) =>
      obs({ slurm: [lapisDrained('n1'), node('n2')], partitions: { n1: 'cloud', n2: 'slurm-batch' }, lp, sp });
    assert.deepEqual(kinds(decide(o(3, 1), POLICY)), ['drain n2']);
    assert.deepEqual(kinds(decide(o(1, 3), POLICY)), ['to-slurm n1']);
    assert.deepEqual(kinds(decide(o(2, 2), POLICY)), []);
  });

  it('keeps within the per-side minimum and maximum sizes, and brings a side up to its minimum without demand', function () {
    const base = { slurm: [lapisDrained('n1'), node('n2'), node('n3')], partitions: { n1: 'cloud', n2: 'slurm-batch', n3: 'slurm-batch' } };
    assert.deepEqual(kinds(decide(obs({ ...base, lp: 5, cloudMax: 1 }), POLICY)), [], 'cloud at its maximum');
    assert.deepEqual(kinds(decide(obs({ ...base, lp: 5 }), { ...POLICY, slurmMin: 2 })), [], 'Slurm at its minimum');
    assert.deepEqual(kinds(decide(obs({ ...base, sp: 5, cloudMin: 1 }), POLICY)), [], 'cloud at its minimum');
    assert.deepEqual(kinds(decide(obs({ ...base, sp: 5 }), { ...POLICY, slurmMax: 2 })), [], 'Slurm at its maximum');
    const floor = decide(obs({ ...base, cloudMin: 2 }), POLICY);
    assert.equal(floor.want, 'cloud');
    assert.deepEqual(kinds(floor), ['drain n2']);
    const slurmFloor = decide(obs({ slurm: [lapisDrained('n1'), lapisDrained('n2')], partitions: { n1: 'cloud', n2: 'cloud' } }), {
      ...POLICY,
      slurmMin: 1,
    });
    assert.deepEqual(kinds(slurmFloor), ['to-slurm n1']);
  });

  it('moves at most maxInTransit nodes at once', function () {
    const o = obs({
      slurm: [node('n1'), node('n2'), node('n3')],
      partitions: { n1: 'slurm-batch', n2: 'slurm-batch', n3: 'slurm-batch' },
      lp: 9,
    });
    assert.deepEqual(kinds(decide(o, { ...POLICY, maxInTransit: 2 })), ['drain n1', 'drain n2']);
  });

  it('a node back from Lapis is resumed in Slurm only once no instance runs on it; preemptible ones are preempted by policy', function () {
    const o = (claims: LapisClaimOnNode[]) =>
      obs({ slurm: [lapisDrained('n1')], partitions: { n1: 'slurm-batch' }, claims: { n1: claims }, sp: 1 });
    assert.deepEqual(kinds(decide(o([]), POLICY)), ['resume n1']);
    assert.deepEqual(kinds(decide(o([claim('c1', true)]), POLICY)), []);
    assert.deepEqual(kinds(decide(o([claim('c1', true)]), { ...POLICY, preempt: true })), ['preempt n1']);
    assert.deepEqual(kinds(decide(o([claim('c1', true), claim('c2', false)]), { ...POLICY, preempt: true })), []);
  });

  it('with the preemption policy, a cloud node running only preemptible instances is moved with drain and preempted', function () {
    const o = obs({
      slurm: [lapisDrained('n1'), lapisDrained('n2')],
      partitions: { n1: 'cloud', n2: 'cloud' },
      claims: { n1: [claim('a', true)], n2: [claim('b', false)] },
      sp: 1,
    });
    assert.deepEqual(kinds(decide(o, POLICY)), []);
    assert.deepEqual(kinds(decide(o, { ...POLICY, preempt: true })), ['to-slurm n1 drain', 'preempt n1']);
  });

  it('never moves a node whose Lapis agent is down to Lapis; one drained for Lapis meanwhile goes back to Slurm', function () {
    const d = decide(
      obs({ slurm: [node('n1'), node('n2')], partitions: { n1: 'slurm-batch', n2: 'slurm-batch' }, lp: 1, down: ['n1'] }),
      POLICY,
    );
    assert.deepEqual(kinds(d), ['drain n2']);
    assert.match(d.notes.join('\n'), /n1 is idle in Slurm but its Lapis agent is down/);
    const allDown = decide(obs({ slurm: [node('n1')], partitions: { n1: 'slurm-batch' }, lp: 1, down: ['n1'] }), POLICY);
    assert.deepEqual(kinds(allDown), []);
    const drained = decide(obs({ slurm: [lapisDrained('n1')], partitions: { n1: 'slurm-batch' }, lp: 1, down: ['n1'] }), POLICY);
    assert.deepEqual(kinds(drained), ['resume n1']);
    assert.match(drained.notes.join('\n'), /its Lapis agent is down: resumed in Slurm/);
    const up = decide(obs({ slurm: [lapisDrained('n1')], partitions: { n1: 'slurm-batch' }, lp: 1 }), POLICY);
    assert.deepEqual(kinds(up), ['to-cloud n1'], 'the same node with its agent up moves');
  });

  it('no demand either way: a node drained for Lapis goes back to Slurm', function () {
    assert.deepEqual(kinds(decide(obs({ slurm: [lapisDrained('n1', 'MIXED+DRAIN', 1)], partitions: { n1: 'slurm-batch' } }), POLICY)), [
      'resume n1',
    ]);
  });

  it('repairs a cloud node Slurm has in service; leaves an admin drain and nodes outside the two partitions alone', function () {
    const d = decide(
      obs({
        slurm: [node('n1'), node('n2', 'IDLE+DRAIN', { reason: 'bad DIMM' }), node('n3'), node('n4', 'IDLE', { partitions: ['debug'] })],
        partitions: { n1: 'cloud', n2: 'slurm-batch', n3: 'other', n4: 'slurm-batch' },
        lp: 3,
      }),
      POLICY,
    );
    assert.deepEqual(kinds(d), ['drain n1']);
    assert.equal((d.actions[0] as { repair?: boolean }).repair, true);
    assert.deepEqual(
      d.shared.map((n) => `${n.name}:${n.side}`),
      ['n1:cloud', 'n2:slurm'],
    );
  });
});

describe('partition director: Slurm output parsing (pure)', function () {
  it('parses scontrol -o show node, the reason without its [user@time] suffix', function () {
    const text = [
      'NodeName=n1 Arch=x86_64 CoresPerSocket=1  CPUAlloc=0 CPUEfctv=1 CPUTot=1 CPULoad=0.85 NodeAddr=127.0.0.1 OS=Linux 6.18 #1 SMP PREEMPT_DYNAMIC @0  RealMemory=1000 State=IDLE+DRAIN ThreadsPerCore=1 Partitions=batch,debug  BootTime=2026-11-25T12:48:25 ExtSensorsTemp=n/s Reason=lapis: moving to Lapis partition cloud [root@2026-11-25T15:48:12]',
      'NodeName=n2 Arch=x86_64 CoresPerSocket=1  CPUAlloc=1 CPUEfctv=1 CPUTot=1 State=ALLOCATED ThreadsPerCore=1 Partitions=batch  ExtSensorsTemp=n/s',
      'NodeName=n3 CPUAlloc=0 State=DOWN*+NOT_RESPONDING Partitions=batch Reason=Not responding [slurm@2026-11-25T15:00:00]',
      '',
    ].join('\n');
    assert.deepEqual(parseNodes(text), [
      {
        name: 'n1',
        state: 'IDLE',
        flags: ['DRAIN'],
        reason: 'lapis: moving to Lapis partition cloud',
        cpuAlloc: 0,
        partitions: ['batch', 'debug'],
      },
      { name: 'n2', state: 'ALLOCATED', flags: [], reason: '', cpuAlloc: 1, partitions: ['batch'] },
      { name: 'n3', state: 'DOWN', flags: ['NOT_RESPONDING'], reason: 'Not responding', cpuAlloc: 0, partitions: ['batch'] },
    ]);
  });

  it('counts the nodes pending jobs ask for, not those of held jobs or jobs waiting for another job', function () {
    const text = [
      '12|1|Resources',
      '13|2|Priority',
      '14|1|Dependency',
      '15|1|JobHeldUser',
      '16|3|Nodes required for job are DOWN, DRAINED or reserved for jobs in higher priority partitions',
      '17|1|None',
      '',
    ].join('\n');
    // 1 + 2 + 3 + 1: the jobs waiting on resources, priority, down nodes or nothing in particular.
    assert.equal(parsePendingJobNodes(text), 7);
  });
});
