// Two node agents sharing one Docker engine, as the scheduler sees a node lost: the instance is
// placed again on the other node under its next attempt, which takes the instance over (its
// record); the lost node, told by the fence (a claimCancelled) or at its restart, removes its
// own copy and leaves the record alone. Nothing runs twice.
import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { unique, until } from '@lapis/platform/testing';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { baseSpec, leftovers, startRuntime, type Runtime } from '../harness';

describe('node agents: an instance moved off a lost node runs once (fencing)', function () {
  this.timeout(180_000);
  let a: Runtime;
  let b: Runtime;
  before(async () => {
    a = await startRuntime();
    b = await startRuntime();
  });
  after(async () => {
    await a?.stop({ purge: true });
    await b?.stop({ purge: true });
  });

  const place = (rt: Runtime, claimId: string, attempt: number) =>
    rt.bus.publish(
      {
        $case: 'claimPlaced',
        claimPlaced: {
          claimId,
          project: 'physics',
          user: 'alice',
          node: rt.node,
          spec: baseSpec(`moving-${claimId.slice(-6)}`.toLowerCase()),
          preemptible: false,
          attempt,
          requestId: `req-${claimId}`,
        },
      },
      rt.node,
      `${claimId}.placed.${attempt}`,
    );
  const record = async (id: string) => (await b.agent.store.instances.get(id))?.value;
  const runningOn = (id: string, node: string) => async () => {
    const r = await record(id);
    return r?.node === node && r.state === InstanceState.RUNNING ? r : undefined;
  };
  const copies = async (rt: Runtime, id: string) => (await leftovers(rt.node, rt.stateDir)).containers.filter((c) => c.includes(id));

  it('a later attempt on another node takes the instance over; the fence removes the lost node’s copy only', async () => {
    const id = unique('claim');
    await place(a, id, 1);
    await until(runningOn(id, a.node), 'running on node a', 30_000);
    await place(b, id, 2);
    const moved = await until(runningOn(id, b.node), 'taken over by node b', 30_000);
    assert.equal(moved.attempt, 2);
    assert.equal((await copies(a, id)).length, 1, 'node a (lost, say) still has its copy');
    assert.equal((await copies(b, id)).length, 1);

    const fence = (rt: Runtime, attempt: number) =>
      rt.bus.publish({ $case: 'claimCancelled', claimCancelled: { claimId: id, project: 'physics', node: rt.node, attempt } }, rt.node);
    await fence(a, 1);
    await until(async () => ((await copies(a, id)).length === 0 ? true : undefined), 'node a’s copy removed', 30_000);
    await until(() => !existsSync(join(a.stateDir, 'instances', id)) || undefined, 'node a’s directories of it removed', 10_000);
    assert.equal((await record(id))?.node, b.node, 'the record stays node b’s');
    assert.equal((await record(id))?.state, InstanceState.RUNNING);
    assert.equal((await copies(b, id)).length, 1, 'node b’s instance runs on');

    // Node b lost in turn: the next attempt comes back to node a, whose fence ended only attempt 1.
    await place(a, id, 3);
    await until(runningOn(id, a.node), 'attempt 3 running on node a', 30_000);
    await fence(b, 2);
    await until(async () => ((await copies(b, id)).length === 0 ? true : undefined), 'node b’s copy removed', 30_000);
    assert.equal((await copies(a, id)).length, 1, 'one copy, on node a');
  });

  it('a lost node that restarts removes the copies of instances that moved instead of adopting them', async () => {
    const id = unique('claim');
    await place(a, id, 1);
    await until(runningOn(id, a.node), 'running on node a', 30_000);
    // Node a goes away as in a crash (its containers stay), and its instance moves to node b.
    await a.stop();
    await place(b, id, 2);
    await until(runningOn(id, b.node), 'taken over by node b', 30_000);
    a = await startRuntime({ node: a.node, stateDir: a.stateDir });
    await until(async () => ((await copies(a, id)).length === 0 ? true : undefined), 'node a’s copy removed at its start', 30_000);
    assert.equal((await record(id))?.node, b.node);
    assert.equal((await record(id))?.state, InstanceState.RUNNING);
    assert.equal((await copies(b, id)).length, 1);
  });
});
