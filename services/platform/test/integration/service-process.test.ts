// A service as its own process, the way it runs in production: started with telemetry
// registered first, stopped with SIGTERM, exporting spans to a trace collector.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { spawnService, staticTokenFile, type ServiceProcess } from '../../src/testing';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { dynamicClient, getOperation, operationsClient } from '../grpc-harness';
import { natsUrl, sleep, until } from '../helpers';

const startProbe = (env: Record<string, string>) =>
  spawnService('probe', require.resolve('../fixtures/service-main'), {
    LAPIS_NATS_URL: natsUrl(),
    LAPIS_STATIC_TOKENS_FILE: staticTokenFile(),
    LAPIS_SHUTDOWN_GRACE_MS: '5000',
    ...env,
  });

describe('a service process (real NATS, real signals)', () => {
  const running: ServiceProcess[] = [];
  afterEach(() => Promise.all(running.splice(0).map((p) => p.kill())));

  it('on SIGTERM finishes the call in flight, refuses new ones, then exits 0', async () => {
    const probe = await startProbe({});
    running.push(probe);
    const address = probe.address;
    const inFlight = getOperation(operationsClient(address), 'slow:1500');
    await sleep(300);
    const exitCode = probe.stop();
    await sleep(200);
    const late = await getOperation(operationsClient(address, { token: 'alice-token', maxAttempts: 1 }), 'late');
    assert.ok(late instanceof Error, 'a call after SIGTERM is refused');
    assert.equal((late as ServiceError).code, status.UNAVAILABLE);
    const finished = await inFlight;
    assert.ok(!(finished instanceof Error), `the in-flight call completes: ${(finished as Error).message}`);
    assert.equal(await exitCode, 0);
    const steps = probe.logs.filter((l) => l.msg === 'stopped').map((l) => l.step);
    assert.deepEqual(steps, ['grpc', 'nats', 'telemetry']);
  });

  it('with LAPIS_SHUTDOWN_DELAY_MS, reports NOT_SERVING on SIGTERM and keeps serving for the delay, then refuses', async () => {
    const probe = await startProbe({ LAPIS_SHUTDOWN_DELAY_MS: '1500' });
    running.push(probe);
    const health = () =>
      new Promise<string>((resolve) =>
        dynamicClient(healthProtoPath, 'grpc.health.v1.Health', probe.address).check(
          { service: '' },
          (error: ServiceError | null, response: { status: string }) => resolve(error ? `error ${error.code}` : response.status),
        ),
      );
    assert.equal(await health(), 'SERVING');
    const exitCode = probe.stop();
    await sleep(300);
    assert.equal(await health(), 'NOT_SERVING', 'load balancers see it going');
    const during = await getOperation(operationsClient(probe.address, { token: 'alice-token', maxAttempts: 1 }), 'during');
    assert.ok(!(during instanceof Error), `a call within the delay is served: ${(during as Error).message}`);
    await sleep(1500);
    const after = await getOperation(operationsClient(probe.address, { token: 'alice-token', maxAttempts: 1 }), 'after');
    assert.equal((after as ServiceError).code, status.UNAVAILABLE, 'a call after the delay is refused');
    assert.equal(await exitCode, 0);
  });

  it('exits 1 at its shutdown deadline (twice the grace period) when a step hangs, naming the step', async () => {
    const probe = await startProbe({ LAPIS_SHUTDOWN_GRACE_MS: '1000', PROBE_STUCK_SHUTDOWN: '1' });
    running.push(probe);
    // The test's own escalation is far beyond the deadline: the service must exit by itself.
    assert.equal(await probe.stop(50_000), 1);
    const line = probe.logs.find((l) => l.msg === 'shutdown passed its deadline: exiting now');
    assert.ok(line, 'the service says why it exits');
    assert.equal(line.step, 'stuck');
  });

  it('refuses to start on a bad variable, naming it', async () => {
    await assert.rejects(
      startProbe({ LAPIS_GRPC_PORT: 'abc' }),
      /exited before listening: cannot start: invalid configuration:\n {2}LAPIS_GRPC_PORT="abc" is invalid/,
    );
  });

  it('limits the streams of one caller to LAPIS_MAX_STREAMS_PER_CALLER', async () => {
    const probe = await startProbe({ LAPIS_MAX_STREAMS_PER_CALLER: '2' });
    running.push(probe);
    const watch = () =>
      new Promise<ServiceError | undefined>((resolve) => {
        const stream = operationsClient(probe.address).watchOperation({ name: 'hold' });
        stream.once('data', () => resolve(undefined));
        stream.on('error', (error: ServiceError) => resolve(error));
      });
    assert.equal(await watch(), undefined);
    assert.equal(await watch(), undefined);
    const refused = await watch();
    assert.equal(refused?.code, status.RESOURCE_EXHAUSTED);
    assert.match(refused.details, /alice already has 2 streams open, the limit per caller \(LAPIS_MAX_STREAMS_PER_CALLER=2\)/);
  });

  it('makes one trace of a call and the event it publishes, exported to Zipkin, with trace ids in the logs', async () => {
    const spans: Array<{ traceId: string; id: string; parentId?: string; name: string; kind?: string }> = [];
    const collector = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk) => (body += chunk));
      request.on('end', () => {
        spans.push(...JSON.parse(body));
        response.statusCode = 202;
        response.end();
      });
    }).listen(0, '127.0.0.1');
    await once(collector, 'listening');
    try {
      const probe = await startProbe({
        OTEL_TRACES_EXPORTER: 'zipkin',
        OTEL_EXPORTER_ZIPKIN_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}/api/v2/spans`,
      });
      running.push(probe);
      const address = probe.address;
      const traceId = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
      const metadata = new Metadata();
      metadata.set('traceparent', `00-${traceId}-1122334455667788-01`);
      const response = await getOperation(operationsClient(address), 'publish:traced-1', metadata);
      assert.ok(!(response instanceof Error), (response as Error).message);
      await until(() => probe.logs.find((l) => l.msg === 'consumed'), 'the event to be consumed');
      assert.equal(await probe.stop(), 0, 'the last shutdown step flushes the spans');

      const ours = spans.filter((s) => s.traceId === traceId);
      const server = ours.find((s) => /OperationsService\/GetOperation/.test(s.name) && s.kind === 'SERVER');
      const send = ours.find((s) => s.name === 'send lapis.runtime.instance_state_changed' && s.kind === 'PRODUCER');
      const processed = ours.find((s) => s.name === 'process lapis.runtime.instance_state_changed' && s.kind === 'CONSUMER');
      assert.ok(server, `a server span in the trace; got ${JSON.stringify(spans.map((s) => s.name))}`);
      assert.ok(send, 'a producer span in the trace');
      assert.ok(processed, 'a consumer span in the trace');
      assert.equal(server.parentId, '1122334455667788', 'the server span continues the caller’s trace');
      assert.equal(send.parentId, server.id);
      assert.equal(processed.parentId, send.id, 'the consumer span follows the producer across NATS');

      for (const msg of ['publishing', 'consumed']) {
        const line = probe.logs.find((l) => l.msg === msg);
        assert.equal(line?.trace_id, traceId, `the "${msg}" log line carries the trace id`);
      }
    } finally {
      collector.close();
    }
  });

  it('exports and logs a failure without the secrets its error holds (URL query, bearer token, request and response)', async () => {
    // OTLP as JSON: unlike Zipkin's format it keeps span events with their attributes.
    const exported: string[] = [];
    const collector = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk) => (body += chunk));
      request.on('end', () => {
        exported.push(body);
        response.setHeader('content-type', 'application/json');
        response.end('{}');
      });
    }).listen(0, '127.0.0.1');
    await once(collector, 'listening');
    const secret = `canary${randomBytes(12).toString('hex')}`;
    try {
      const probe = await startProbe({
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/traces`,
        PROBE_SECRET: secret,
      });
      running.push(probe);
      const response = await getOperation(operationsClient(probe.address), 'publish:fails-with-secrets');
      assert.ok(!(response instanceof Error), (response as Error).message);
      const logged = await until(
        () => probe.logs.find((l) => l.msg === 'poison message terminated'),
        'the failed message to be terminated',
      );
      assert.equal(await probe.stop(), 0, 'the last shutdown step flushes the spans');

      // The failure is still told, less its secrets: the span's status and exception event, the log line's error.
      type OtlpSpan = {
        name: string;
        status?: { message?: string };
        events?: Array<{ name: string; attributes?: Array<{ key: string; value: { stringValue?: string } }> }>;
      };
      const spans = exported.flatMap((body) =>
        (JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }> }).resourceSpans.flatMap((r) =>
          r.scopeSpans.flatMap((s) => s.spans),
        ),
      );
      const failed = spans.find((s) => s.name === 'process lapis.runtime.instance_state_changed' && s.status?.message);
      assert.ok(failed, `the consumer's span, marked failed: ${JSON.stringify(spans.map((s) => s.name))}`);
      const told = 'registry refused GET https://registry.example/v2/token with Bearer [redacted]';
      assert.equal(failed.status?.message, told);
      const exception = failed.events?.find((e) => e.name === 'exception');
      const attribute = (key: string) => exception?.attributes?.find((a) => a.key === key)?.value.stringValue;
      assert.deepEqual([attribute('exception.type'), attribute('exception.message')], ['PoisonMessage', told]);
      const err = logged.err as { type?: string; message?: string; cause?: { message?: string } };
      assert.deepEqual([err.type, err.message, err.cause?.message], ['PoisonMessage', told, 'HTTP 401']);

      const leaks = [...exported, ...probe.logs.map((l) => JSON.stringify(l)), probe.stderr()].filter((text) => text.includes(secret));
      assert.deepEqual(leaks, [], 'spans and log lines that hold the secret');
    } finally {
      collector.close();
    }
  });
});
