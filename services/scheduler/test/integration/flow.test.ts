// The scheduler and a node talking over the real event stream, as the contract says: the
// test publishes the heartbeats and instance events a runtime agent would, and consumes
// placements and preemption notices from the agent's durable consumers.
import { strict as assert } from 'node:assert';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { ClaimState, PendingReason, PreemptionAction } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { until } from '@lapis/platform/testing';
import type { RunningScheduler } from '../../src/wiring';
import { client, FakeFreeNode, placedIds, startTestScheduler, unique, type Api } from './harness';

const spec = (flavor: string) => ({ name: 'vm', flavor, image: 'lapis/base:1' });

describe('placement over the event stream (real NATS)', () => {
  let running: RunningScheduler | undefined;
  let alice: Api;
  let root: Api;
  const nodes: FakeFreeNode[] = [];

  async function start(prefix: string) {
    running = await startTestScheduler(prefix);
    alice = client(`127.0.0.1:${running.port}`, 'alice-token', 'physics');
    root = client(`127.0.0.1:${running.port}`, 'root-token');
  }
  async function stop() {
    alice?.close();
    root?.close();
    await running?.shutdown.run('test over');
    running = undefined;
  }
  afterEach(async () => {
    await stop();
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  it('places a claim on the node, publishes it on the node’s subject, and follows the instance', async () => {
    await start(unique('sched').toLowerCase());
    const node = await FakeFreeNode.start(unique('node').toLowerCase());
    nodes.push(node);
    await node.heartbeat(8, 32);
    const claim = (await alice.submitClaim({ spec: spec('m1.small') })).claim!;
    await until(() => placedIds(node).includes(claim.id), 'the placement on the node’s subject');
    const event = node.placed[0]!.payload;
    assert.equal(event?.$case, 'claimPlaced');
    if (event?.$case === 'claimPlaced') {
      assert.equal(event.claimPlaced.node, node.name);
      assert.equal(event.claimPlaced.attempt, 1);
      assert.equal(event.claimPlaced.project, 'physics');
    }
    const placed = (await alice.getClaim({ claimId: claim.id })).claim!;
    assert.equal(placed.state, ClaimState.PLACED);
    assert.equal(placed.node, node.name);
    await node.instance(claim.id, 'physics', InstanceState.RUNNING);
    await until(async () => (await alice.getClaim({ claimId: claim.id })).claim?.state === ClaimState.RUNNING, 'RUNNING');
    const quota = (await alice.getQuota({})).quota!;
    assert.equal(quota.usedInstances, 1);
    await node.instance(claim.id, 'physics', InstanceState.DELETED);
    await until(async () => (await alice.getClaim({ claimId: claim.id })).claim?.state === ClaimState.ENDED, 'ENDED');
    // Cancelling a placed claim tells its node.
    const second = (await alice.submitClaim({ spec: spec('m1.small') })).claim!;
    await until(() => placedIds(node).includes(second.id), 'the second placement');
    await alice.cancelClaim({ claimId: second.id });
    await until(() => node.cancelled.length === 1, 'the cancellation on the node’s subject');
  });

  it('preempts a spot instance for a normal claim: notice, room freed by PREEMPTED, then placed', async () => {
    await start(unique('sched').toLowerCase());
    const node = await FakeFreeNode.start(unique('node').toLowerCase());
    nodes.push(node);
    await node.heartbeat(4, 16);
    const spot = (await alice.submitClaim({ spec: spec('m1.large'), preemptible: true, onPreemption: PreemptionAction.REQUEUE })).claim!;
    await until(() => placedIds(node).includes(spot.id), 'the spot instance placed');
    await node.instance(spot.id, 'physics', InstanceState.RUNNING);
    const normal = (await alice.submitClaim({ spec: spec('m1.large') })).claim!;
    await until(() => node.notices.length > 0, 'a preemption notice');
    const notice = node.notices[0]!.payload;
    assert.equal(notice?.$case, 'preemptionNotice');
    if (notice?.$case === 'preemptionNotice') {
      assert.equal(notice.preemptionNotice.instanceId, spot.id);
      assert.equal(notice.preemptionNotice.forClaimId, normal.id);
      assert.ok((notice.preemptionNotice.gracePeriod?.seconds ?? 0) > 0);
    }
    const waiting = (await alice.getClaim({ claimId: normal.id })).claim!;
    assert.equal(waiting.state, ClaimState.PENDING);
    assert.equal(waiting.pendingReason, PendingReason.PREEMPTION);
    assert.equal(placedIds(node).includes(normal.id), false, 'not placed before the room is free');
    // The agent stops the spot instance after the grace period and says so.
    await node.instance(spot.id, 'physics', InstanceState.PREEMPTED);
    await until(() => placedIds(node).includes(normal.id), 'the normal claim placed once the room is free');
    const requeued = (await alice.getClaim({ claimId: spot.id })).claim!;
    assert.equal(requeued.state, ClaimState.REQUEUED);
    assert.equal(requeued.node, '');
  });

  it('lists a node silent for three heartbeat periods as down in its partition, and up again after its next heartbeat', async () => {
    running = await startTestScheduler(unique('sched').toLowerCase(), { LAPIS_HEARTBEAT_MS: '200' });
    root = client(`127.0.0.1:${running.port}`, 'root-token');
    const node = await FakeFreeNode.start(unique('node').toLowerCase());
    nodes.push(node);
    const down = async () => (await root.listPartitions({})).partitions.find((p) => p.name === 'default')?.downNodes ?? [];
    await node.heartbeat(2, 8);
    await until(async () => (await root.listPartitions({})).partitions.some((p) => p.nodes.includes(node.name)), 'the node listed');
    await until(async () => (await down()).includes(node.name), 'the silent node down');
    await node.heartbeat(2, 8);
    await until(async () => !(await down()).includes(node.name), 'the node up again');
  });

  it('loses nothing on restart: queue, accounts, quotas and usage', async () => {
    const prefix = unique('sched').toLowerCase();
    await start(prefix);
    const node = await FakeFreeNode.start(unique('node').toLowerCase());
    nodes.push(node);
    await node.heartbeat(2, 8);
    await root.setAccount({ account: 'physics', shares: 42 });
    await root.setQuota({ quota: { project: 'physics', maxInstances: 7 } });
    const runningClaim = (await alice.submitClaim({ spec: spec('m1.medium') })).claim!;
    await until(() => placedIds(node).includes(runningClaim.id), 'placed');
    await node.instance(runningClaim.id, 'physics', InstanceState.RUNNING);
    // Recorded before the stop: an event still in flight would only come back after the ack wait.
    await until(async () => (await alice.getClaim({ claimId: runningClaim.id })).claim?.state === ClaimState.RUNNING, 'RUNNING');
    const queued = (await alice.submitClaim({ spec: spec('m1.medium'), requestId: 'keep-me' })).claim!;
    // Usage accrues while the instance runs and is written out by the leader.
    await until(
      async () => ((await root.getFairShare({ account: 'physics' })).entries.find((e) => e.user === '')?.rawUsage ?? 0) > 0,
      'usage',
    );
    await stop();

    await start(prefix);
    const again = (await alice.getClaim({ claimId: queued.id })).claim!;
    assert.equal(again.state, ClaimState.PENDING);
    assert.equal((await alice.submitClaim({ spec: spec('m1.medium'), requestId: 'keep-me' })).claim?.id, queued.id);
    assert.equal((await alice.getClaim({ claimId: runningClaim.id })).claim?.state, ClaimState.RUNNING);
    const share = await root.getFairShare({ account: 'physics' });
    const row = share.entries.find((e) => e.user === '');
    assert.equal(row?.rawShares, 42);
    assert.ok((row?.rawUsage ?? 0) > 0, 'usage survived');
    assert.equal((await alice.getQuota({})).quota?.maxInstances, 7);
    // The node is remembered, and the room of the running instance still counts.
    await node.heartbeat(2, 8, '', 2);
    await node.instance(runningClaim.id, 'physics', InstanceState.DELETED);
    await node.heartbeat(2, 8, '', 0);
    await until(() => placedIds(node).includes(queued.id), 'the queued claim placed after the restart');
  });
});
