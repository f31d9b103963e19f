// Metrics and alerts against a real Prometheus (built by tools/testenv from the Go module
// proxy): it scrapes the whole mesh (five services as their own processes), loads the chart's
// alert rules (charts/lapis/files/alerts.yaml) and evaluates them every second. Real work is
// done through the public APIs (a TOSCA deployment, claims, a sync), then things are broken one
// at a time (a claim that cannot be placed, an image the catalogue lacks, an unreachable
// upstream, a node agent killed, NATS gone) and each alert's query must answer the series it
// is about, and Prometheus must raise the alert.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { createClient } from '@lapis/platform';
import { until } from '@lapis/platform/testing';
import { InstanceSpec } from '@lapis/proto/lapis/common/v1/common';
import { SyncPolicy } from '@lapis/proto/lapis/images/v1/images';
import { ImageSyncServiceClient } from '@lapis/proto/lapis/images/v1/image_sync_service';
import { SubmitClaimRequest, type SubmitClaimResponse } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import { ensurePrometheus, type PrometheusServer, type PromSample, startPrometheus } from '@lapis/testenv';
import { parse } from 'yaml';
import { deploy, EXAMPLE_TEMPLATE } from '../src/example';
import { REPO_ROOT, SERVICES, startMesh, type Mesh } from '../src/mesh';

type Unary<Res> = (metadata: Metadata, callback: (error: ServiceError | null, response: Res) => void) => unknown;
const unary = <Res>(invoke: Unary<Res>) =>
  new Promise<Res>((resolve, reject) => invoke(new Metadata(), (error, response) => (error ? reject(error) : resolve(response))));

const ALERTS_FILE = join(REPO_ROOT, 'charts/lapis/files/alerts.yaml');
const alertExpr: Record<string, string> = Object.fromEntries(
  (parse(readFileSync(ALERTS_FILE, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }).groups
    .flatMap((g) => g.rules)
    .map((r) => [r.alert, r.expr]),
);

describe('metrics of the whole mesh, scraped by a real Prometheus, and the chart’s alerts', function () {
  this.timeout(300_000);
  let mesh: Mesh;
  let prometheus: PrometheusServer;
  const query = (promql: string) => prometheus.query(promql);
  /** Waits until the query answers something `check` accepts; fails with what it answered last. */
  const eventually = async (promql: string, check: (samples: PromSample[]) => boolean, what: string, timeoutMs = 60_000) => {
    let last: PromSample[] = [];
    try {
      return await until(
        async () => {
          last = await query(promql);
          return check(last) ? last : undefined;
        },
        what,
        timeoutMs,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}; ${promql} answered ${JSON.stringify(last)}`);
    }
  };
  const firing = (alert: string) =>
    eventually(`ALERTS{alertname="${alert}"}`, (s) => s.length > 0, `Prometheus to raise ${alert} (pending or firing)`);
  const scheduler = (token: string, project: string) => createClient(SchedulerServiceClient, mesh.addresses.scheduler!, { token, project });
  const submit = (client: SchedulerServiceClient, spec: Partial<InstanceSpec>) =>
    unary<SubmitClaimResponse>((m, cb) =>
      client.submitClaim(SubmitClaimRequest.fromPartial({ spec: InstanceSpec.fromPartial(spec) }), m, cb),
    );
  /** Waits until an alert's own query answers; the values of `label` in its series, sorted. */
  const answers = async (alert: string, label: string, timeoutMs?: number) =>
    (await eventually(alertExpr[alert]!, (s) => s.length > 0, `the query of ${alert}`, timeoutMs)).map((s) => s.metric[label]).sort();

  before(async function () {
    // Built by `lapis-testenv prepare` (make test); a first build here takes 10-25 minutes.
    this.timeout(30 * 60_000);
    await ensurePrometheus({ progress: (line) => console.error(line) });
    mesh = await startMesh({ serviceEnv: { 'container-runtime': { LAPIS_NODE_CPU_MILLIS: '3000', LAPIS_STOP_TIMEOUT_S: '2' } } });
    prometheus = await startPrometheus({
      targets: SERVICES.map((job) => ({ job, address: new URL(mesh.metricsUrls[job]!).host })),
      ruleFiles: [ALERTS_FILE],
      intervalSeconds: 1,
    });
  });
  after(async () => {
    await prometheus?.stop();
    await mesh?.stop();
  });

  it('scrapes every service on its own metrics port, and loads every alert rule', async () => {
    const up = await eventually('up == 1', (s) => s.length === SERVICES.length, 'every service to be up');
    assert.deepEqual(up.map((s) => s.metric.job).sort(), [...SERVICES].sort());
    const rules = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as {
      data: { groups: Array<{ rules: Array<{ name: string; health: string }> }> };
    };
    const loaded = rules.data.groups.flatMap((g) => g.rules);
    assert.deepEqual(loaded.map((r) => r.name).sort(), Object.keys(alertExpr).sort());
    assert.ok(
      loaded.every((r) => r.health !== 'err'),
      JSON.stringify(loaded),
    );
  });

  it('after real work (a TOSCA deployment, an OCCI request) has the figures of each service, and no alert', async () => {
    await deploy(mesh, readFileSync(EXAMPLE_TEMPLATE, 'utf8'), 'web-app.yaml');
    const occi = await fetch(`${mesh.occiUrl}/-/`, { headers: { authorization: 'Bearer alice-token', accept: 'text/plain' } });
    assert.equal(occi.status, 200);

    // Scrapes come every second (the scheduler counts its queue every 15 s): each figure is waited for.
    const atLeast = (promql: string, n: number) => eventually(promql, (s) => (s[0]?.value ?? -1) >= n, `${promql} >= ${n}`, 40_000);
    await atLeast('sum(lapis_scheduler_placements_total{project="physics"})', 2); // the example's two computes
    await atLeast('lapis_runtime_instances{state="RUNNING"}', 2);
    await atLeast('sum(lapis_runtime_instance_start_duration_count{backend="docker",outcome="ok"})', 2);
    await atLeast('sum(lapis_runtime_volume_attachments_total{operation="attach",outcome="ok"})', 1); // the example's volume
    await atLeast('lapis_scheduler_queue_length{project="physics",state="RUNNING"}', 2);
    await atLeast('lapis_tosca_deployments{phase="DEPLOYED"}', 1);
    await atLeast('sum(lapis_tosca_operation_duration_count{kind="CreateDeployment",phase="DEPLOYED"})', 1);
    await atLeast('sum(lapis_tosca_validation_duration_count{outcome="valid"})', 1);
    await atLeast('sum(lapis_images_syncs_total{policy="upstream",result="SUCCEEDED"})', 1);
    await atLeast('sum(lapis_images_catalogue_size{policy="upstream"})', 2);
    await atLeast('sum(lapis_occi_request_duration_count{method="GET",kind="query",status="200"})', 1);
    await atLeast('lapis_scheduler_nodes{state="up"}', 1);
    await atLeast('max(lapis_scheduler_leader)', 1);
    await atLeast('sum(lapis_scheduler_cycle_duration_count)', 1);
    await atLeast('max(lapis_scheduler_fairshare_factor{project="physics"})', 0);
    // gRPC by the semantic conventions, on both sides of the orchestrator's calls to the scheduler.
    const submitted = 'rpc_method="SubmitClaim",rpc_service="lapis.scheduler.v1.SchedulerService",rpc_grpc_status_code="0"';
    await atLeast(`sum(rpc_server_duration_count{job="scheduler",${submitted}})`, 2);
    await atLeast(`sum(rpc_client_duration_count{job="tosca-orchestrator",${submitted}})`, 2);
    // The platform's figures, from every service.
    for (const metric of ['lapis_nats_connected', 'process_cpu_time_total', 'nodejs_eventloop_utilization']) {
      const jobs = new Set((await eventually(metric, (s) => s.length >= SERVICES.length, metric)).map((s) => s.metric.job));
      assert.equal(jobs.size, SERVICES.length, `${metric} from every service`);
    }
    await eventually('lapis_nats_consumer_pending', (s) => s.length > 0, 'consumers’ backlogs');
    // Healthy: no alert's query answers anything.
    for (const [alert, expr] of Object.entries(alertExpr)) assert.deepEqual(await query(expr), [], `${alert} on a healthy mesh`);
  });

  it('LapisQueueNotDraining: a claim no node can take leaves its project waiting with nothing placed', async () => {
    // m1.large wants 4 CPUs; the node has 3 (the example holds 2 of them).
    await submit(scheduler('bob-token', 'biology'), {
      name: 'too-big',
      flavor: 'm1.large',
      image: mesh.images[0]!,
      command: ['sleep', '60'],
    });
    assert.deepEqual(await answers('LapisQueueNotDraining', 'project'), ['biology']);
    await firing('LapisQueueNotDraining');
  });

  it('LapisPlacementsFailing: a placement whose image is not in the trusted catalogue fails on the node', async () => {
    await submit(scheduler('alice-token', 'physics'), { name: 'untrusted', flavor: 'm1.tiny', image: 'lapis/not-in-the-catalogue:1' });
    assert.deepEqual(await answers('LapisPlacementsFailing', 'reason'), ['instance_error']);
    await firing('LapisPlacementsFailing');
  });

  it('LapisImageSyncFailing: a policy whose upstream cannot be reached', async () => {
    const images = createClient(ImageSyncServiceClient, mesh.addresses['image-sync']!, {
      token: mesh.tokens.admin.token,
      deadlineMs: 30_000,
    });
    await unary((m, cb) =>
      images.createPolicy(
        {
          policy: SyncPolicy.fromPartial({
            name: 'unreachable',
            source: { url: 'http://127.0.0.1:1', credentialsSecret: '', insecure: true },
            repositories: ['lapis/busybox'],
            destinationPrefix: 'unreachable/',
          }),
          requestId: '',
        },
        m,
        cb,
      ),
    );
    await unary((m, cb) => images.syncNow({ policy: 'unreachable', repositories: [], requestId: '' }, m, cb));
    assert.deepEqual(await answers('LapisImageSyncFailing', 'policy'), ['unreachable']);
    await firing('LapisImageSyncFailing');
  });

  it('LapisNodeAgentDown: the node agent killed', async () => {
    await mesh.processes['container-runtime']!.kill();
    try {
      const series = await eventually(
        alertExpr.LapisNodeAgentDown!,
        (s) => s.some((x) => x.metric.job === undefined),
        'the scheduler to see the node down (no heartbeat for three intervals)',
      );
      assert.ok(series.length >= 1);
      await firing('LapisNodeAgentDown');
    } finally {
      await mesh.start('container-runtime');
    }
  });

  it('LapisNatsUnavailable: every service reports NATS lost while it is down, and back once it returns', async () => {
    const restarted = mesh.nats.restart(15_000);
    try {
      const series = await eventually(
        alertExpr.LapisNatsUnavailable!,
        (s) => s.length === SERVICES.length,
        'every service to lose NATS',
        6_000,
      );
      assert.deepEqual(series.map((s) => s.metric.job).sort(), [...SERVICES].sort());
      await firing('LapisNatsUnavailable');
    } finally {
      await restarted;
    }
    await eventually('min(lapis_nats_connected)', (s) => s[0]?.value === 1, 'every service back on NATS', 30_000);
  });
});
