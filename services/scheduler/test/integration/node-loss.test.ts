// A node that stops sending heartbeats, over the real event stream: it is down at once for
// placement, and once lost its instances follow their restart policy (one that restarts on
// failure is placed on another node under the next attempt, any other ends) and the node is
// fenced (a claimCancelled for each waits on its subject), so nothing runs twice when it
// comes back.
import { strict as assert } from 'node:assert';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { ClaimState } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { sleep, until } from '@lapis/platform/testing';
import type { RunningScheduler } from '../../src/wiring';
import { client, FakeFreeNode, placedIds, startTestScheduler, unique, type Api } from './harness';

const HEARTBEAT_MS = 200;
const LOST_MS = 1500;

describe('a lost node: instances moved by their restart policy, the node fenced (real NATS)', () => {
  let running: RunningScheduler | undefined;
  let alice: Api;
  let root: Api;
  const nodes: FakeFreeNode[] = [];
  const beating = new Map<FakeFreeNode, NodeJS.Timeout>();
  const beat = (n: FakeFreeNode) =>
    beating.set(
      n,
      setInterval(() => void n.heartbeat(8, 32).catch(() => undefined), HEARTBEAT_MS),
    );
  const silence = (n: FakeFreeNode) => clearInterval(beating.get(n));

  afterEach(async () => {
    for (const timer of beating.values()) clearInterval(timer);
    beating.clear();
    alice?.close();
    root?.close();
    await running?.shutdown.run('test over');
    running = undefined;
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  it('requeues what restarts on failure onto another node, ends the rest, fences the lost node, ignores it after', async () => {
    running = await startTestScheduler(unique('sched').toLowerCase(), {
      LAPIS_HEARTBEAT_MS: String(HEARTBEAT_MS),
      LAPIS_SCHEDULER_NODE_LOST_MS: String(LOST_MS),
    });
    alice = client(`127.0.0.1:${running.port}`, 'alice-token', 'physics');
    root = client(`127.0.0.1:${running.port}`, 'root-token');
    const a = await FakeFreeNode.start(unique('node-a').toLowerCase());
    const b = await FakeFreeNode.start(unique('node-b').toLowerCase());
    nodes.push(a, b);
    beat(a);
    const spec = (name: string, restartOnFailure: boolean) => ({
      spec: { name, flavor: 'm1.small', image: 'lapis/base:1', restartOnFailure },
    });
    const restarts = (await alice.submitClaim(spec('restarts', true))).claim!.id;
    const ends = (await alice.submitClaim(spec('ends', false))).claim!.id;
    await until(() => [restarts, ends].every((id) => placedIds(a).includes(id)), 'both placed on node a');
    for (const id of [restarts, ends]) await a.instance(id, 'physics', InstanceState.RUNNING);
    const claim = async (id: string) => (await alice.getClaim({ claimId: id })).claim!;
    await until(async () => (await claim(ends)).state === ClaimState.RUNNING, 'running on node a');

    beat(b);
    silence(a);
    const down = async () => (await root.listPartitions({})).partitions.flatMap((p) => p.downNodes);
    await until(async () => (await down()).includes(a.name), 'node a down (no placement) after three heartbeats');
    assert.ok(!placedIds(b).includes(restarts), 'down is not lost yet: nothing moved');

    await until(() => placedIds(b).includes(restarts), 'the instance that restarts placed on node b', 10_000);
    const moved = await claim(restarts);
    assert.equal(moved.node, b.name);
    assert.equal(moved.placements, 2, 'placed again under the next attempt (node b may take the instance id over)');
    const ended = await claim(ends);
    assert.equal(ended.state, ClaimState.ENDED);
    assert.match(ended.reasonDetail, /lost with node/);
    const fenced = () => a.cancelled.map((e) => (e.payload?.$case === 'claimCancelled' ? e.payload.claimCancelled.claimId : '')).sort();
    await until(() => fenced().length >= 2 || undefined, 'the fence on node a’s subject');
    assert.deepEqual(fenced(), [restarts, ends].sort());

    // Node a comes back and removes its copies: its events about them change nothing.
    beat(a);
    await a.instance(restarts, 'physics', InstanceState.DELETED);
    await a.instance(ends, 'physics', InstanceState.RUNNING);
    await until(async () => !(await down()).includes(a.name) || undefined, 'node a up again');
    await sleep(4 * HEARTBEAT_MS);
    assert.equal((await claim(restarts)).state, ClaimState.PLACED);
    assert.equal((await claim(restarts)).node, b.name);
    assert.equal((await claim(ends)).state, ClaimState.ENDED);
    assert.equal(a.placed.length, 2, 'nothing placed back on node a');
  });
});
