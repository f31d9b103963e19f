// A service process's metrics: Prometheus on its own port by default (OTEL_METRICS_EXPORTER),
// OTLP as the alternative, none at all on request; what the platform records for every service
// (gRPC durations by method and status, NATS, the process and its event loop).
import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { scrapeMetrics, samplesOf, spawnService, staticTokenFile, type ServiceProcess } from '../../src/testing';
import { getOperation, operationsClient } from '../grpc-harness';
import { natsUrl, until } from '../helpers';

const startProbe = (env: Record<string, string>) =>
  spawnService('probe', require.resolve('../fixtures/service-main'), {
    LAPIS_NATS_URL: natsUrl(),
    LAPIS_STATIC_TOKENS_FILE: staticTokenFile(),
    ...env,
  });

const OPERATIONS = 'lapis.common.v1.OperationsService';

describe('a service process exports metrics', () => {
  const running: ServiceProcess[] = [];
  afterEach(() => Promise.all(running.splice(0).map((p) => p.kill())));

  it('on /metrics of its metrics port: gRPC durations by method and status, NATS, process and event loop', async () => {
    const probe = await startProbe({});
    running.push(probe);
    assert.ok(probe.metricsUrl, 'the service logs its metrics endpoint');
    assert.notEqual(new URL(probe.metricsUrl).port, String(probe.port), 'metrics have a port of their own');

    assert.ok(!((await getOperation(operationsClient(probe.address), 'publish:metrics-1')) instanceof Error));
    await until(() => probe.logs.find((l) => l.msg === 'consumed'), 'the event to be consumed');
    const refused = await getOperation(operationsClient(probe.address, { token: 'not-a-token', maxAttempts: 1 }), 'x');
    assert.ok(refused instanceof Error);

    const samples = await scrapeMetrics(probe.metricsUrl);
    const calls = (code: string) =>
      samplesOf(samples, 'rpc_server_duration_count', {
        rpc_system: 'grpc',
        rpc_service: OPERATIONS,
        rpc_method: 'GetOperation',
        rpc_grpc_status_code: code,
      });
    assert.equal(calls('0')[0]?.value, 1, 'the call that succeeded, with status OK');
    assert.equal(calls('16')[0]?.value, 1, 'the unauthenticated one, with UNAUTHENTICATED');
    assert.ok(samplesOf(samples, 'rpc_server_duration_bucket', { le: '+Inf', rpc_grpc_status_code: '0' }).length > 0, 'a histogram');

    assert.deepEqual(
      samplesOf(samples, 'lapis_nats_connected').map((s) => s.value),
      [1],
    );
    // Asked of NATS in the background (a scrape never waits for it): there by a later scrape.
    const consumer = { messaging_consumer_group_name: `probe-${probe.pid}` };
    const pending = await until(
      async () => samplesOf(await scrapeMetrics(probe.metricsUrl!), 'lapis_nats_consumer_pending', consumer)[0],
      'the consumer’s backlog',
    );
    assert.equal(pending.value, 0, 'the consumer has nothing left to take');
    assert.ok(samplesOf(samples, 'process_cpu_time_total', { cpu_mode: 'user' })[0]!.value > 0);
    assert.ok(samplesOf(samples, 'process_memory_usage')[0]!.value > 10_000_000);
    assert.ok(samplesOf(samples, 'nodejs_eventloop_utilization').length > 0, 'the event loop, from the runtime instrumentation');

    const names = new Set(samples.flatMap((s) => Object.keys(s.labels)));
    for (const forbidden of ['user', 'project', 'authorization', 'key', 'instance_id'])
      assert.ok(!names.has(forbidden), `no ${forbidden} label`);

    const other = await fetch(probe.metricsUrl.replace('/metrics', '/'));
    assert.equal(other.status, 404, 'only /metrics is served');
  });

  it('not at all with OTEL_METRICS_EXPORTER=none', async () => {
    const probe = await startProbe({ OTEL_METRICS_EXPORTER: 'none' });
    running.push(probe);
    assert.equal(probe.metricsUrl, undefined);
  });

  it('through OTLP with OTEL_METRICS_EXPORTER=otlp', async () => {
    const bodies: string[] = [];
    const collector = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk) => (body += chunk));
      request.on('end', () => {
        bodies.push(`${request.url} ${body}`);
        response.setHeader('content-type', 'application/json');
        response.end('{}');
      });
    }).listen(0, '127.0.0.1');
    await once(collector, 'listening');
    try {
      const probe = await startProbe({
        OTEL_METRICS_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/metrics`,
        OTEL_METRIC_EXPORT_INTERVAL: '300',
      });
      running.push(probe);
      assert.equal(probe.metricsUrl, undefined, 'no Prometheus endpoint');
      assert.ok(!((await getOperation(operationsClient(probe.address), 'publish:otlp-1')) instanceof Error));
      await until(
        () => bodies.some((b) => b.startsWith('/v1/metrics ') && b.includes('rpc.server.duration')),
        'an OTLP export with the call duration',
        10_000,
      );
    } finally {
      collector.close();
    }
  });
});
