// The deployment engine on real NATS (key-value records, JetStream events). The scheduler and
// the runtime are being built at the same time as this service, so a stand-in plays their part
// here (claims, volumes, and the instance_state_changed events the runtime publishes); the
// end-to-end tests against the real services come with the mesh. Everything else is real.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventBus, jsonCodec, type Bucket, type Lease } from '@lapis/platform';
import { natsUrl, sleep, testLog, unique, until } from '@lapis/platform/testing';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { InstanceStateChanged } from '@lapis/proto/lapis/events/v1/events';
import { DeploymentEngine } from '../../src/application/engine';
import type { ActAs, Ports } from '../../src/application/ports';
import { OperationStore, type OperationRecord } from '../../src/adapters/operations';
import type { DeploymentRecord } from '../../src/domain/deployment';
import type { AttachmentPlan, InstancePlan, VolumePlan } from '../../src/domain/plan';
import { processTemplate } from '../../src/domain/validate';
import { NodeState } from '@lapis/proto/lapis/tosca/v1/tosca';
import { toDeployment } from '../../src/server';
import { conformanceDir } from '../helpers';

/** Plays the scheduler and the runtime: ids for claims and volumes, state events on the bus. */
class StandIn implements Ports {
  calls: string[] = [];
  private n = 0;
  held = false;
  private readonly heldEvents: (() => Promise<void>)[] = [];
  failNode?: string;
  readonly instances = new Map<string, 'running' | 'error' | 'deleted'>();
  constructor(
    private readonly bus: EventBus,
    private readonly prefix: string,
  ) {}

  private async event(instanceId: string, state: InstanceState, ip = '') {
    const send = async () => {
      await this.bus.publish(
        {
          $case: 'instanceStateChanged',
          instanceStateChanged: InstanceStateChanged.fromPartial({
            instanceId,
            project: 'physics',
            node: 'node-1',
            state,
            addresses: ip ? [{ network: 'default', ip, mac: '' }] : [],
          }),
        },
        instanceId,
        `${instanceId}.${InstanceState[state]}`,
      );
    };
    if (this.held) this.heldEvents.push(send);
    else setTimeout(() => void send(), 20);
  }

  async release() {
    this.held = false;
    for (const send of this.heldEvents.splice(0)) await send();
  }

  /** While set, submissions wait for it (a submission still on its way). */
  gate?: Promise<void>;
  private readonly byRequest = new Map<string, string>();
  async submitClaim(spec: InstancePlan, requestId: string): Promise<string> {
    if (this.gate) await this.gate;
    // The same request id gives back the same claim, as the scheduler does.
    const earlier = this.byRequest.get(requestId);
    if (earlier) return earlier;
    const id = `${this.prefix}-claim-${++this.n}`;
    this.byRequest.set(requestId, id);
    this.calls.push(`submit ${spec.key}`);
    this.instances.set(id, spec.node === this.failNode ? 'error' : 'running');
    await this.event(id, spec.node === this.failNode ? InstanceState.ERROR : InstanceState.RUNNING, `10.0.0.${this.n}`);
    return id;
  }
  /** As the scheduler: a claim whose instance failed has ended, cancelling it changes nothing. */
  async cancelClaim(claimId: string): Promise<{ placed: boolean }> {
    this.calls.push(`cancel ${claimId}`);
    if (this.instances.get(claimId) === 'running') {
      this.instances.set(claimId, 'deleted');
      await this.event(claimId, InstanceState.DELETED);
    }
    return { placed: true };
  }
  /** As the runtime: an instance in ERROR stays until it is deleted. */
  async deleteInstance(instanceId: string): Promise<'deleted' | 'absent' | 'elsewhere'> {
    const state = this.instances.get(instanceId);
    if (state !== 'error') return state ? 'deleted' : 'absent';
    this.calls.push(`delete-instance ${instanceId}`);
    this.instances.set(instanceId, 'deleted');
    await this.event(instanceId, InstanceState.DELETED);
    return 'deleted';
  }
  async createVolume(spec: VolumePlan, _requestId: string, _as: ActAs, node?: string): Promise<string> {
    this.calls.push(`volume ${spec.key} on ${node ?? '?'}`);
    return `${this.prefix}-vol-${++this.n}`;
  }
  /** Volume deletions that fail before one succeeds (a runtime restarting). */
  volumeDeleteFailures = 0;
  async deleteVolume(volumeId: string): Promise<void> {
    this.calls.push(`delete-volume ${volumeId}`);
    if (this.volumeDeleteFailures-- > 0) throw new Error('runtime unavailable');
  }
  async attachVolume(_volumeId: string, _instanceId: string, spec: AttachmentPlan): Promise<void> {
    this.calls.push(`attach ${spec.key}`);
  }

  // These templates' operations are INDIGO's playbooks by URL: skipped, never run here
  // (lifecycle.test.ts runs scripts in real instances).
  async exec(): Promise<never> {
    throw new Error('no lifecycle operation runs against the stand-in');
  }
}

const galaxy = readFileSync(join(conformanceDir, 'indigo-galaxy-portal', 'template.yaml'), 'utf8');

describe('deployment engine (real NATS; scheduler and runtime played by a stand-in)', () => {
  let bus: EventBus;
  let deployments: Bucket<DeploymentRecord>;
  let index: Bucket<{ deployment: string; key: string }>;
  let operations: OperationStore;
  let leases: Bucket<Lease>;
  const engines: DeploymentEngine[] = [];

  const buckets: string[] = [];
  before(async () => {
    bus = await EventBus.connect({ url: natsUrl(), name: 'tosca-engine-test', stream: 'LAPIS', log: testLog });
  });
  // Each test is its own orchestrator: its own buckets (two engines on the same buckets would
  // be two replicas, sharing the work).
  beforeEach(async () => {
    deployments = await bus.bucket(unique('tosca-deployments'), jsonCodec<DeploymentRecord>());
    index = await bus.bucket(unique('tosca-instances'), jsonCodec<{ deployment: string; key: string }>());
    operations = new OperationStore(await bus.bucket(unique('tosca-operations'), jsonCodec<OperationRecord>()));
    leases = await bus.bucket(unique('tosca-leases'), jsonCodec<Lease>());
    buckets.push(deployments.name, index.name, operations.bucket.name, leases.name);
  });
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.stop()));
  });
  after(async () => {
    for (const name of buckets) await bus.jsm.streams.delete(`KV_${name}`).catch(() => undefined);
    await bus.drain();
  });

  const engine = async (ports: Ports, consumer: string, deletedRetentionMs?: number) => {
    const e = new DeploymentEngine({ deployments, index, operations, leases, ports, bus, log: testLog, consumer, deletedRetentionMs });
    await e.start();
    engines.push(e);
    return e;
  };

  const newRecord = (inputs: Record<string, unknown>, keepOnFailure = false) => {
    const result = processTemplate({ text: galaxy, inputs });
    assert.ok(result.valid);
    const id = unique('dep').toLowerCase();
    const now = new Date().toISOString();
    const record: DeploymentRecord = {
      id,
      project: 'physics',
      user: 'alice',
      template: { yaml: galaxy, fileName: 'template.yaml', files: {} },
      inputs,
      phase: 'PENDING',
      reason: '',
      keepOnFailure,
      requestId: '',
      createTime: now,
      updateTime: now,
      operation: `operations/tosca/${id}/0`,
      generation: 0,
      action: 'create',
      instances: {},
      volumes: {},
      attachments: {},
      nodes: result.topology!.order.map((n) => ({ name: n, type: result.topology!.nodes.get(n)!.type })),
      outputs: {},
    };
    return { record, topology: result.topology! };
  };
  const phase = (id: string, want: string, timeoutMs = 20_000) =>
    until(async () => ((await deployments.get(id))?.value.phase === want ? true : undefined), `deployment ${id} ${want}`, timeoutMs).catch(
      async (error: Error) => {
        const r = (await deployments.get(id))?.value;
        const summary = r && {
          phase: r.phase,
          reason: r.reason,
          action: r.action,
          instances: Object.fromEntries(Object.entries(r.instances).map(([k, i]) => [k, `${i.state} ${i.claimId ?? ''}`])),
          volumes: Object.fromEntries(Object.entries(r.volumes).map(([k, v]) => [k, v.state])),
        };
        throw new Error(`${error.message}: ${JSON.stringify(summary)}`);
      },
    );

  it('deploys in dependency order, resolves outputs, scales, and deletes in reverse order', async () => {
    const ports = new StandIn(bus, unique('a'));
    const e = await engine(ports, unique('tosca-test'));
    const { record, topology } = newRecord({ number_of_nodes: 2 });
    await e.create(record, topology);
    await phase(record.id, 'DEPLOYED');
    const vol = ports.calls.indexOf('volume export_storage-lrms_server-0 on node-1');
    const fe = ports.calls.indexOf('submit lrms_server-0');
    const wn = ports.calls.findIndex((c) => c.startsWith('submit wn_server'));
    assert.ok(fe >= 0 && wn > fe, `front end before workers: ${ports.calls.join(', ')}`);
    assert.ok(vol > fe, `the volume is made on the node its instance runs on, once it runs: ${ports.calls.join(', ')}`);
    assert.ok(ports.calls.indexOf('attach export_storage-lrms_server-0@lrms_server-0') > fe, 'attached after the instance runs');
    const deployed = toDeployment((await deployments.get(record.id))!.value);
    assert.match(String(deployed.outputs?.galaxy_url), /^http:\/\/10\.0\.0\.\d+\/galaxy$/);
    assert.equal(deployed.outputs?.lrms_type, 'slurm');
    assert.equal(deployed.nodes.find((n) => n.name === 'wn_server')!.instanceIds.length, 2);

    // Scale out: only the new worker is submitted.
    const before = ports.calls.length;
    await e.update(record.id, (r) => {
      r.inputs = { number_of_nodes: 3 };
      return processTemplate({ text: galaxy, inputs: r.inputs }).topology!;
    });
    await phase(record.id, 'DEPLOYED');
    assert.deepEqual(ports.calls.slice(before), ['submit wn_server-2']);
    assert.equal(toDeployment((await deployments.get(record.id))!.value).outputs?.galaxy_admin, 'admin@example.org');

    // New inputs: the outputs follow them (not the topology read for an earlier generation).
    await e.update(record.id, (r) => {
      r.inputs = { number_of_nodes: 3, admin_email: 'root@example.org' };
      return processTemplate({ text: galaxy, inputs: r.inputs }).topology!;
    });
    await phase(record.id, 'DEPLOYED');
    assert.equal(toDeployment((await deployments.get(record.id))!.value).outputs?.galaxy_admin, 'root@example.org');

    // Scale in: the node shows the instance that stays, STARTED (the removed ones are history).
    await e.update(record.id, (r) => {
      r.inputs = { number_of_nodes: 1, admin_email: 'root@example.org' };
      return processTemplate({ text: galaxy, inputs: r.inputs }).topology!;
    });
    await phase(record.id, 'DEPLOYED');
    const workers = toDeployment((await deployments.get(record.id))!.value).nodes.find((n) => n.name === 'wn_server')!;
    assert.equal(workers.instanceIds.length, 1, 'one worker left');
    assert.equal(workers.state, NodeState.STARTED);

    // Delete: workers before the front end, the volume after the instance it was attached to.
    const mark = ports.calls.length;
    await e.delete(record.id);
    await phase(record.id, 'DELETED');
    const done = ports.calls.slice(mark);
    const ids = (await deployments.get(record.id))!.value.instances;
    const claim = (key: string) => ids[key]!.claimId!;
    const at = (c: string) => done.indexOf(c);
    assert.ok(at(`cancel ${claim('wn_server-0')}`) < at(`cancel ${claim('lrms_server-0')}`), `reverse order: ${done.join(', ')}`);
    assert.ok(
      at(`cancel ${claim('lrms_server-0')}`) < done.findIndex((c) => c.startsWith('delete-volume')),
      `volume last: ${done.join(', ')}`,
    );
  });

  it('tries a deletion step that fails up to four times: a brief failure is no failure, a lasting one fails the deletion', async () => {
    const ports = new StandIn(bus, unique('d'));
    const e = await engine(ports, unique('tosca-test'));
    const brief = newRecord({ number_of_nodes: 1 });
    const lasting = newRecord({ number_of_nodes: 1 });
    for (const d of [brief, lasting]) await e.create(d.record, d.topology);
    for (const d of [brief, lasting]) await phase(d.record.id, 'DEPLOYED');
    const deletes = (mark: number) => ports.calls.slice(mark).filter((c) => c.startsWith('delete-volume')).length;

    let mark = ports.calls.length;
    ports.volumeDeleteFailures = 2;
    await e.delete(brief.record.id);
    await phase(brief.record.id, 'DELETED');
    assert.equal(deletes(mark), 3);

    // (The loop may be run again at once, for the events of the cancelled claims: more tries.)
    mark = ports.calls.length;
    ports.volumeDeleteFailures = Infinity;
    await e.delete(lasting.record.id);
    await phase(lasting.record.id, 'FAILED');
    assert.ok(deletes(mark) >= 4, ports.calls.slice(mark).join(', '));
    assert.match((await deployments.get(lasting.record.id))!.value.reason, /failed: runtime unavailable/);
  });

  it('removes the records of a deleted deployment once its retention has passed, and nothing else', async () => {
    const ports = new StandIn(bus, unique('r'));
    const e = await engine(ports, unique('tosca-test'), 60_000);
    const gone = newRecord({ number_of_nodes: 1 });
    const kept = newRecord({ number_of_nodes: 1 });
    for (const d of [gone, kept]) await e.create(d.record, d.topology);
    for (const d of [gone, kept]) await phase(d.record.id, 'DEPLOYED');
    await e.delete(gone.record.id);
    await phase(gone.record.id, 'DELETED');
    const claims = Object.values((await deployments.get(gone.record.id))!.value.instances).map((i) => i.claimId!);
    assert.ok(claims.length > 0);
    // Within the retention: everything still readable.
    assert.deepEqual(await e.sweep(), []);
    assert.equal((await operations.get(`operations/tosca/${gone.record.id}/1`))?.phase, 'DELETED');
    // After it: the deployment, both its operations and its index entries are gone; the other stays whole.
    assert.deepEqual(await e.sweep(Date.now() + 60_000), [gone.record.id]);
    assert.equal(await deployments.get(gone.record.id), undefined);
    assert.equal(await operations.get(`operations/tosca/${gone.record.id}/0`), undefined);
    assert.equal(await operations.get(`operations/tosca/${gone.record.id}/1`), undefined);
    for (const claim of claims) assert.equal(await index.get(claim), undefined, `index entry of ${claim}`);
    assert.equal((await deployments.get(kept.record.id))?.value.phase, 'DEPLOYED');
    assert.equal((await operations.get(`operations/tosca/${kept.record.id}/0`))?.done, true);
    assert.ok((await index.list()).some((entry) => entry.value.deployment === kept.record.id));
  });

  it('a restarted orchestrator resumes a deployment it had started', async () => {
    const ports = new StandIn(bus, unique('b'));
    ports.held = true;
    const consumer = unique('tosca-test');
    const first = await engine(ports, consumer);
    const { record, topology } = newRecord({ number_of_nodes: 1 });
    await first.create(record, topology);
    await until(() => ports.calls.includes('submit lrms_server-0') || undefined, 'front end submitted');
    await first.idle(record.id);
    await first.stop();
    // The runtime reports while no orchestrator runs; the new one takes the events from its durable consumer.
    await ports.release();
    const second = await engine(ports, consumer);
    await phase(record.id, 'DEPLOYED');
    assert.equal(ports.calls.filter((c) => c === 'submit lrms_server-0').length, 1, 'not submitted twice');
    await second.delete(record.id);
    await phase(record.id, 'DELETED');
  });

  it('two replicas: a deployment under way is driven by one of them; a deletion sent to the other is done by the one driving it', async () => {
    const consumer = unique('tosca-test');
    const ports = new StandIn(bus, unique('a'));
    ports.held = true; // the runtime's events wait: the deployment stays under way on the first replica
    // Both replicas call the same scheduler and runtime; who called is noted.
    const callers: string[] = [];
    const via = (replica: string): Ports =>
      new Proxy(ports, {
        get: (target, name, receiver) => {
          const value = Reflect.get(target, name, receiver);
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            callers.push(replica);
            return value.apply(target, args);
          };
        },
      });
    const [a, b] = [await engine(via('a'), consumer), await engine(via('b'), consumer)];
    const { record, topology } = newRecord({ number_of_nodes: 2 });
    await a.create(record, topology);
    await until(() => ports.calls.includes('submit lrms_server-0') || undefined, 'front end submitted');
    await b.delete(record.id);
    await ports.release();
    await phase(record.id, 'DELETED');
    assert.ok(callers.length > 0 && callers.every((c) => c === 'a'), `only the replica driving it called: ${callers.join(',')}`);
    assert.equal(ports.calls.filter((c) => c.startsWith('submit')).length, 1, 'nothing more submitted after the deletion');
    assert.deepEqual(await leases.keys(), [], 'a resting deployment holds no lease');
  });

  it('two replicas: when the one driving a deployment loses NATS, the other takes it over once its lease runs out; nothing is submitted twice', async function () {
    this.timeout(90_000);
    const consumer = unique('tosca-test');
    const ports = new StandIn(bus, unique('c'));
    ports.held = true; // the runtime's events wait: the deployment cannot finish on the first replica
    // The first replica on a connection of its own, cut below (as a crash or a partition would).
    const own = await EventBus.connect({ url: natsUrl(), name: 'tosca-engine-test-a', stream: 'LAPIS', log: testLog });
    const reopen = <T>(b: Bucket<T>) => own.bucket(b.name, jsonCodec<T>());
    const first = new DeploymentEngine({
      deployments: await reopen(deployments),
      index: await reopen(index),
      operations: new OperationStore(await reopen(operations.bucket)),
      leases: await reopen(leases),
      ports,
      bus: own,
      log: testLog,
      consumer,
      replica: 'first',
      leaseMs: 2_000,
    });
    try {
      await first.start();
      const second = new DeploymentEngine({
        deployments,
        index,
        operations,
        leases,
        ports,
        bus,
        log: testLog,
        consumer,
        replica: 'second',
        leaseMs: 2_000,
      });
      await second.start();
      engines.push(second);
      const { record, topology } = newRecord({ number_of_nodes: 1 });
      await first.create(record, topology);
      await until(() => ports.calls.includes('submit lrms_server-0') || undefined, 'front end submitted');
      assert.equal((await leases.get(record.id))?.value.holder, 'first', 'the first replica drives it');
      await own.nc.close();
      await ports.release();
      // An event the first replica took before its connection went comes again once its ack wait (10 s) is over.
      await phase(record.id, 'DEPLOYED', 40_000);
      for (const key of ['lrms_server-0', 'wn_server-0'])
        assert.equal(ports.calls.filter((c) => c === `submit ${key}`).length, 1, `${key} submitted once`);
      await second.delete(record.id);
      await phase(record.id, 'DELETED');
    } finally {
      await first.stop().catch(() => undefined);
      await own.nc.close().catch(() => undefined);
    }
  });

  it('a failed instance fails the deployment with its cause and rolls back what was made', async () => {
    const ports = new StandIn(bus, unique('c'));
    ports.failNode = 'wn_server';
    const e = await engine(ports, unique('tosca-test'));
    const { record, topology } = newRecord({ number_of_nodes: 1 });
    await e.create(record, topology);
    await phase(record.id, 'FAILED');
    const failed = (await deployments.get(record.id))!.value;
    assert.match(failed.reason, /instance wn_server-0 \(node wn_server\) failed/);
    await until(
      async () => Object.values((await deployments.get(record.id))!.value.instances).every((i) => i.state === 'deleted') || undefined,
      'rolled back',
    );
    assert.ok(
      ports.calls.some((c) => c.startsWith('delete-volume')),
      'volume removed',
    );
  });

  it('keep_on_failure keeps what was made', async () => {
    const ports = new StandIn(bus, unique('d'));
    ports.failNode = 'wn_server';
    const e = await engine(ports, unique('tosca-test'));
    const { record, topology } = newRecord({ number_of_nodes: 1 }, true);
    await e.create(record, topology);
    await phase(record.id, 'FAILED');
    await sleep(300);
    await e.idle(record.id);
    assert.ok(!ports.calls.some((c) => c.startsWith('cancel')), `nothing cancelled: ${ports.calls.join(', ')}`);
  });

  const everythingGone = async (id: string) => {
    const r = (await deployments.get(id))!.value;
    assert.deepEqual(
      Object.entries(r.instances)
        .filter(([, i]) => i.state !== 'deleted')
        .map(([k]) => k),
      [],
      'every instance deleted',
    );
    assert.deepEqual(
      Object.entries(r.volumes)
        .filter(([, v]) => v.state !== 'deleted')
        .map(([k]) => k),
      [],
      'every volume deleted',
    );
  };

  it('deleting a FAILED deployment kept on failure removes what it made, the failed instance too, and ends DELETED', async () => {
    const ports = new StandIn(bus, unique('e'));
    ports.failNode = 'wn_server';
    const e = await engine(ports, unique('tosca-test'));
    const { record, topology } = newRecord({ number_of_nodes: 1 }, true);
    await e.create(record, topology);
    await phase(record.id, 'FAILED');
    await e.idle(record.id);
    const failed = (await deployments.get(record.id))!.value;
    const wn = failed.instances['wn_server-0']!.claimId!;
    const fe = failed.instances['lrms_server-0']!.claimId!;
    const mark = ports.calls.length;
    const deleting = (await e.delete(record.id))!;
    await phase(record.id, 'DELETED');
    await everythingGone(record.id);
    // The creation's operation ended with the failure, the deletion's with DELETED.
    const created = (await operations.get(record.operation))!;
    assert.deepEqual([created.kind, created.done, created.phase, created.error?.code], ['tosca.CreateDeployment', true, 'FAILED', 9]);
    assert.match(created.error!.message, /instance wn_server-0/);
    assert.notEqual(deleting.operation, record.operation);
    await until(async () => (await operations.get(deleting.operation))?.done || undefined, 'the deletion operation done');
    const deletion = (await operations.get(deleting.operation))!;
    assert.deepEqual([deletion.kind, deletion.phase, deletion.error], ['tosca.DeleteDeployment', 'DELETED', undefined]);
    const done = ports.calls.slice(mark);
    // The failed instance's claim has ended: the runtime is asked to remove the instance itself.
    assert.ok(done.includes(`delete-instance ${wn}`), done.join(', '));
    assert.ok(done.indexOf(`cancel ${wn}`) < done.indexOf(`cancel ${fe}`), `reverse order: ${done.join(', ')}`);
    assert.ok(done.indexOf(`cancel ${fe}`) < done.findIndex((c) => c.startsWith('delete-volume')), `volume last: ${done.join(', ')}`);
  });

  it('deleting a FAILED deployment that was rolled back ends DELETED', async () => {
    const ports = new StandIn(bus, unique('f'));
    ports.failNode = 'wn_server';
    const e = await engine(ports, unique('tosca-test'));
    const { record, topology } = newRecord({ number_of_nodes: 1 });
    await e.create(record, topology);
    await phase(record.id, 'FAILED');
    const deleted = await e.delete(record.id);
    assert.equal(deleted?.phase, 'DELETING');
    await phase(record.id, 'DELETED');
    await everythingGone(record.id);
    const wn = (await deployments.get(record.id))!.value.instances['wn_server-0']!.claimId!;
    assert.ok(ports.calls.includes(`delete-instance ${wn}`), ports.calls.join(', '));
  });

  /** A one-node deployment whose claim submissions hold until release(), once its front end is being submitted. */
  async function createHeld(tag: string) {
    const ports = new StandIn(bus, unique(tag));
    const e = await engine(ports, unique('tosca-test'));
    const { record, topology } = newRecord({ number_of_nodes: 1 });
    let open!: () => void;
    ports.gate = new Promise((resolve) => (open = resolve));
    await e.create(record, topology);
    await until(
      async () => ((await deployments.get(record.id))?.value.instances['lrms_server-0']?.state === 'submitted' ? true : undefined),
      'front end submitting',
    );
    const release = () => {
      ports.gate = undefined;
      open();
    };
    return { ports, e, record, release };
  }

  it('a deployment still being created can be deleted: what was in flight is removed once it answers', async () => {
    const { ports, e, record, release } = await createHeld('g');
    const deleting = await e.delete(record.id);
    assert.equal(deleting?.phase, 'DELETING');
    // The creation still running is taken over by the deletion.
    const superseded = (await operations.get(record.operation))!;
    assert.deepEqual([superseded.done, superseded.error?.code], [true, 10]);
    assert.match(superseded.error!.message, /superseded by tosca.DeleteDeployment/);
    release();
    await phase(record.id, 'DELETED');
    await everythingGone(record.id);
    const r = (await deployments.get(record.id))!.value;
    const fe = r.instances['lrms_server-0']!.claimId!;
    assert.ok(fe, 'the claim submitted meanwhile is recorded');
    assert.ok(ports.calls.includes(`cancel ${fe}`), `and cancelled: ${ports.calls.join(', ')}`);
    assert.ok(!ports.calls.some((c) => c.startsWith('submit wn_server')), `nothing more submitted: ${ports.calls.join(', ')}`);
  });

  it('cancelling a creation stops it and removes what it made; its operation ends CANCELLED', async () => {
    const { ports, e, record, release } = await createHeld('h');
    const cancelled = await e.cancel(record.id);
    assert.equal(cancelled?.phase, 'FAILED');
    release();
    await until(async () => {
      const r = (await deployments.get(record.id))!.value;
      return Object.values(r.instances).every((i) => i.state === 'deleted') && Object.values(r.volumes).every((v) => v.state === 'deleted')
        ? true
        : undefined;
    }, 'rolled back');
    const r = (await deployments.get(record.id))!.value;
    assert.deepEqual([r.phase, r.reason], ['FAILED', 'cancelled']);
    assert.ok(ports.calls.includes(`cancel ${r.instances['lrms_server-0']!.claimId}`), ports.calls.join(', '));
    const op = (await operations.get(record.operation))!;
    assert.deepEqual([op.done, op.error?.code], [true, 1]);
    assert.equal(await e.cancel(record.id), undefined, 'nothing more to cancel');
  });
});
