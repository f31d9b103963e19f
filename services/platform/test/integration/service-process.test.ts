// A service as its own process, the way it runs in production: started with telemetry
// registered first, stopped with SIGTERM, exporting spans to a trace collector.
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { staticTokenFile } from '../../src/testing';
import { getOperation, operationsClient } from '../grpc-harness';
import { natsUrl, sleep, until } from '../helpers';

interface LogLine {
  msg: string;
  [field: string]: unknown;
}

interface Probe {
  child: ChildProcess;
  logs: LogLine[];
  stderr: () => string;
  exited: Promise<number | null>;
}

function startProbe(env: Record<string, string>): Probe {
  const child = spawn(
    process.execPath,
    ['-r', require.resolve('../../src/telemetry/register'), require.resolve('../fixtures/service-main')],
    {
      env: {
        PATH: process.env.PATH,
        LAPIS_GRPC_PORT: '0',
        LAPIS_GRPC_HOST: '127.0.0.1',
        LAPIS_NATS_URL: natsUrl(),
        LAPIS_STATIC_TOKENS_FILE: staticTokenFile(),
        LAPIS_SHUTDOWN_GRACE_MS: '5000',
        OTEL_SERVICE_NAME: 'probe',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: LogLine[] = [];
  let stderr = '';
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) logs.push(JSON.parse(line));
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, logs, stderr: () => stderr, exited };
}

async function listening(probe: Probe): Promise<string> {
  const line = await until(() => probe.logs.find((l) => l.msg === 'gRPC server listening'), `the probe to listen (stderr: ${probe.stderr()})`);
  return `127.0.0.1:${line.port}`;
}

describe('a service process (real NATS, real signals)', () => {
  const running: Probe[] = [];
  afterEach(() => running.splice(0).forEach((p) => p.child.kill('SIGKILL')));

  it('on SIGTERM finishes the call in flight, refuses new ones, then exits 0', async () => {
    const probe = startProbe({});
    running.push(probe);
    const address = await listening(probe);
    const inFlight = getOperation(operationsClient(address), 'slow:1500');
    await sleep(300);
    probe.child.kill('SIGTERM');
    await sleep(200);
    const late = await getOperation(operationsClient(address, { token: 'alice-token', maxAttempts: 1 }), 'late');
    assert.ok(late instanceof Error, 'a call after SIGTERM is refused');
    assert.equal((late as ServiceError).code, status.UNAVAILABLE);
    const finished = await inFlight;
    assert.ok(!(finished instanceof Error), `the in-flight call completes: ${(finished as Error).message}`);
    assert.equal(await probe.exited, 0);
    const steps = probe.logs.filter((l) => l.msg === 'stopped').map((l) => l.step);
    assert.deepEqual(steps, ['grpc', 'nats', 'telemetry']);
  });

  it('refuses to start on a bad variable, naming it', async () => {
    const probe = startProbe({ LAPIS_GRPC_PORT: 'abc' });
    running.push(probe);
    assert.equal(await probe.exited, 1);
    assert.match(probe.stderr(), /cannot start: invalid configuration:\n {2}LAPIS_GRPC_PORT="abc" is invalid/);
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
      const probe = startProbe({
        OTEL_TRACES_EXPORTER: 'zipkin',
        OTEL_EXPORTER_ZIPKIN_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}/api/v2/spans`,
      });
      running.push(probe);
      const address = await listening(probe);
      const traceId = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
      const metadata = new Metadata();
      metadata.set('traceparent', `00-${traceId}-1122334455667788-01`);
      const response = await getOperation(operationsClient(address), 'publish:traced-1', metadata);
      assert.ok(!(response instanceof Error), (response as Error).message);
      await until(() => probe.logs.find((l) => l.msg === 'consumed'), 'the event to be consumed');
      probe.child.kill('SIGTERM'); // the last shutdown step flushes the spans
      assert.equal(await probe.exited, 0);

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
});
