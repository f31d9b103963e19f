// Exactly-once placement across a killed leader: two scheduler instances, each with its own
// NATS connection, share the buckets; the leader's connection is cut in the middle of a
// cycle (once after deciding, once after recording but before publishing); the standby takes
// the lease over and finishes. Every claim is recorded as placed once and reaches its node
// once.
import { strict as assert } from 'node:assert';
import { EventBus, loadFlavors } from '@lapis/platform';
import { natsUrl, testLog, until } from '@lapis/platform/testing';
import { InstanceSpec } from '@lapis/proto/lapis/common/v1/common';
import { ClaimState } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { Scheduler } from '../../src/application/scheduler';
import { defaultSettings } from '../../src/config';
import { FakeFreeNode, FLAVORS, placedIds, unique } from './harness';

async function instance(prefix: string, name: string): Promise<{ scheduler: Scheduler; bus: EventBus }> {
  const bus = await EventBus.connect({ url: natsUrl(), name, stream: 'LAPIS', log: testLog });
  const scheduler = new Scheduler({
    bus,
    log: testLog,
    settings: defaultSettings(),
    flavors: loadFlavors(FLAVORS),
    bucketPrefix: prefix,
    consumerPrefix: prefix,
    instanceId: name,
    cycleMs: 100,
    leaseMs: 1000,
    heartbeatMs: 5000,
    maxPlacements: 15,
  });
  await scheduler.start();
  return { scheduler, bus };
}

const spec = InstanceSpec.fromPartial({ name: 'vm', flavor: 'm1.tiny', image: 'lapis/base:1' });

for (const when of ['decided', 'recorded'] as const) {
  describe(`fail-over with the leader killed mid-cycle (${when === 'decided' ? 'after deciding' : 'after recording, before publishing'})`, () => {
    const cleanup: Array<() => Promise<unknown>> = [];
    after(async () => {
      for (const step of cleanup.reverse()) await step().catch(() => undefined);
    });

    it('places every claim exactly once', async () => {
      const prefix = unique('fo').toLowerCase();
      const nodes = [await FakeFreeNode.start(unique('node').toLowerCase()), await FakeFreeNode.start(unique('node').toLowerCase())];
      cleanup.push(...nodes.map((n) => () => n.stop()));
      const a = await instance(prefix, 'scheduler-a');
      cleanup.push(
        () => a.scheduler.halt(),
        () => a.bus.drain(),
      );
      assert.ok(a.scheduler.leader, 'the first instance leads');
      const b = await instance(prefix, 'scheduler-b');
      cleanup.push(
        () => b.scheduler.stop(),
        () => b.bus.drain(),
      );
      assert.equal(b.scheduler.leader, false, 'the second one stands by');

      // Kill the leader in its third cycle that places something.
      let cycles = 0;
      a.scheduler.hooks[when] = async () => {
        if (a.scheduler.lastCycle === undefined || ++cycles < 3) return;
        await a.bus.nc.close();
        await a.scheduler.halt();
      };
      for (const n of nodes) await n.heartbeat(64, 256);
      const ids: string[] = [];
      for (let i = 0; i < 120; i++) {
        // Submissions go to either instance: both take them.
        const via = i % 2 === 0 ? a.scheduler : b.scheduler;
        const c = await via
          .submit({
            project: 'physics',
            user: 'alice',
            spec,
            res: { cpu: 500, mem: 256 * 2 ** 20, gpus: 0 },
            devices: [],
            preemptible: false,
            requeue: true,
            partition: '',
            backend: 0,
            group: '',
            qos: '',
            requestId: `${prefix}-r${i}`,
          })
          .catch(() => undefined);
        if (c) ids.push(c.id);
      }
      await until(() => b.scheduler.leader, 'the standby to take over', 15_000);
      await until(() => ids.every((id) => b.scheduler.claim(id)?.state === ClaimState.PLACED), 'every claim placed', 30_000);
      const delivered = () => nodes.flatMap(placedIds).filter((id) => ids.includes(id));
      await until(() => delivered().length >= ids.length, 'every placement delivered to its node', 15_000).catch((e) => {
        const got = new Set(delivered());
        const missing = ids.filter((id) => !got.has(id)).map((id) => b.scheduler.claim(id));
        throw new Error(
          `${e.message}: ${missing.length} missing, e.g. ${JSON.stringify(missing[0] && { ...missing[0], spec: undefined })}`,
        );
      });
      for (const id of ids) assert.equal(b.scheduler.claim(id)?.placements, 1, `claim ${id} placed once`);
      // Nothing more arrives: give the stream a moment, then count again.
      await new Promise((r) => setTimeout(r, 500));
      const counts = new Map<string, number>();
      for (const id of delivered()) counts.set(id, (counts.get(id) ?? 0) + 1);
      assert.equal(counts.size, ids.length);
      assert.deepEqual(
        [...counts.values()].filter((n) => n !== 1),
        [],
        'no claim reached a node twice',
      );
      // It happened where the test meant it to: the old leader died with work unfinished.
      assert.ok(cycles >= 3, 'the leader was killed mid-cycle');
    });
  });
}

describe('a leader killed, started again as a standby, then the new leader stopped', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  });

  it('the restarted instance takes the lease back and places again', async () => {
    const prefix = unique('fo').toLowerCase();
    const node = await FakeFreeNode.start(unique('node').toLowerCase());
    cleanup.push(() => node.stop());
    const a = await instance(prefix, 'scheduler-a');
    cleanup.push(() => a.bus.drain().catch(() => undefined));
    const b = await instance(prefix, 'scheduler-b');
    cleanup.push(
      () => b.scheduler.stop(),
      () => b.bus.drain(),
    );
    assert.ok(a.scheduler.leader && !b.scheduler.leader);
    // kill -9: its connection goes, the lease is not given back.
    await a.bus.nc.close();
    await a.scheduler.halt();
    await until(() => b.scheduler.leader, 'the standby to take over', 15_000);
    const again = await instance(prefix, 'scheduler-a-again');
    cleanup.push(
      () => again.scheduler.stop(),
      () => again.bus.drain(),
    );
    assert.equal(again.scheduler.leader, false, 'back as a standby');
    await b.scheduler.stop();
    await until(() => again.scheduler.leader, 'the restarted instance to lead', 15_000);
    await node.heartbeat(64, 256);
    const claim = await again.scheduler.submit({
      project: 'physics',
      user: 'alice',
      spec,
      res: { cpu: 500, mem: 256 * 2 ** 20, gpus: 0 },
      devices: [],
      preemptible: false,
      requeue: true,
      partition: '',
      backend: 0,
      group: '',
      qos: '',
      requestId: `${prefix}-after`,
    });
    await until(() => placedIds(node).includes(claim.id), 'the claim placed by the restarted instance', 15_000);
  });
});
