import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { Claim, ClaimState } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { InstanceStateChanged, type Event } from '@lapis/proto/lapis/events/v1/events';
import { EventBus, PoisonMessage, RetryLater, type RunningConsumer } from '../../src/nats/bus';
import { subjectFor, type EventPayload } from '../../src/nats/events';
import { RevisionConflict } from '../../src/nats/kv';
import { log, natsUrl, sleep, unique, until } from '../helpers';

const instanceEvent = (instanceId: string): EventPayload => ({
  $case: 'instanceStateChanged',
  instanceStateChanged: InstanceStateChanged.fromPartial({
    instanceId,
    project: 'physics',
    node: 'node-1',
    state: InstanceState.RUNNING,
    previousState: InstanceState.CREATING,
  }),
});

describe('NATS events (real JetStream)', () => {
  let bus: EventBus;
  const consumers: RunningConsumer[] = [];

  before(async () => {
    bus = await EventBus.connect({ url: natsUrl(), name: 'platform-test', stream: 'LAPIS', log });
  });
  afterEach(async () => {
    await Promise.all(consumers.splice(0).map((c) => c.stop()));
  });
  after(async () => bus.drain());

  /** A consumer of one test's own key, recording what its handler saw. */
  async function record(key: string, handler: (event: Event, count: number) => Promise<void> = async () => {}, ackWaitMs = 500) {
    const durable = unique('c');
    const seen: Event[] = [];
    consumers.push(
      await bus.consume({
        durable,
        subject: subjectFor('instanceStateChanged', key),
        ackWaitMs,
        maxDeliver: 5,
        handler: async (event) => {
          seen.push(event);
          await handler(event, seen.length);
        },
      }),
    );
    const info = () => bus.jsm.consumers.info('LAPIS', durable);
    return { seen, info, durable };
  }

  it('processes an event published once exactly once', async () => {
    const key = unique('i');
    const { seen, info } = await record(key);
    const published = await bus.publish(instanceEvent(key), key);
    assert.equal(published.duplicate, false);
    await until(() => seen.length === 1 || undefined, 'the event');
    await sleep(1_200); // past the ack wait: an unacked message would be back by now
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.payload?.$case, 'instanceStateChanged');
    const state = await info();
    assert.equal(state.num_ack_pending, 0);
    assert.equal(state.num_pending, 0);
    assert.equal(state.num_redelivered, 0);
  });

  it('gives a message to the next consumer when the one holding it is killed before its ack', async () => {
    const key = unique('i');
    const durable = unique('c');
    const subject = subjectFor('instanceStateChanged', key);
    const child = spawn(process.execPath, [require.resolve('../fixtures/hanging-consumer'), natsUrl(), durable, subject], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    try {
      await until(() => output.includes('ready') || undefined, 'the hanging consumer to start');
      await bus.publish(instanceEvent(key), key, `${key}-fact`);
      await until(() => output.includes(`got ${key}-fact`) || undefined, 'the first delivery');
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    const deliveries: number[] = [];
    consumers.push(
      await bus.consume({
        durable,
        subject,
        ackWaitMs: 1_000,
        handler: async (event, delivery) => {
          assert.equal(event.id, `${key}-fact`);
          deliveries.push(delivery.deliveryCount);
        },
      }),
    );
    await until(() => deliveries.length === 1 || undefined, 'the redelivery');
    assert.deepEqual(deliveries, [2]);
  });

  it('drops a second publish with the same Nats-Msg-Id', async () => {
    const key = unique('i');
    const { seen } = await record(key);
    const first = await bus.publish(instanceEvent(key), key, `${key}-same`);
    const second = await bus.publish(instanceEvent(key), key, `${key}-same`);
    assert.equal(first.duplicate, false);
    assert.equal(second.duplicate, true);
    assert.equal(second.seq, first.seq);
    await until(() => seen.length === 1 || undefined, 'the event');
    await sleep(700);
    assert.equal(seen.length, 1);
  });

  it('terminates bytes that are not an event instead of retrying them', async () => {
    const key = unique('i');
    const { seen, info } = await record(key);
    await bus.js.publish(subjectFor('instanceStateChanged', key), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]));
    await until(async () => ((await info()).delivered.consumer_seq === 1 ? true : undefined), 'the delivery');
    await sleep(1_200);
    const state = await info();
    assert.equal(seen.length, 0, 'the handler never sees poison');
    assert.equal(state.delivered.consumer_seq, 1, 'delivered once, never again');
    assert.equal(state.num_ack_pending, 0);
    assert.equal(state.num_redelivered, 0);
  });

  it('terminates a message its handler calls poison', async () => {
    const key = unique('i');
    const { seen, info } = await record(key, async () => {
      throw new PoisonMessage('cannot ever work');
    });
    await bus.publish(instanceEvent(key), key);
    await until(() => seen.length === 1 || undefined, 'the delivery');
    await sleep(1_200);
    assert.equal(seen.length, 1);
    assert.equal((await info()).num_ack_pending, 0);
  });

  it('retries a message after a transient failure, then acks it', async () => {
    const key = unique('i');
    const { seen, info } = await record(key, async (_event, count) => {
      if (count === 1) throw new RetryLater('not yet', 100);
    });
    await bus.publish(instanceEvent(key), key);
    await until(() => seen.length === 2 || undefined, 'the retry');
    await until(async () => ((await info()).num_ack_pending === 0 ? true : undefined), 'the ack');
  });

  it('handles events of different keys side by side, and those of one key in order', async () => {
    const node = unique('n');
    const active = new Map<string, number>();
    const order: string[] = [];
    let most = 0;
    consumers.push(
      await bus.consume({
        durable: unique('c'),
        subject: subjectFor('instanceStateChanged', node),
        parallel: {
          limit: 4,
          key: (event) => (event.payload?.$case === 'instanceStateChanged' ? event.payload.instanceStateChanged.instanceId : ''),
        },
        handler: async (event) => {
          if (event.payload?.$case !== 'instanceStateChanged') return;
          const { instanceId, reason } = event.payload.instanceStateChanged;
          assert.ok(!active.get(instanceId), `two events of ${instanceId} at once`);
          active.set(instanceId, 1);
          most = Math.max(
            most,
            [...active.values()].reduce((a, b) => a + b, 0),
          );
          await sleep(50);
          order.push(`${instanceId}:${reason}`);
          active.set(instanceId, 0);
        },
      }),
    );
    // All on one subject (the node's), as placements are: the key, not the subject, orders them.
    const instances = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (const step of ['1', '2', '3']) {
      for (const id of instances) {
        const event = instanceEvent(id);
        if (event.$case === 'instanceStateChanged') event.instanceStateChanged.reason = step;
        await bus.publish(event, node, `${node}.${id}.${step}`);
      }
    }
    await until(() => order.length === 18 || undefined, 'every event handled');
    assert.equal(most, 4, 'four at a time');
    for (const id of instances)
      assert.deepEqual(
        order.filter((o) => o.startsWith(`${id}:`)),
        [`${id}:1`, `${id}:2`, `${id}:3`],
      );
  });

  it('gives up on a message that keeps failing after maxDeliver tries', async () => {
    const key = unique('i');
    const { seen, info } = await record(key, async () => {
      throw new RetryLater('still broken', 10);
    });
    await bus.publish(instanceEvent(key), key);
    await until(() => seen.length === 5 || undefined, 'five deliveries');
    await sleep(1_000);
    assert.equal(seen.length, 5);
    assert.equal((await info()).num_ack_pending, 0);
  });
});

describe('key-value state (real JetStream)', () => {
  let bus: EventBus;
  before(async () => {
    bus = await EventBus.connect({ url: natsUrl(), name: 'platform-test', stream: 'LAPIS', log });
  });
  after(async () => bus.drain());

  const claim = (id: string, priority: number): Claim => Claim.fromPartial({ id, project: 'physics', state: ClaimState.PENDING, priority });

  it('creates once, updates only at the revision read, and survives a reconnect', async () => {
    const claims = await bus.bucket(unique('claims'), Claim);
    const revision = await claims.create('c1', claim('c1', 0.5));
    await assert.rejects(claims.create('c1', claim('c1', 0.9)), RevisionConflict);
    const next = await claims.update('c1', claim('c1', 0.7), revision);
    await assert.rejects(claims.update('c1', claim('c1', 0.8), revision), RevisionConflict, 'a stale revision loses');
    const again = await EventBus.connect({ url: natsUrl(), name: 'platform-test-2', stream: 'LAPIS', log });
    try {
      const reopened = await again.bucket(claims.name, Claim);
      const stored = await reopened.get('c1');
      assert.equal(stored?.revision, next);
      assert.equal(stored?.value.priority, 0.7);
    } finally {
      await again.drain();
    }
  });

  it('lets concurrent writers all land through mutate', async () => {
    const claims = await bus.bucket(unique('claims'), Claim);
    await Promise.all(
      Array.from({ length: 20 }, () =>
        claims.mutate('c1', (current) => ({ ...(current ?? claim('c1', 0)), placements: (current?.placements ?? 0) + 1 }), 50),
      ),
    );
    assert.equal((await claims.get('c1'))?.value.placements, 20);
    assert.deepEqual(await claims.keys(), ['c1']);
    await claims.delete('c1');
    assert.equal(await claims.get('c1'), undefined);
  });
});
