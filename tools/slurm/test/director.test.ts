// The partition director against a real Slurm (three slurmd on this host: dn1, dn2, dn3, one
// CPU each) and a real scheduler process; the Lapis side of the three nodes is their runtime's
// part of the contract, heartbeats on the real event stream (as the scheduler's own tests do),
// so claims are placed on them for real. Rounds are run one at a time in-process (each step
// asserted), then the lapis-director process itself finishes a move and stops on SIGTERM.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { call, createClient, EventBus } from '@lapis/platform';
import { natsUrl, spawnService, staticTokenFile, TEST_TOKENS, testLog, unique, until, type ServiceProcess } from '@lapis/platform/testing';
import { Backend, InstanceSpec, InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { Event } from '@lapis/proto/lapis/events/v1/events';
import { Node, NodeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import {
  ClaimState,
  PreemptionAction,
  type CancelClaimResponse,
  type Claim,
  type ListClaimsResponse,
  type ListNodeMovesResponse,
  type ListPartitionsResponse,
  type SubmitClaimResponse,
} from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import { run, startSlurm, waitFor, type SlurmCluster } from '@lapis/testenv';
import { connect, type NatsConnection } from 'nats';
import { Director, type RoundResult } from '../src/director/director.js';
import { LapisAdapter } from '../src/director/lapis.js';
import { parseNodes, SlurmAdapter } from '../src/director/slurm.js';

const SCHEDULER_MAIN = require.resolve('@lapis/scheduler/dist/src/main.js');
const DIRECTOR_MAIN = path.resolve(__dirname, '../src/director/main.js');
const LAPISCTL = require.resolve('@lapis/lapisctl/dist/src/main.js');
const FLAVORS = path.resolve(__dirname, '../../../../config/flavors.yaml');
const NODES = ['dn1', 'dn2', 'dn3'];

describe('partition director (real Slurm, real scheduler)', function () {
  let slurm: SlurmCluster | undefined;
  let scheduler: ServiceProcess | undefined;
  let bus: EventBus | undefined;
  let nc: NatsConnection | undefined;
  let heartbeats: NodeJS.Timeout | undefined;
  let client: SchedulerServiceClient;
  let director: Director;
  let lapis: LapisAdapter;
  let dir: string;
  const moved: Array<{ node: string; from: string; to: string; reason: string }> = [];

  const partitionOf = async (node: string): Promise<string> => {
    const r: ListPartitionsResponse = await call(client.listPartitions.bind(client), { pageSize: 100, pageToken: '' });
    return r.partitions.find((p) => p.nodes.includes(node))?.name ?? '';
  };
  const claims = async (states: ClaimState[], node = ''): Promise<Claim[]> => {
    const r: ListClaimsResponse = await call(client.listClaims.bind(client), {
      pageSize: 100,
      pageToken: '',
      project: '',
      states,
      partition: '',
      node,
      orderByPriority: false,
    });
    return r.claims;
  };
  const submit = async (preemptible = false): Promise<Claim> => {
    // m1.medium: 2 CPUs, 4 GiB, a whole node here.
    const r: SubmitClaimResponse = await call(client.submitClaim.bind(client), {
      spec: InstanceSpec.fromPartial({ image: 'lapis/busybox', flavor: 'm1.medium' }),
      preemptible,
      onPreemption: PreemptionAction.REQUEUE,
      partition: 'cloud',
      backend: 0,
      antiAffinityGroup: '',
      qos: '',
      requestId: '',
    });
    return r.claim!;
  };
  const slurmNode = async (name: string) => parseNodes((await slurm!.command('scontrol', ['-o', 'show', 'node', name])).stdout)[0]!;
  const steps = (r: RoundResult) => {
    assert.deepEqual(r.failed, [], 'no action failed');
    return r.done.map((a) => `${a.kind} ${a.node}`);
  };
  const sbatch = (args: string[]) => slurm!.sbatch('#!/bin/sh\nsleep 300\n', { args: ['-c', '1', '--mem=50M', ...args] });

  before(async function () {
    slurm = await startSlurm({ nodes: NODES, cpus: 1, realMemoryMb: 1000 });
    dir = fs.mkdtempSync(path.join(slurm.dir, 'director-'));
    const config = path.join(dir, 'scheduler.yaml');
    fs.writeFileSync(
      config,
      [
        'default_partition: default',
        'partitions:',
        '  - { name: default }',
        '  - { name: cloud, batch_partition: batch, min_nodes: 0, max_nodes: 2 }',
      ].join('\n'),
    );
    const prefix = unique('director').toLowerCase().replace(/_/g, '-');
    scheduler = await spawnService(
      'scheduler',
      SCHEDULER_MAIN,
      {
        LAPIS_NATS_URL: natsUrl(),
        LAPIS_STATIC_TOKENS_FILE: staticTokenFile(),
        LAPIS_FLAVORS_FILE: FLAVORS,
        LAPIS_SCHEDULER_CONFIG_FILE: config,
        LAPIS_SCHEDULER_BUCKET_PREFIX: prefix,
        LAPIS_SCHEDULER_CONSUMER_PREFIX: prefix,
        LAPIS_SCHEDULER_CYCLE_MS: '200',
        LAPIS_HEARTBEAT_MS: '1000',
        LOG_LEVEL: 'info',
      },
      60_000,
      path.join(dir, 'scheduler.log'),
    );
    client = createClient(SchedulerServiceClient, scheduler.address, { token: TEST_TOKENS.root.token });
    // The nodes' runtimes: they start on the Slurm side (their runtime's partition), 2 CPUs, 4 GiB.
    bus = await EventBus.connect({ url: natsUrl(), name: 'runtime@director-test', stream: 'LAPIS', log: testLog });
    const beat = async () => {
      for (const name of NODES) {
        const node = Node.fromPartial({
          name,
          backend: Backend.DOCKER,
          partition: 'slurm-batch',
          state: NodeState.READY,
          capacity: { cpuMillis: 2000, memoryBytes: 4 * 2 ** 30 },
          heartbeatTime: new Date(),
        });
        await bus!.publish({ $case: 'nodeHeartbeat', nodeHeartbeat: { node } }, name);
      }
    };
    await beat();
    heartbeats = setInterval(() => void beat().catch(() => undefined), 500);
    nc = await connect({ servers: natsUrl() });
    const sub = nc.subscribe('lapis.scheduler.node_moved.>');
    void (async () => {
      for await (const m of sub) {
        const e = Event.decode(m.data);
        if (e.payload?.$case === 'nodeMoved') {
          const { node, fromPartition, toPartition, reason } = e.payload.nodeMoved;
          moved.push({ node, from: fromPartition, to: toPartition, reason });
        }
      }
    })();
    await until(
      async () => (await Promise.all(NODES.map(partitionOf))).every((p) => p === 'slurm-batch'),
      'the scheduler to know the three nodes',
      30_000,
    );
    lapis = new LapisAdapter(scheduler.address, TEST_TOKENS.root.token);
    director = new Director({
      slurm: new SlurmAdapter({ scontrol: slurm.bin.scontrol, squeue: slurm.bin.squeue, env: slurm.env }),
      lapis,
      log: testLog,
      cloudPartition: '',
      slurmSidePartition: '',
      slurmMin: 0,
      slurmMax: 0,
      maxInTransit: 1,
      preempt: false,
      preemptGraceMs: 1000,
    });
  });

  after(async function () {
    clearInterval(heartbeats);
    await director?.stop();
    lapis?.close();
    client?.close();
    await scheduler?.stop();
    await nc?.drain();
    await bus?.drain();
    await slurm?.stop();
  });

  it('with nothing waiting on either side, moves nothing', async function () {
    assert.deepEqual(steps(await director.round()), []);
  });

  it('Lapis claims queue: drains an idle node in Slurm (not the busy one), then moves it to the cloud partition once drained; the claim lands there', async function () {
    const busyJob = await sbatch(['-w', 'dn1']);
    await slurm!.waitForJob(busyJob, ['RUNNING']);
    const first = await submit();
    await until(async () => (await claims([ClaimState.PENDING])).some((c) => c.id === first.id), 'the claim to wait');

    assert.deepEqual(steps(await director.round()), ['drain dn2'], 'the idle dn2, not dn1 which runs a job');
    const dn2 = await slurmNode('dn2');
    assert.ok(dn2.flags.includes('DRAIN') && dn2.reason.startsWith('lapis: '), JSON.stringify(dn2));
    assert.ok(!(await slurmNode('dn1')).flags.includes('DRAIN'), 'the busy node was drained');
    assert.equal(await partitionOf('dn2'), 'slurm-batch', 'moved in Lapis before Slurm reported it drained');

    assert.deepEqual(steps(await director.round()), ['to-cloud dn2']);
    assert.equal(await partitionOf('dn2'), 'cloud');
    const placed = await until(
      async () => (await claims([ClaimState.PLACED, ClaimState.RUNNING])).find((c) => c.id === first.id),
      'the claim to be placed',
      30_000,
    );
    assert.equal(placed.node, 'dn2');
    await until(() => moved.find((m) => m.node === 'dn2' && m.to === 'cloud'), 'the NodeMoved event');
    assert.equal(moved.find((m) => m.node === 'dn2')?.from, 'slurm-batch');
    // Slurm keeps it drained, with a reason naming Lapis: no Slurm job lands on it.
    assert.ok((await slurmNode('dn2')).reason.startsWith('lapis: '));
    assert.ok(!(await slurmNode('dn1')).flags.includes('DRAIN'));
  });

  let second: Claim;
  it('a second claim that does not fit moves dn3 too (max_nodes 2 allows it)', async function () {
    second = await submit();
    await until(async () => (await claims([ClaimState.PENDING])).some((c) => c.id === second.id), 'the second claim to wait');
    assert.deepEqual(steps(await director.round()), ['drain dn3']);
    assert.deepEqual(steps(await director.round()), ['to-cloud dn3']);
    const placed = await until(
      async () => (await claims([ClaimState.PLACED, ClaimState.RUNNING])).find((c) => c.id === second.id),
      'the second claim to be placed',
      30_000,
    );
    assert.equal(placed.node, 'dn3');
    // Now Lapis waits for nothing and Slurm for nothing: nothing moves.
    assert.deepEqual(steps(await director.round()), []);
  });

  it('Slurm jobs queue: gives back the node with no instance (dn3 after its claim ends), never dn2 which runs one', async function () {
    const r: CancelClaimResponse = await call(client.cancelClaim.bind(client), { claimId: second.id, requestId: '' });
    assert.equal(r.claim?.state, ClaimState.CANCELLED);
    const waiting = await sbatch([]);
    await until(
      async () => (await slurm!.squeue()).some((j) => j.id === waiting && j.state === 'PENDING'),
      'the Slurm job to wait',
      60_000,
    );

    assert.deepEqual(steps(await director.round()), ['to-slurm dn3']);
    assert.equal(await partitionOf('dn3'), 'slurm-batch');
    assert.ok(!(await slurmNode('dn3')).flags.includes('DRAIN'), 'dn3 was not resumed in Slurm');
    assert.equal(await slurm!.waitForJob(waiting, ['RUNNING']), 'RUNNING');

    // More Slurm work, but the last cloud node runs an instance: it stays.
    const more = await sbatch([]);
    await until(
      async () => (await slurm!.squeue()).some((j) => j.id === more && j.state === 'PENDING'),
      'the second Slurm job to wait',
      60_000,
    );
    const round = await director.round();
    assert.deepEqual(steps(round), []);
    assert.match(round.decision!.notes.join('\n'), /runs instances/);
    assert.equal(await partitionOf('dn2'), 'cloud');
    assert.ok((await slurmNode('dn2')).flags.includes('DRAIN'));
  });

  it('every move is recorded: ListNodeMoves newest first, with the caller', async function () {
    const r: ListNodeMovesResponse = await call(client.listNodeMoves.bind(client), { pageSize: 10, pageToken: '', node: '' });
    assert.deepEqual(
      r.moves.map((m) => `${m.node} ${m.fromPartition}->${m.toPartition}`),
      ['dn3 cloud->slurm-batch', 'dn3 slurm-batch->cloud', 'dn2 slurm-batch->cloud'],
    );
    assert.ok(r.moves.every((m) => m.user === TEST_TOKENS.root.user && m.reason.startsWith('director: ') && m.time));
    const only: ListNodeMovesResponse = await call(client.listNodeMoves.bind(client), { pageSize: 10, pageToken: '', node: 'dn2' });
    assert.deepEqual(
      only.moves.map((m) => m.node),
      ['dn2'],
    );
  });

  it('lapisctl partition list and moves show the nodes and the moves', async function () {
    const lapisctl = async (args: string[]): Promise<string> => {
      const r = await run(process.execPath, [LAPISCTL, ...args], {
        env: { ...process.env, LAPIS_SCHEDULER_ADDRESS: scheduler!.address, LAPIS_TOKEN: TEST_TOKENS.root.token },
      });
      return r.stdout;
    };
    const list = await lapisctl(['partition', 'list']);
    assert.match(list, /^cloud\s+1\s+0\s+-\s+2\s+batch\s.*\bdn2$/m, list);
    assert.match(list, /^slurm-batch\s+2\s.*\bdn1,dn3$/m, list);
    const moves = await lapisctl(['partition', 'moves']);
    assert.match(moves, /^TIME\s+AGE\s+NODE\s+FROM\s+TO\s+BY\s+REASON$/m, moves);
    assert.deepEqual(
      moves
        .split('\n')
        .slice(1)
        .filter(Boolean)
        .map((l) => l.split(/\s+/).slice(2, 6).join(' ')),
      ['dn3 cloud slurm-batch root', 'dn3 slurm-batch cloud root', 'dn2 slurm-batch cloud root'],
    );
    const json = JSON.parse(await lapisctl(['partition', 'moves', '--node', 'dn2', '-o', 'json'])) as Array<{
      node: string;
      toPartition: string;
    }>;
    assert.deepEqual(
      json.map((m) => `${m.node} ${m.toPartition}`),
      ['dn2 cloud'],
    );
  });

  it('the lapis-director process gives dn2 back once its instance ends, logs it, and exits 0 on SIGTERM', async function () {
    const child = spawn(process.execPath, [DIRECTOR_MAIN], {
      env: {
        PATH: process.env.PATH,
        SLURM_CONF: slurm!.conf,
        LAPIS_SCHEDULER_ADDRESS: scheduler!.address,
        LAPIS_SERVICE_TOKEN: TEST_TOKENS.root.token,
        LAPIS_DIRECTOR_INTERVAL_MS: '300',
        LAPIS_DIRECTOR_SCONTROL: slurm!.bin.scontrol,
        LAPIS_DIRECTOR_SQUEUE: slurm!.bin.squeue,
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitFor(async () => out.includes('partition director started'), {
        timeoutMs: 20_000,
        what: `the director to start (output: ${out})`,
      });
      const onDn2 = (await claims([ClaimState.PLACED, ClaimState.RUNNING], 'dn2'))[0]!;
      // Let a few rounds pass with the instance still there: dn2 stays.
      await waitFor(async () => out.includes('runs instances'), { timeoutMs: 20_000, what: `a round to see dn2 busy (output: ${out})` });
      assert.equal(await partitionOf('dn2'), 'cloud');
      await call(client.cancelClaim.bind(client), { claimId: onDn2.id, requestId: '' });
      await waitFor(async () => (await partitionOf('dn2')) === 'slurm-batch' && !(await slurmNode('dn2')).flags.includes('DRAIN'), {
        timeoutMs: 30_000,
        what: `the director to give dn2 back (output: ${out})`,
      });
      const lines = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(
        lines.some((l) => l.msg === 'node moved out of the cloud partition' && l.node === 'dn2' && l.name === 'lapis-director'),
        out,
      );
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, out);
    assert.match(out, /"msg":"shutting down"/);
  });

  it('with the preemption policy, a node running only a preemptible instance is taken back: moved with drain, the instance preempted, resumed in Slurm once it is gone', async function () {
    await slurm!.command('scancel', ['--partition', 'batch']);
    await waitFor(async () => (await slurm!.squeue()).length === 0, { timeoutMs: 30_000, what: 'the Slurm jobs to end' });
    const notices: string[] = [];
    const sub = nc!.subscribe('lapis.scheduler.preemption_notice.>');
    void (async () => {
      for await (const m of sub) {
        const e = Event.decode(m.data);
        if (e.payload?.$case === 'preemptionNotice')
          notices.push(`${e.payload.preemptionNotice.node} ${e.payload.preemptionNotice.instanceId}`);
      }
    })();
    const preempting = new Director({
      slurm: new SlurmAdapter({ scontrol: slurm!.bin.scontrol, squeue: slurm!.bin.squeue, env: slurm!.env }),
      lapis: new LapisAdapter(scheduler!.address, TEST_TOKENS.root.token, bus),
      log: testLog,
      cloudPartition: 'cloud',
      slurmSidePartition: 'slurm-batch',
      slurmMin: 0,
      slurmMax: 0,
      maxInTransit: 1,
      preempt: true,
      preemptGraceMs: 1000,
    });
    const spot = await submit(true);
    await until(async () => (await claims([ClaimState.PENDING])).some((c) => c.id === spot.id), 'the spot claim to wait');
    assert.deepEqual(steps(await preempting.round()), ['drain dn1']);
    assert.deepEqual(steps(await preempting.round()), ['to-cloud dn1']);
    await until(
      async () => (await claims([ClaimState.PLACED, ClaimState.RUNNING], 'dn1')).some((c) => c.id === spot.id),
      'the spot claim on dn1',
      30_000,
    );

    // Four one-node jobs for two free nodes: two wait, more than the Lapis claims that wait (none).
    for (let i = 0; i < 4; i++) await sbatch([]);
    await until(async () => (await slurm!.squeue()).filter((j) => j.state === 'PENDING').length === 2, 'two Slurm jobs to wait', 60_000);
    assert.deepEqual(steps(await preempting.round()), ['to-slurm dn1', 'preempt dn1']);
    assert.equal(await partitionOf('dn1'), 'slurm-batch');
    assert.ok((await slurmNode('dn1')).flags.includes('DRAIN'), 'resumed in Slurm while the instance still runs');
    await until(() => notices.includes(`dn1 ${spot.id}`), 'the preemption notice');
    // Nothing changes while the instance is still there.
    assert.deepEqual(steps(await preempting.round()), ['preempt dn1'], 'the notice again (the stream drops the duplicate)');
    assert.ok((await slurmNode('dn1')).flags.includes('DRAIN'));

    // The runtime's part: the instance stopped, PREEMPTED; the scheduler requeues the claim.
    await bus!.publish(
      {
        $case: 'instanceStateChanged',
        instanceStateChanged: {
          instanceId: spot.id,
          project: spot.project,
          node: 'dn1',
          state: InstanceState.PREEMPTED,
          previousState: InstanceState.RUNNING,
          reason: 'preempted',
          addresses: [],
          exitCode: 0,
          resources: undefined,
        },
      },
      spot.id,
      `${spot.id}.PREEMPTED.1`,
    );
    await until(async () => (await claims([ClaimState.REQUEUED])).some((c) => c.id === spot.id), 'the claim to be requeued', 30_000);
    assert.deepEqual(steps(await preempting.round()), ['resume dn1']);
    assert.ok(!(await slurmNode('dn1')).flags.includes('DRAIN'));
    await waitFor(async () => (await slurm!.squeue()).filter((j) => j.state === 'PENDING').length <= 1, {
      timeoutMs: 30_000,
      what: 'a waiting job to start on dn1',
    });
    await preempting.stop();
  });
});
