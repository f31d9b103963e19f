// The NATS users and permissions of nats/access.ts on a real nats-server (its own, with the
// generated authorization and TLS; the run's shared NATS stays open for the other tests).
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { ClaimPlaced, NodeHeartbeat } from '@lapis/proto/lapis/events/v1/events';
import { startNats, type NatsServer } from '@lapis/testenv';
import { connect, ErrorCode, type NatsConnection } from 'nats';
import { lapisAccess, natsAuthorization, runtimeConsumers } from '../../src/nats/access';
import { EventBus, type RunningConsumer } from '../../src/nats/bus';
import { eventSubjects, type EventPayload } from '../../src/nats/events';
import type { Event } from '@lapis/proto/lapis/events/v1/events';
import { log, until } from '../helpers';

const STREAM = 'LAPIS';
const placement = (node: string, claimId: string): EventPayload => ({
  $case: 'claimPlaced',
  claimPlaced: ClaimPlaced.fromPartial({ claimId, project: 'physics', user: 'alice', node, attempt: 1 }),
});
const codec = { encode: (v: string) => ({ finish: () => Buffer.from(v) }), decode: (b: Uint8Array) => Buffer.from(b).toString() };

/** Rejected by the server for lack of rights (not a timeout, not another error). */
async function refused(what: Promise<unknown>, code: string = ErrorCode.PermissionsViolation): Promise<void> {
  await assert.rejects(what, (error: Error & { code?: string }) => {
    assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
    return true;
  });
}

/** A subscription the server refuses: its iterator ends with the permissions error. */
function subscription(nc: NatsConnection, subject: string): Promise<void> {
  const sub = nc.subscribe(subject);
  return (async () => {
    for await (const _ of sub) {
      /* nothing may come */
    }
  })();
}

describe('NATS users and permissions (real nats-server with the generated authorization and TLS)', function () {
  let nats: NatsServer;
  const passwords = new Map<string, string>();
  const users = lapisAccess({ nodes: ['node-a', 'node-b'], director: true });
  const buses: EventBus[] = [];
  const consumers: RunningConsumer[] = [];
  const connections: NatsConnection[] = [];

  const busOf = async (user: string) => {
    const bus = await EventBus.connect({
      url: nats.url,
      name: user,
      stream: STREAM,
      log,
      caFile: nats.caFile!,
      credentials: { user, password: passwords.get(user)! },
    });
    buses.push(bus);
    return bus;
  };

  before(async function () {
    this.timeout(60_000);
    for (const u of users) passwords.set(u.user, randomBytes(12).toString('hex'));
    const config = natsAuthorization(
      users.map((access) => ({ access, password: { value: passwords.get(access.user)! } })),
      STREAM,
    );
    nats = await startNats({ config, tls: true });
  });
  after(async () => {
    await Promise.all(consumers.map((c) => c.stop()));
    await Promise.all(buses.map((b) => b.drain().catch(() => undefined)));
    await Promise.all(connections.map((c) => c.close()));
    await nats?.stop();
  });

  it('refuses a client without credentials, with a wrong password, or that does not check the certificate', async () => {
    await refused(connect({ servers: nats.url, tls: { caFile: nats.caFile! } }), ErrorCode.AuthorizationViolation);
    await refused(
      connect({ servers: nats.url, tls: { caFile: nats.caFile! }, user: 'scheduler', pass: 'not-the-password' }),
      ErrorCode.AuthorizationViolation,
    );
    // The right password to a server whose certificate the client does not trust: never sent.
    await assert.rejects(connect({ servers: nats.url, user: 'scheduler', pass: passwords.get('scheduler')! }), /certificate/i);
  });

  it('lets the scheduler publish placements and use its buckets', async () => {
    const scheduler = await busOf('scheduler');
    const ack = await scheduler.publish(placement('node-a', 'claim-1'), 'node-a', 'claim-1.placed');
    assert.ok(ack.seq > 0);
    const claims = await scheduler.bucket('scheduler-claims', codec);
    await claims.put('claim-1', 'placed on node-a');
    assert.equal((await claims.get('claim-1'))?.value, 'placed on node-a');
  });

  it("a node agent takes its own node's placements and publishes its own events", async () => {
    const runtime = await busOf('container-runtime-node-a');
    const seen: Event[] = [];
    consumers.push(await runtime.consume({ ...runtimeConsumers('node-a').placed, handler: async (event) => void seen.push(event) }));
    await until(
      () => seen.some((e) => e.payload?.$case === 'claimPlaced' && e.payload.claimPlaced.claimId === 'claim-1'),
      'the placement on node-a',
    );
    await runtime.publish({ $case: 'nodeHeartbeat', nodeHeartbeat: NodeHeartbeat.fromPartial({ node: { name: 'node-a' } }) }, 'node-a');
    const instances = await runtime.bucket('runtime-instances', codec);
    await instances.put('claim-1', 'running');
  });

  it("a node agent cannot publish a placement, take another node's, or read the scheduler's buckets", async () => {
    const runtime = await busOf('container-runtime-node-a');
    // Placements come from the scheduler only, even for its own node.
    await refused(runtime.publish(placement('node-a', 'forged'), 'node-a'));
    await refused(runtime.publish(placement('node-b', 'forged'), 'node-b'));
    // Another node's heartbeat is not its to send.
    await refused(
      runtime.publish({ $case: 'nodeHeartbeat', nodeHeartbeat: NodeHeartbeat.fromPartial({ node: { name: 'node-b' } }) }, 'node-b'),
    );
    // node-b's placements: not through node-b's durable, not through a durable of its own name
    // filtered on node-b, not by a plain subscription, not by reading the stream directly.
    const handler = async () => {};
    await refused(runtime.consume({ ...runtimeConsumers('node-b').placed, handler }));
    await refused(
      runtime.consume({
        durable: `${runtimeConsumers('node-a').placed.durable}2`,
        subject: runtimeConsumers('node-b').placed.subject,
        handler,
      }),
    );
    await refused(
      runtime.jsm.consumers.update(STREAM, runtimeConsumers('node-a').placed.durable, { filter_subject: `${eventSubjects.claimPlaced}.>` }),
    );
    await refused(
      runtime.nc.request(`$JS.API.STREAM.MSG.GET.${STREAM}`, new TextEncoder().encode(JSON.stringify({ seq: 1 })), { timeout: 5_000 }),
    );
    await refused(
      runtime.nc.request(`$JS.API.CONSUMER.MSG.NEXT.${STREAM}.${runtimeConsumers('node-b').placed.durable}`, undefined, { timeout: 5_000 }),
    );
    const other = await connect({
      servers: nats.url,
      tls: { caFile: nats.caFile! },
      user: 'container-runtime-node-a',
      pass: passwords.get('container-runtime-node-a')!,
    });
    connections.push(other);
    await refused(subscription(other, `${eventSubjects.claimPlaced}.node-b`));
    // Nor the replies to others: the scheduler's answers (claims, placements pulled) go to its own inbox.
    await refused(subscription(other, '_INBOX.>'));
    await refused(subscription(other, '_INBOX_scheduler.>'));
    // The scheduler's state.
    await refused(runtime.bucket('scheduler-claims', codec));
    await refused(runtime.nc.request('$JS.API.DIRECT.GET.KV_scheduler-claims.$KV.scheduler-claims.claim-1', undefined, { timeout: 5_000 }));
    await refused(
      runtime.nc.request(
        '$JS.API.STREAM.MSG.GET.KV_scheduler-claims',
        new TextEncoder().encode(JSON.stringify({ last_by_subj: '$KV.scheduler-claims.claim-1' })),
        { timeout: 5_000 },
      ),
    );
    // Nor change the event stream's settings (it may only create it as every service does).
    await refused(runtime.jsm.streams.update(STREAM, { max_age: 1_000_000_000 }));
  });

  it("the Slurm director sends preemption notices, and nothing of the scheduler's else", async () => {
    const director = await busOf('lapis-director');
    const notice: EventPayload = {
      $case: 'preemptionNotice',
      preemptionNotice: { instanceId: 'i-1', project: 'physics', node: 'node-a', forClaimId: '', gracePeriod: { seconds: 1, nanos: 0 } },
    };
    assert.ok((await director.publish(notice, 'node-a')).seq > 0);
    await refused(director.publish(placement('node-a', 'forged'), 'node-a'));
    await refused(director.bucket('scheduler-claims', codec));
  });

  it('a node agent starts against a stream with other settings, leaving them to the services that may change them', async () => {
    const scheduler = await busOf('scheduler');
    const day = 24 * 3600 * 1e9;
    await scheduler.jsm.streams.update(STREAM, { max_age: day });
    await busOf('container-runtime-node-b');
    assert.equal((await scheduler.jsm.streams.info(STREAM)).config.max_age, day);
    // A service allowed to brings them back.
    await busOf('tosca-orchestrator');
    assert.equal((await scheduler.jsm.streams.info(STREAM)).config.max_age, 7 * day);
  });

  it("one shared runtime user (the chart) still cannot publish placements nor take the other services' consumers", async function () {
    // A server of its own with the shared user, as the chart makes it.
    const shared = lapisAccess();
    const password = randomBytes(12).toString('hex');
    const server = await startNats({
      config: natsAuthorization(
        shared.map((access) => ({ access, password: { value: password } })),
        STREAM,
      ),
      tls: true,
    });
    try {
      const bus = await EventBus.connect({
        url: server.url,
        name: 'scheduler',
        stream: STREAM,
        log,
        caFile: server.caFile!,
        credentials: { user: 'scheduler', password },
      });
      buses.push(bus);
      const scheduler = await bus.consume({
        durable: 'scheduler-instance-state',
        subject: `${eventSubjects.instanceStateChanged}.>`,
        handler: async () => {},
      });
      consumers.push(scheduler);
      const runtime = await EventBus.connect({
        url: server.url,
        name: 'runtime',
        stream: STREAM,
        log,
        caFile: server.caFile!,
        credentials: { user: 'container-runtime', password },
      });
      buses.push(runtime);
      consumers.push(await runtime.consume({ ...runtimeConsumers('node-x').placed, handler: async () => {} }));
      await refused(runtime.publish(placement('node-x', 'forged'), 'node-x'));
      await refused(runtime.nc.request(`$JS.API.CONSUMER.MSG.NEXT.${STREAM}.scheduler-instance-state`, undefined, { timeout: 5_000 }));
      await refused(runtime.bucket('scheduler-claims', codec));
    } finally {
      await Promise.all(consumers.splice(0).map((c) => c.stop()));
      await Promise.all(buses.splice(0).map((b) => b.drain().catch(() => undefined)));
      await server.stop();
    }
  });
});
