// The scheduler is the tenants' only door (DESIGN.md, "Identity and tenancy"): on the real
// services, a tenant's direct create or growth at the runtime is refused and leaves nothing,
// the same work through SubmitClaim is placed and counted against the quota, and an instance
// that runs again after a crash is counted again.
import { strict as assert } from 'node:assert';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { createClient, errorDetails } from '@lapis/platform';
import { until } from '@lapis/platform/testing';
import { InstanceSpec, InstanceState, Resources } from '@lapis/proto/lapis/common/v1/common';
import type { CreateInstanceResponse, GetInstanceResponse, ListInstancesResponse } from '@lapis/proto/lapis/runtime/v1/runtime';
import { RuntimeServiceClient } from '@lapis/proto/lapis/runtime/v1/runtime_service';
import {
  ClaimState,
  PendingReason,
  Quota,
  type Claim,
  type GetClaimResponse,
  type GetQuotaResponse,
  type SubmitClaimResponse,
} from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import { docker } from '@lapis/testenv';
import { startMesh, type Mesh } from '../src/mesh';

type Unary<Res> = (metadata: Metadata, callback: (error: ServiceError | null, response: Res) => void) => unknown;
const unary = <Res>(invoke: Unary<Res>) =>
  new Promise<Res>((resolve, reject) => invoke(new Metadata(), (error, response) => (error ? reject(error) : resolve(response))));

async function denied(call: Promise<unknown>, pattern: RegExp): Promise<void> {
  const error = await call.then(
    () => assert.fail('expected PERMISSION_DENIED, but the call succeeded'),
    (e: ServiceError) => e,
  );
  assert.equal(error.code, status.PERMISSION_DENIED, error.message);
  assert.match(error.details, pattern);
  assert.equal(errorDetails(error).errorInfo?.reason, 'USE_SCHEDULER');
}

describe('the scheduler is the only door for tenants (the real services)', function () {
  this.timeout(300_000);
  let mesh: Mesh;
  const closers: Array<{ close(): void }> = [];
  const as = (token: string, project: string) => {
    const scheduler = createClient(SchedulerServiceClient, mesh.addresses.scheduler!, { token, project });
    const runtime = createClient(RuntimeServiceClient, mesh.addresses['container-runtime']!, { token, project, deadlineMs: 60_000 });
    closers.push(scheduler, runtime);
    return { scheduler, runtime };
  };
  const spec = (name: string, extra: Partial<InstanceSpec> = {}) =>
    InstanceSpec.fromPartial({
      name,
      flavor: 'm1.tiny',
      image: mesh.images[0]!,
      command: ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done'],
      ...extra,
    });
  const submit = (scheduler: SchedulerServiceClient, s: InstanceSpec) =>
    unary<SubmitClaimResponse>((m, cb) =>
      scheduler.submitClaim(
        { spec: s, preemptible: false, onPreemption: 0, partition: '', backend: 0, antiAffinityGroup: '', qos: '', requestId: '' },
        m,
        cb,
      ),
    ).then((r) => r.claim!);
  const claimOf = async (scheduler: SchedulerServiceClient, id: string): Promise<Claim> =>
    (await unary<GetClaimResponse>((m, cb) => scheduler.getClaim({ claimId: id }, m, cb))).claim!;
  const quotaOf = async (scheduler: SchedulerServiceClient, project: string): Promise<Quota> =>
    (await unary<GetQuotaResponse>((m, cb) => scheduler.getQuota({ project }, m, cb))).quota!;
  // This mesh's node only: the Docker engine is shared with other tests.
  const containersOf = async (label: string) =>
    (await docker(['ps', '-aq', '--filter', `label=lapis.node=${mesh.nodeName}`, '--filter', `label=${label}`]))
      .split('\n')
      .filter(Boolean);
  const cpuQuotaOf = async (container: string) => Number(await docker(['inspect', '-f', '{{.HostConfig.CpuQuota}}', container]));

  before(async () => {
    // A 2-CPU node, as in the report.
    mesh = await startMesh({
      services: ['image-sync', 'scheduler', 'container-runtime'],
      serviceEnv: { 'container-runtime': { LAPIS_NODE_CPU_MILLIS: '2000', LAPIS_STOP_TIMEOUT_S: '2' } },
    });
  });
  after(async () => {
    for (const c of closers) c.close();
    await mesh?.stop();
  });

  it("refuses a tenant's direct create and growth, leaving nothing; the same through SubmitClaim is placed and counted", async () => {
    const alice = as('alice-token', 'physics');
    const admin = as('admin-token', 'physics');
    await unary((m, cb) => admin.scheduler.setQuota({ quota: Quota.fromPartial({ project: 'physics', maxInstances: 1 }) }, m, cb));
    const direct = (s: InstanceSpec) =>
      unary<CreateInstanceResponse>((m, cb) =>
        alice.runtime.createInstance({ instanceId: '', spec: s, preemptible: false, requestId: '' }, m, cb),
      );

    // 64 CPUs, 100 GiB and 4M pids on a 2-CPU node, then three creates under a quota of 1.
    const huge = spec('huge', {
      flavor: '',
      resources: Resources.fromPartial({ cpuMillis: 64_000, memoryBytes: 100 * 2 ** 30, pids: 4_000_000 }),
    });
    for (const s of [huge, spec('direct-1'), spec('direct-2'), spec('direct-3')])
      await denied(direct(s), /submit a claim to the scheduler instead \(SubmitClaim/);
    const { instances } = await unary<ListInstancesResponse>((m, cb) =>
      admin.runtime.listInstances({ pageSize: 100, pageToken: '', project: 'physics', state: 0, node: '' }, m, cb),
    );
    assert.deepEqual(instances, [], 'no instance record');
    assert.deepEqual(await containersOf('lapis.project=physics'), [], 'no container');
    assert.equal((await quotaOf(alice.scheduler, 'physics')).usedInstances, 0);

    // Through the scheduler: placed, run, counted; a second claim waits for the quota.
    const first = await submit(alice.scheduler, spec('door-1'));
    await until(
      async () => ((await claimOf(alice.scheduler, first.id)).instanceState === InstanceState.RUNNING ? true : undefined),
      'the claim to run',
      90_000,
    );
    const used = await quotaOf(alice.scheduler, 'physics');
    assert.equal(used.usedInstances, 1);
    assert.equal(used.usedResources?.cpuMillis, 500);
    const second = await submit(alice.scheduler, spec('door-2'));
    const waiting = await until(
      async () => {
        const c = await claimOf(alice.scheduler, second.id);
        return c.pendingReason !== PendingReason.NEW ? c : undefined;
      },
      'a cycle to look at the second claim',
      30_000,
    );
    assert.equal(waiting.state, ClaimState.PENDING);
    assert.equal(waiting.pendingReason, PendingReason.QUOTA_EXCEEDED);

    // Growing the placed instance at the runtime: refused, nothing changes; shrinking is fine.
    const placed = (await unary<GetInstanceResponse>((m, cb) => alice.runtime.getInstance({ instanceId: first.id }, m, cb))).instance!;
    assert.equal(await cpuQuotaOf(placed.backendId), 50_000);
    await denied(
      unary((m, cb) =>
        alice.runtime.resizeInstance({ instanceId: first.id, flavor: 'm1.medium', resources: undefined, requestId: '' }, m, cb),
      ),
      /placed with less than that .*SubmitClaim/,
    );
    assert.equal(await cpuQuotaOf(placed.backendId), 50_000, 'the refused resize changed nothing');
    await unary((m, cb) =>
      alice.runtime.resizeInstance(
        { instanceId: first.id, flavor: '', resources: Resources.fromPartial({ cpuMillis: 250 }), requestId: '' },
        m,
        cb,
      ),
    );
    assert.equal(await cpuQuotaOf(placed.backendId), 25_000);
    assert.equal((await quotaOf(alice.scheduler, 'physics')).usedResources?.cpuMillis, 500, 'the claim still holds its placed size');

    // An admin (or a service) still creates directly: outside every quota, as the runtime's
    // README says; the node's room counts it through the heartbeats.
    const byAdmin = (
      await unary<CreateInstanceResponse>((m, cb) =>
        admin.runtime.createInstance({ instanceId: '', spec: spec('by-admin'), preemptible: false, requestId: '' }, m, cb),
      )
    ).instance!;
    assert.equal(byAdmin.state, InstanceState.RUNNING);
    assert.equal((await quotaOf(alice.scheduler, 'physics')).usedInstances, 1, 'not counted in the quota');
    await unary((m, cb) => admin.runtime.deleteInstance({ instanceId: byAdmin.id, timeout: undefined, requestId: '' }, m, cb));

    for (const id of [first.id, second.id]) await unary((m, cb) => alice.scheduler.cancelClaim({ claimId: id, requestId: '' }, m, cb));
    await until(
      async () => ((await containersOf('lapis.project=physics')).length === 0 ? true : undefined),
      'the project to have no containers',
      60_000,
    );
    await unary((m, cb) => admin.scheduler.setQuota({ quota: Quota.fromPartial({ project: 'physics' }) }, m, cb));
  });

  it('counts an instance again when its restart policy runs it after a crash (the crash ended its claim)', async () => {
    const bob = as('bob-token', 'biology');
    // Crashes once, then runs; the engine restarts it in the same container.
    const claim = await submit(
      bob.scheduler,
      spec('phoenix', {
        command: ['sh', '-c', 'if [ -f /mnt/.crashed ]; then exec sleep 3600; fi; touch /mnt/.crashed; sleep 1; exit 1'],
        restartOnFailure: true,
      }),
    );
    const restarted = await until(
      async () => {
        const found = await unary<GetInstanceResponse>((m, cb) => bob.runtime.getInstance({ instanceId: claim.id }, m, cb)).then(
          (r) => r.instance,
          () => undefined,
        );
        return found?.state === InstanceState.RUNNING && found.stateReason === 'restarted' ? found : undefined;
      },
      'the instance to crash and be restarted by its policy',
      90_000,
    );
    assert.equal(restarted.id, claim.id);
    const back = await until(
      async () => {
        const c = await claimOf(bob.scheduler, claim.id);
        return c.state === ClaimState.RUNNING && c.instanceState === InstanceState.RUNNING ? c : undefined;
      },
      'the claim to hold its room again (it ended with the crash)',
      30_000,
    );
    assert.equal(back.node, restarted.node);
    const used = await quotaOf(bob.scheduler, 'biology');
    assert.equal(used.usedInstances, 1);
    assert.equal(used.usedResources?.cpuMillis, 500);
    // A tenant cannot start a failed instance itself (its claim ended): shown on the runtime's tests.
    await unary((m, cb) => bob.scheduler.cancelClaim({ claimId: claim.id, requestId: '' }, m, cb));
    await until(
      async () => ((await quotaOf(bob.scheduler, 'biology')).usedInstances === 0 ? true : undefined),
      'the quota to be free',
      60_000,
    );
  });
});
