// End to end: the whole mesh as real processes (NATS, Docker, registries, the five services),
// driven through the services' public APIs as a user would. A Zipkin-protocol collector in
// the test receives the spans the services export.
import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { writeFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect as connectTcp, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { createClient } from '@lapis/platform';
import { sleep, spawnService, until } from '@lapis/platform/testing';
import { InstanceSpec, InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { ListInstancesResponse, ListVolumesResponse } from '@lapis/proto/lapis/runtime/v1/runtime';
import { RuntimeServiceClient } from '@lapis/proto/lapis/runtime/v1/runtime_service';
import {
  ClaimState,
  PendingReason,
  type Claim,
  type GetClaimResponse,
  type GetFairShareResponse,
  type GetPriorityResponse,
  type ListClaimsResponse,
  type SubmitClaimResponse,
} from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import {
  DeploymentState,
  type Deployment,
  type GetDeploymentResponse,
  type UpdateDeploymentResponse,
} from '@lapis/proto/lapis/tosca/v1/tosca';
import { ToscaServiceClient } from '@lapis/proto/lapis/tosca/v1/tosca_service';
import { docker } from '@lapis/testenv';
import { deploy, EXAMPLE_TEMPLATE } from '../src/example';
import { REPO_ROOT, startMesh, type Mesh } from '../src/mesh';
import type { ZipkinSpan } from '../src/zipkin';

type Unary<Res> = (metadata: Metadata, callback: (error: ServiceError | null, response: Res) => void) => unknown;
const unary = <Res>(invoke: Unary<Res>) =>
  new Promise<Res>((resolve, reject) => invoke(new Metadata(), (error, response) => (error ? reject(error) : resolve(response))));

describe('the whole mesh, end to end', function () {
  this.timeout(300_000);
  let mesh: Mesh;
  let collector: Server;
  const spans: ZipkinSpan[] = [];
  const clients = () => ({
    tosca: createClient(ToscaServiceClient, mesh.addresses['tosca-orchestrator']!, { token: 'alice-token', deadlineMs: 30_000 }),
    scheduler: createClient(SchedulerServiceClient, mesh.addresses.scheduler!, { token: 'alice-token' }),
    runtime: createClient(RuntimeServiceClient, mesh.addresses['container-runtime']!, { token: 'alice-token', deadlineMs: 60_000 }),
  });
  const containersOf = async (filter: string) => (await docker(['ps', '-q', '--filter', `label=${filter}`])).split('\n').filter(Boolean);
  /** The example with two mirrors, created as alice (not waited for). */
  const createExample = (requestId: string) =>
    unary<{ deploymentId: string }>((m, cb) =>
      clients().tosca.createDeployment(
        {
          template: { content: { $case: 'yaml', yaml: readFileSync(EXAMPLE_TEMPLATE, 'utf8') }, fileName: 'web-app.yaml', files: {} },
          inputs: { mirrors: 2 },
          textInputs: {},
          keepOnFailure: false,
          requestId,
        },
        m,
        cb,
      ),
    );
  const getDeployment = (id: string) => unary<GetDeploymentResponse>((m, cb) => clients().tosca.getDeployment({ deploymentId: id }, m, cb));
  const waitFor = async (id: string, state: DeploymentState) =>
    until(
      async () => {
        const { deployment } = await getDeployment(id);
        if (deployment?.state === DeploymentState.FAILED && state !== DeploymentState.FAILED)
          throw new Error(`deployment failed: ${deployment.stateReason}`);
        return deployment?.state === state ? deployment : undefined;
      },
      `deployment ${id} to be ${DeploymentState[state]}`,
      120_000,
    );

  before(async () => {
    collector = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk) => (body += chunk));
      request.on('end', () => {
        spans.push(...(JSON.parse(body || '[]') as ZipkinSpan[]));
        response.statusCode = 202;
        response.end();
      });
    }).listen(0, '127.0.0.1');
    await once(collector, 'listening');
    const config = join(mkdtempSync(join(tmpdir(), 'lapis-e2e-')), 'scheduler.yaml');
    // Two projects with equal shares: the one that has used more waits behind the other.
    writeFileSync(
      config,
      [
        'preemption: { grace: 2s }',
        'accounts:',
        '  - { name: physics, shares: 50, users: { alice: 1 } }',
        '  - { name: biology, shares: 50, users: { bob: 1 } }',
        '',
      ].join('\n'),
    );
    mesh = await startMesh({
      env: {
        OTEL_TRACES_EXPORTER: 'zipkin',
        OTEL_EXPORTER_ZIPKIN_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}/api/v2/spans`,
        OTEL_BSP_SCHEDULE_DELAY: '200',
      },
      serviceEnv: {
        'container-runtime': { LAPIS_NODE_CPU_MILLIS: '4000', LAPIS_STOP_TIMEOUT_S: '2' },
        scheduler: { LAPIS_SCHEDULER_CONFIG_FILE: config },
      },
    });
  });
  after(async () => {
    await mesh?.stop();
    collector?.close();
  });

  let deployment: Deployment;

  it('deploys a TOSCA template: instances run in Docker, the volume is attached, outputs resolve', async () => {
    deployment = await deploy(mesh, readFileSync(EXAMPLE_TEMPLATE, 'utf8'), 'web-app.yaml');
    assert.match(String(deployment.outputs?.web_address), /^http:\/\/\d+\.\d+\.\d+\.\d+:8080\/site\/$/);
    const web = deployment.nodes.find((n) => n.name === 'web')!;
    assert.equal(web.instanceIds.length, 1);
    const [container] = await containersOf(`lapis.instance-id=${web.instanceIds[0]}`);
    assert.ok(container, 'the web instance runs as a container');
    await docker(['exec', container!, 'sh', '-c', 'echo hello-from-the-volume > /mnt/site/index.html']);
    assert.match(await docker(['exec', container!, 'sh', '-c', 'grep " /mnt/site " /proc/mounts']), /ext4/);
    assert.equal((await containersOf(`tosca/deployment=${deployment.id}`)).length, 2);
  });

  it('scales a node through an update, changing only what the inputs say', async () => {
    const web = deployment.nodes.find((n) => n.name === 'web')!.instanceIds[0]!;
    await unary<UpdateDeploymentResponse>((m, cb) =>
      clients().tosca.updateDeployment(
        { deploymentId: deployment.id, template: undefined, inputs: { mirrors: 2 }, textInputs: {}, requestId: '' },
        m,
        cb,
      ),
    );
    const updated = await until(
      async () => {
        const { deployment: d } = await getDeployment(deployment.id);
        return d?.state === DeploymentState.DEPLOYED && d.nodes.find((n) => n.name === 'mirror')?.instanceIds.length === 2 ? d : undefined;
      },
      'two mirrors',
      120_000,
    );
    assert.equal(updated.nodes.find((n) => n.name === 'web')!.instanceIds[0], web, 'the web instance was left alone');
    assert.equal((await containersOf(`tosca/deployment=${deployment.id}`)).length, 3);
    deployment = updated;
  });

  it('makes one trace of the deployment across the orchestrator, the scheduler and the runtime', async () => {
    const services = (traceId: string) => new Set(spans.filter((s) => s.traceId === traceId).map((s) => s.localEndpoint?.serviceName));
    const trace = await until(
      () => {
        const create = spans.find((s) => /CreateDeployment/.test(s.name) && s.kind === 'SERVER');
        if (!create) return undefined;
        const seen = services(create.traceId);
        return seen.has('tosca-orchestrator') && seen.has('scheduler') && seen.has('container-runtime') ? create.traceId : undefined;
      },
      `one trace with spans of the three services (have: ${[...new Set(spans.map((s) => s.localEndpoint?.serviceName))].join(', ')})`,
      30_000,
    );
    const ofTrace = spans.filter((s) => s.traceId === trace);
    assert.ok(ofTrace.some((s) => s.kind === 'PRODUCER' && /^send lapis\.scheduler\.claim_placed/.test(s.name)));
    assert.ok(
      ofTrace.some(
        (s) =>
          s.kind === 'CONSUMER' &&
          /^process lapis\.scheduler\.claim_placed/.test(s.name) &&
          s.localEndpoint?.serviceName === 'container-runtime',
      ),
    );
  });

  it("traces an OCCI request from its HTTP span through the gateway's gRPC calls", async () => {
    const response = await fetch(`${mesh.occiUrl}/compute/`, {
      headers: { authorization: 'Bearer alice-token', accept: 'application/occi+json' },
    });
    assert.equal(response.status, 200);
    await response.arrayBuffer();
    const request = await until(
      () => spans.find((s) => s.name === 'GET /compute/' && s.kind === 'SERVER' && s.localEndpoint?.serviceName === 'occi-gateway'),
      "the gateway's HTTP span",
    );
    const children = await until(() => {
      const calls = spans.filter(
        (s) => s.traceId === request.traceId && s.kind === 'CLIENT' && s.localEndpoint?.serviceName === 'occi-gateway',
      );
      return calls.length > 0 ? calls : undefined;
    }, 'gRPC calls in the same trace');
    assert.ok(
      children.some((s) => /lapis\.(scheduler|runtime)\.v1/.test(s.name)),
      children.map((s) => s.name).join(', '),
    );
  });

  it('undeploys in reverse order and leaves nothing behind', async () => {
    const { runtime, tosca } = clients();
    await unary((m, cb) => tosca.deleteDeployment({ deploymentId: deployment.id, requestId: '' }, m, cb));
    await waitFor(deployment.id, DeploymentState.DELETED);
    await until(
      async () => ((await containersOf(`tosca/deployment=${deployment.id}`)).length === 0 ? true : undefined),
      'the containers to go',
      60_000,
    );
    const { volumes } = await unary<ListVolumesResponse>((m, cb) =>
      runtime.listVolumes({ pageSize: 100, pageToken: '', project: '', state: 0, instanceId: '' }, m, cb),
    );
    assert.deepEqual(
      volumes.map((v) => v.id),
      [],
      'no volume left',
    );
  });

  it('survives kill -9 of each service in the middle of a deployment: it completes, nothing is lost or doubled', async () => {
    const created = await createExample('crash-test');
    for (const name of ['tosca-orchestrator', 'scheduler', 'container-runtime'] as const) {
      await sleep(300);
      await mesh.processes[name]!.kill();
      await mesh.start(name);
    }
    const done = await waitFor(created.deploymentId, DeploymentState.DEPLOYED);
    const instanceIds = done.nodes.flatMap((n) => n.instanceIds);
    assert.equal(instanceIds.length, 3);
    const containers = await containersOf(`tosca/deployment=${created.deploymentId}`);
    assert.equal(containers.length, 3, 'one container per instance, none twice');
    await unary((m, cb) => clients().tosca.deleteDeployment({ deploymentId: created.deploymentId, requestId: '' }, m, cb));
    await waitFor(created.deploymentId, DeploymentState.DELETED);
  });

  it('two orchestrator replicas: when the one driving a deployment is killed (kill -9), the other finishes it once its lease runs out', async () => {
    const env = {
      ...mesh.env['tosca-orchestrator'],
      LAPIS_SCHEDULER_ADDRESS: mesh.addresses.scheduler!,
      LAPIS_RUNTIME_ADDRESS: mesh.addresses['container-runtime']!,
      LAPIS_GRPC_PORT: '0',
      LAPIS_METRICS_PORT: '0',
    };
    const second = await spawnService('tosca-orchestrator', join(REPO_ROOT, 'services/tosca-orchestrator/dist/src/main.js'), env, 60_000);
    const other = createClient(ToscaServiceClient, second.address, { token: 'alice-token', deadlineMs: 30_000 });
    const state = async (id: string) =>
      (await unary<GetDeploymentResponse>((m, cb) => other.getDeployment({ deploymentId: id }, m, cb))).deployment!;
    try {
      const created = await createExample('replica-test');
      const id = created.deploymentId;
      await until(async () => (await state(id)).nodes.some((n) => n.instanceIds.length > 0) || undefined, 'a first instance');
      await mesh.processes['tosca-orchestrator']!.kill();
      const killed = Date.now();
      const done = await until(
        async () => {
          const d = await state(id);
          if (d.state === DeploymentState.FAILED) throw new Error(`deployment failed: ${d.stateReason}`);
          return d.state === DeploymentState.DEPLOYED ? d : undefined;
        },
        'the other replica to finish the deployment',
        120_000,
      );
      process.stderr.write(`      deployed by the other replica ${Date.now() - killed} ms after the kill\n`);
      assert.equal((await containersOf(`tosca/deployment=${id}`)).length, done.nodes.flatMap((n) => n.instanceIds).length);
      assert.equal(done.nodes.flatMap((n) => n.instanceIds).length, 3, 'one container per instance, none twice');
      await unary((m, cb) => other.deleteDeployment({ deploymentId: id, requestId: '' }, m, cb));
      await until(async () => (await state(id)).state === DeploymentState.DELETED || undefined, 'DELETED', 120_000);
      await until(async () => ((await containersOf(`tosca/deployment=${id}`)).length === 0 ? true : undefined), 'the containers to go');
    } finally {
      other.close();
      await mesh.start('tosca-orchestrator');
      await second.stop();
    }
  });

  it('drains a contended queue in the fair order that sprio and sshare explain', async () => {
    const as = (token: string, project: string) => createClient(SchedulerServiceClient, mesh.addresses.scheduler!, { token, project });
    const physics = as('alice-token', 'physics');
    const biology = as('bob-token', 'biology');
    const admin = as('admin-token', '');
    const submit = (client: SchedulerServiceClient, name: string) =>
      unary<SubmitClaimResponse>((m, cb) =>
        client.submitClaim(
          // Ends on SIGTERM (a bare sleep as PID 1 ignores it): each cancel frees its room at once.
          {
            spec: InstanceSpec.fromPartial({
              name,
              flavor: 'm1.small',
              image: mesh.images[0]!,
              command: ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done'],
            }),
            preemptible: false,
            onPreemption: 0,
            partition: '',
            backend: 0,
            antiAffinityGroup: '',
            qos: '',
            requestId: '',
          },
          m,
          cb,
        ),
      ).then((r) => r.claim!.id);
    const claim = async (id: string) => (await unary<GetClaimResponse>((m, cb) => admin.getClaim({ claimId: id }, m, cb))).claim!;
    const running = async (ids: string[]) =>
      (await Promise.all(ids.map(claim))).filter((c) => c.instanceState === InstanceState.RUNNING).map((c) => c.id);

    // physics fills the node (4 CPUs, m1.small is 1) and builds up usage while it runs.
    const fill: string[] = [];
    for (let i = 0; i < 4; i++) fill.push(await submit(physics, `fill-${i}`));
    await until(async () => ((await running(fill)).length === 4 ? true : undefined), 'physics to fill the node', 90_000);
    await sleep(2_000);
    // Both projects queue two more each; the node has no room for any of them.
    const queued = [
      await submit(physics, 'late-p0'),
      await submit(biology, 'late-b0'),
      await submit(physics, 'late-p1'),
      await submit(biology, 'late-b1'),
    ];
    const pending = await until(
      async () => {
        const { claims } = await unary<ListClaimsResponse>((m, cb) =>
          admin.listClaims(
            { pageSize: 100, pageToken: '', project: '', states: [ClaimState.PENDING], partition: '', node: '', orderByPriority: true },
            m,
            cb,
          ),
        );
        const ours = claims.filter((c) => queued.includes(c.id));
        return ours.length === 4 && ours.every((c) => c.pendingReason !== PendingReason.NEW) ? ours : undefined;
      },
      'the four claims to be looked at by a cycle',
      30_000,
    );
    for (const c of pending)
      assert.ok(
        [PendingReason.PRIORITY, PendingReason.RESOURCES].includes(c.pendingReason),
        `${c.spec?.name} waits for ${PendingReason[c.pendingReason]}`,
      );

    // The explanation: biology has used nothing, so its fair-share factor is higher (sshare),
    // and its claims rank first (sprio); squeue lists them in that order.
    const { entries } = await unary<GetFairShareResponse>((m, cb) => admin.getFairShare({ account: '' }, m, cb));
    const factor = (account: string) => entries.find((e) => e.account === account && !e.user)!.fairShareFactor;
    assert.ok(factor('biology') > factor('physics'), `fair share biology ${factor('biology')} > physics ${factor('physics')}`);
    const { priorities } = await unary<GetPriorityResponse>((m, cb) => admin.getPriority({ claimIds: queued }, m, cb));
    const explained = [...priorities].sort((a, b) => b.factors!.priority - a.factors!.priority).map((p) => p.claimId);
    assert.deepEqual(explained.slice(0, 2).sort(), [queued[1], queued[3]].sort(), 'biology first by priority');
    assert.deepEqual(
      pending.map((c) => c.id),
      explained,
      'the queue is listed in priority order',
    );

    // Room comes back one instance at a time: each goes to the head of that order.
    for (let freed = 1; freed <= 4; freed++) {
      await unary((m, cb) => physics.cancelClaim({ claimId: fill[freed - 1]!, requestId: '' }, m, cb));
      await until(async () => ((await running(queued)).length === freed ? true : undefined), `${freed} queued claim(s) to run`, 60_000);
    }
    const placed = (await Promise.all(queued.map(claim))).sort((a, b) => a.placeTime!.getTime() - b.placeTime!.getTime()).map((c) => c.id);
    assert.deepEqual(placed, explained, 'placed in the explained order');
    for (const id of queued) await unary((m, cb) => admin.cancelClaim({ claimId: id, requestId: '' }, m, cb));
    await until(async () => ((await running([...fill, ...queued])).length === 0 ? true : undefined), 'the node to be empty', 60_000);
  });

  it('preempts a spot instance for a normal claim after the grace period, and requeues it', async () => {
    const { scheduler, runtime } = clients();
    const submit = (name: string, preemptible: boolean) =>
      unary<SubmitClaimResponse>((m, cb) =>
        scheduler.submitClaim(
          {
            spec: InstanceSpec.fromPartial({ name, flavor: 'm1.large', image: mesh.images[0]!, command: ['sleep', '3600'] }),
            preemptible,
            onPreemption: 1,
            partition: '',
            backend: 0,
            antiAffinityGroup: '',
            qos: '',
            requestId: '',
          },
          m,
          cb,
        ),
      );
    const claimState = async (id: string): Promise<Claim> =>
      (await unary<GetClaimResponse>((m, cb) => scheduler.getClaim({ claimId: id }, m, cb))).claim!;
    // m1.large is 4 CPUs: the whole node (4000 millis here).
    const spot = (await submit('spot-1', true)).claim!;
    await until(
      async () => ((await claimState(spot.id)).instanceState === InstanceState.RUNNING ? true : undefined),
      'the spot instance to run',
      60_000,
    );
    const normal = (await submit('normal-1', false)).claim!;
    await until(
      async () => ((await claimState(normal.id)).instanceState === InstanceState.RUNNING ? true : undefined),
      'the normal instance to run',
      90_000,
    );
    const evicted = await claimState(spot.id);
    assert.ok([ClaimState.REQUEUED, ClaimState.PENDING].includes(evicted.state), `spot claim is ${ClaimState[evicted.state]}`);
    const { instances } = await unary<ListInstancesResponse>((m, cb) =>
      runtime.listInstances({ pageSize: 100, pageToken: '', project: '', state: InstanceState.RUNNING, node: '' }, m, cb),
    );
    assert.deepEqual(
      instances.map((i) => i.spec?.name),
      ['normal-1'],
    );
    for (const id of [normal.id, spot.id]) await unary((m, cb) => scheduler.cancelClaim({ claimId: id, requestId: '' }, m, cb));
  });

  it('runs all of that on NATS with TLS and a user per service: the server asks every client for both', async () => {
    // What the server announces to any client before it may say anything: credentials and TLS required.
    const socket = connectTcp(mesh.nats.port, '127.0.0.1');
    const [first] = (await once(socket, 'data')) as [Buffer];
    socket.destroy();
    const info = JSON.parse(first.toString().replace(/^INFO /, '')) as { auth_required?: boolean; tls_required?: boolean };
    assert.deepEqual({ auth: info.auth_required, tls: info.tls_required }, { auth: true, tls: true });
    // Each service is connected as its own user, the node agent as this node's.
    const connz = (await (await fetch(`${mesh.nats.monitorUrl}/connz?auth=true`)).json()) as {
      connections: Array<{ name?: string; authorized_user?: string; tls_version?: string }>;
    };
    const users = new Set(connz.connections.map((c) => c.authorized_user));
    assert.deepEqual(
      [...users].sort(),
      [`container-runtime-${mesh.nodeName}`, 'image-sync', 'occi-gateway', 'scheduler', 'tosca-orchestrator'].sort(),
    );
    assert.ok(
      connz.connections.every((c) => c.tls_version),
      'every connection is TLS',
    );
  });
});
