// The gRPC API against a real scheduler on real NATS: validation naming fields, the only
// refusal (larger than the project's whole quota), request_id idempotency, project scoping,
// admin-only calls, explanations (sprio, sshare), flavors and partitions.
import { strict as assert } from 'node:assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { errorDetails } from '@lapis/platform';
import { ClaimState, PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { until } from '@lapis/platform/testing';
import type { RunningScheduler } from '../../src/wiring';
import { client, startTestScheduler, unique, type Api } from './harness';

const submit = (c: Api, over: Parameters<Api['submitClaim']>[0] = {}) =>
  c.submitClaim({ spec: { name: 'vm', flavor: 'm1.small', image: 'lapis/base:1' }, ...over });

async function failure(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error('the call succeeded');
}

describe('scheduler gRPC API (real NATS, real gRPC)', () => {
  let running: RunningScheduler;
  let alice: Api;
  let bob: Api;
  let root: Api;

  before(async () => {
    running = await startTestScheduler(unique('sched').toLowerCase());
    const address = `127.0.0.1:${running.port}`;
    alice = client(address, 'alice-token', 'physics');
    bob = client(address, 'bob-token');
    root = client(address, 'root-token');
  });
  after(async () => {
    for (const c of [alice, bob, root]) c.close();
    await running.shutdown.run('test over');
  });

  it('queues a claim with a pending reason instead of refusing it, and fills resources from the flavor', async () => {
    const { claim } = await submit(alice);
    assert.ok(claim?.id);
    assert.equal(claim.project, 'physics');
    assert.equal(claim.user, 'alice');
    assert.equal(claim.state, ClaimState.PENDING);
    assert.equal(claim.spec?.resources?.cpuMillis, 1000);
    // No node exists: a cycle says so.
    const got = await until(async () => {
      const c = (await alice.getClaim({ claimId: claim.id })).claim;
      return c?.pendingReason === PendingReason.NO_MATCHING_NODE && c;
    }, 'a pending reason from a cycle');
    assert.match(got.reasonDetail, /no ready node/);
    assert.ok(got.priority > 0 && got.priority <= 1);
  });

  it('names the fields of invalid input', async () => {
    const error = await failure(submit(alice, { spec: { name: 'Bad_Name', flavor: 'm9.nothing', image: '' }, qos: 'platinum' }));
    assert.equal(error.code, status.INVALID_ARGUMENT);
    const fields = errorDetails(error)
      .violations.map((v) => v.field)
      .sort();
    assert.deepEqual(fields, ['qos', 'spec.flavor', 'spec.image', 'spec.name']);
    const missing = await failure(alice.submitClaim({}));
    assert.equal(missing.code, status.INVALID_ARGUMENT);
    assert.match(missing.details, /spec: required/);
  });

  it('applies the runtime’s spec rules (shared validateInstanceSpec): reserved label keys, LAPIS_* variables', async () => {
    const error = await failure(
      submit(alice, {
        spec: {
          name: 'vm',
          flavor: 'm1.small',
          image: 'lapis/base:1',
          labels: { 'lapis.instance-id': 'x', 'kubernetes.io/role': 'y', team: 'ok' },
          environment: { LAPIS_TOKEN: 'z' },
        },
      }),
    );
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.deepEqual(
      errorDetails(error)
        .violations.map((v) => v.field)
        .sort(),
      ['spec.environment[LAPIS_TOKEN]', 'spec.labels[kubernetes.io/role]', 'spec.labels[lapis.instance-id]'],
    );
    // No name is fine here: the claim gets one from its id.
    const { claim } = await submit(alice, { spec: { name: '', flavor: 'm1.small', image: 'lapis/base:1', labels: { team: 'ok' } } });
    assert.equal(claim?.spec?.name, `i-${claim!.id.slice(0, 8)}`);
  });

  it('counts the GPUs of device requests (cdi_names, ids, count) beside the flavor’s, for room and quotas', async () => {
    const gpu = (over: object) => ({ kind: 1, vendor: '', count: 0, ids: [], cdiNames: [], ...over });
    const gpus = async (flavor: string, devices: object[]) =>
      (await submit(alice, { spec: { name: 'gpu', flavor, image: 'lapis/base:1', devices } as never })).claim?.spec?.resources?.gpus;
    assert.equal(await gpus('m1.small', [gpu({ cdiNames: ['nvidia.com/gpu=GPU-1', 'nvidia.com/gpu=GPU-2'] })]), 2);
    assert.equal(await gpus('m1.small', [gpu({ ids: ['GPU-1'] })]), 1);
    assert.equal(await gpus('m1.small', [gpu({ count: 3 })]), 3);
    assert.equal(await gpus('g1.small', []), 1, 'a GPU flavor as before');
    assert.equal(await gpus('g1.small', [gpu({ cdiNames: ['nvidia.com/gpu=GPU-1'] })]), 2, 'the flavor’s and one more');
  });

  it('takes host ports only from the site range (LAPIS_HOST_PORTS): none by default', async () => {
    const ports = (hostPort: number) => ({
      spec: { name: 'web', flavor: 'm1.small', image: 'lapis/base:1', ports: [{ containerPort: 80, hostPort, protocol: 1 }] },
    });
    for (const hostPort of [80, 0]) {
      const none = await failure(submit(alice, ports(hostPort)));
      assert.equal(none.code, status.INVALID_ARGUMENT);
      assert.deepEqual(
        errorDetails(none).violations.map((v) => v.field),
        ['spec.ports[0].host_port'],
      );
      assert.match(none.details, /publishes no host ports/);
    }
    const ranged = await startTestScheduler(unique('sched').toLowerCase(), { LAPIS_HOST_PORTS: '30000-30010' });
    const carol = client(`127.0.0.1:${ranged.port}`, 'alice-token', 'physics');
    try {
      for (const hostPort of [80, 29_999, 30_011]) {
        const outside = await failure(submit(carol, ports(hostPort)));
        assert.equal(outside.code, status.INVALID_ARGUMENT);
        assert.match(outside.details, new RegExp(`spec\\.ports\\[0\\]\\.host_port.*${hostPort} is outside this site's range 30000-30010`));
      }
      assert.equal((await submit(carol, ports(30_010))).claim?.spec?.ports[0]?.hostPort, 30_010);
      assert.ok((await submit(carol, ports(0))).claim?.id, '0: the node picks one of its range');
    } finally {
      carol.close();
      await ranged.shutdown.run('test over');
    }
  });

  it('refuses only a claim larger than its project’s whole quota', async () => {
    await root.setQuota({ quota: { project: 'physics', maxInstances: 10, maxResources: { cpuMillis: 2000 } } });
    const error = await failure(submit(alice, { spec: { name: 'big', flavor: 'm1.large', image: 'lapis/base:1' } }));
    assert.equal(error.code, status.FAILED_PRECONDITION);
    assert.equal(errorDetails(error).errorInfo?.reason, 'LARGER_THAN_QUOTA');
    const quota = (await alice.getQuota({})).quota;
    assert.equal(quota?.maxResources?.cpuMillis, 2000);
    await root.setQuota({ quota: { project: 'physics' } });
  });

  it('keeps request_id idempotent', async () => {
    const requestId = unique('req');
    const first = await submit(alice, { requestId });
    const again = await submit(alice, { requestId });
    assert.equal(again.claim?.id, first.claim?.id);
    // The same key in another project is another claim.
    const other = await submit(bob, { requestId });
    assert.notEqual(other.claim?.id, first.claim?.id);
    const cancelled = await alice.cancelClaim({ claimId: first.claim!.id, requestId: 'c1' });
    assert.equal(cancelled.claim?.state, ClaimState.CANCELLED);
    const twice = await alice.cancelClaim({ claimId: first.claim!.id, requestId: 'c1' });
    assert.equal(twice.claim?.state, ClaimState.CANCELLED);
  });

  it('scopes claims to the caller’s project; admins see all', async () => {
    const mine = (await submit(alice)).claim!;
    const error = await failure(bob.getClaim({ claimId: mine.id }));
    assert.equal(error.code, status.NOT_FOUND);
    const bobs = (await bob.listClaims({})).claims;
    assert.ok(bobs.every((c) => c.project === 'biology'));
    const denied = await failure(bob.listClaims({ project: 'physics' }));
    assert.equal(denied.code, status.PERMISSION_DENIED);
    const all = (await root.listClaims({ pageSize: 1000 })).claims;
    assert.ok(all.some((c) => c.project === 'physics') && all.some((c) => c.project === 'biology'));
    const paged = await root.listClaims({ pageSize: 1, orderByPriority: true });
    assert.equal(paged.claims.length, 1);
    assert.ok(paged.nextPageToken);
  });

  it('keeps admin calls for admins', async () => {
    const error = await failure(alice.setQuota({ quota: { project: 'physics', maxInstances: 1 } }));
    assert.equal(error.code, status.PERMISSION_DENIED);
    const move = await failure(root.moveNode({ node: 'nowhere', toPartition: 'batch' }));
    assert.equal(move.code, status.NOT_FOUND);
    const invalid = await failure(root.setAccount({ account: '', parent: 'missing' }));
    assert.equal(invalid.code, status.INVALID_ARGUMENT);
    assert.deepEqual(
      errorDetails(invalid).violations.map((v) => v.field),
      ['account', 'parent'],
    );
  });

  it('explains priorities (sprio) and fair share (sshare)', async () => {
    await root.setAccount({ account: 'physics', shares: 70, userShares: { alice: 2 } });
    await root.setAccount({ account: 'biology', shares: 30 });
    const claim = (await submit(alice)).claim!;
    const prio = await until(async () => {
      const r = await alice.getPriority({ claimIds: [claim.id] });
      return r.priorities[0]?.factors && r;
    }, 'the claim to have a priority');
    const f = prio.priorities[0]!.factors!;
    assert.ok(Math.abs(f.weightedAge + f.weightedFairShare + f.weightedJobSize + f.weightedPartition + f.weightedQos - f.priority) < 1e-9);
    assert.ok(prio.weights!.fairShare > 0);
    const share = await root.getFairShare({});
    const physics = share.entries.find((e) => e.account === 'physics' && e.user === '');
    assert.equal(physics?.rawShares, 70);
    assert.ok(Math.abs(physics!.normShares - 0.7) < 1e-9);
    assert.equal(share.entries.find((e) => e.account === 'physics' && e.user === 'alice')?.rawShares, 2);
    const own = await bob.getFairShare({});
    assert.ok(own.entries.length > 0 && own.entries.every((e) => e.account === 'biology'));
  });

  it("refuses a claim for a closed partition (the batch system's nodes), naming the field", async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sched-closed-')), 'scheduler.yaml');
    writeFileSync(file, 'partitions:\n  - { name: default }\n  - { name: slurm-batch, closed: true }\n');
    const closed = await startTestScheduler(unique('closed').toLowerCase(), { LAPIS_SCHEDULER_CONFIG_FILE: file });
    const c = client(`127.0.0.1:${closed.port}`, 'alice-token', 'physics');
    try {
      const error = await failure(submit(c, { partition: 'slurm-batch' }));
      assert.equal(error.code, status.INVALID_ARGUMENT);
      assert.deepEqual(
        errorDetails(error).violations.map((v) => [v.field, v.description]),
        [['partition', 'partition slurm-batch takes no claims: its nodes belong to the batch system']],
      );
      assert.equal((await c.listPartitions({})).partitions.find((p) => p.name === 'slurm-batch')?.closed, true);
      assert.ok((await submit(c)).claim?.id, 'the default partition still takes claims');
    } finally {
      c.close();
      await closed.shutdown.run('test over');
    }
  });

  it('lists flavors and partitions', async () => {
    const flavors = (await alice.listFlavors({})).flavors.map((f) => f.name);
    assert.ok(flavors.includes('m1.small') && flavors.includes('g1.small'));
    const partitions = (await alice.listPartitions({})).partitions.map((p) => p.name);
    assert.ok(partitions.includes('default'));
  });
});
