import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { dirname, join } from 'node:path';
import { Metadata, status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import type { WatchOperationResponse } from '@lapis/proto/lapis/common/v1/common';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { errorDetails } from '../../src/errors';
import type { GrpcServer } from '../../src/grpc/server';
import type { CallerLimits } from '../../src/grpc/stream-limits';
import { until } from '../../src/testing';
import { operationsService, type OperationsProbe } from '../fixtures/operations';
import { dynamicClient, getOperation, operationsClient, startServer, STATIC_TOKENS } from '../grpc-harness';
import { sleep } from '../helpers';

const isError = (value: unknown): value is ServiceError => value instanceof Error;

describe('gRPC server (real grpc-js server and clients)', () => {
  let server: GrpcServer;
  let address: string;
  const probe: OperationsProbe = { flakyAttempts: 0, aborted: [] };

  before(async () => ({ server, address } = await startServer([operationsService(probe)])));
  after(async () => server.shutdown(1_000));

  describe('health', () => {
    const check = (service: string) =>
      new Promise<{ status: string } | ServiceError>((resolve) => {
        const client = dynamicClient(healthProtoPath, 'grpc.health.v1.Health', address);
        client.check({ service }, (error: ServiceError | null, response: { status: string }) => resolve(error ?? response));
      });

    it('answers SERVING overall and per service, NOT_FOUND for a service it does not serve', async () => {
      assert.deepEqual(await check(''), { status: 'SERVING' });
      assert.deepEqual(await check('lapis.common.v1.OperationsService'), { status: 'SERVING' });
      const unknown = await check('lapis.nothing.v1.NothingService');
      assert.ok(isError(unknown));
      assert.equal(unknown.code, status.NOT_FOUND);
    });

    it('follows its dependencies: NOT_SERVING while one is down', async () => {
      server.setDependency('nats', false);
      assert.deepEqual(await check(''), { status: 'NOT_SERVING' });
      assert.deepEqual(await check('lapis.common.v1.OperationsService'), { status: 'NOT_SERVING' });
      server.setDependency('nats', true);
      assert.deepEqual(await check(''), { status: 'SERVING' });
    });
  });

  describe('reflection', () => {
    const reflectionProto = join(
      dirname(require.resolve('@grpc/reflection/package.json')),
      'build/proto/grpc/reflection/v1/reflection.proto',
    );
    const ask = (request: object) =>
      new Promise<any>((resolve, reject) => {
        const stream = dynamicClient(reflectionProto, 'grpc.reflection.v1.ServerReflection', address).serverReflectionInfo();
        stream.on('data', (response: unknown) => {
          resolve(response);
          stream.end();
        });
        stream.on('error', reject);
        stream.write(request);
      });

    it('lists the services the server serves', async () => {
      const response = await ask({ listServices: '' });
      const names = response.listServicesResponse.service.map((s: { name: string }) => s.name).sort();
      assert.deepEqual(names, ['grpc.health.v1.Health', 'lapis.common.v1.OperationsService']);
    });

    it('describes a service by its symbol, with the files it imports', async () => {
      const response = await ask({ fileContainingSymbol: 'lapis.common.v1.OperationsService' });
      const files: Buffer[] = response.fileDescriptorResponse.fileDescriptorProto;
      assert.ok(files.length >= 1);
      assert.ok(files.some((f) => f.toString('latin1').includes('lapis/common/v1/common.proto')));
    });
  });

  describe('handlers and errors', () => {
    it('gives the handler the authenticated caller', async () => {
      const response = await getOperation(operationsClient(address), 'op-1');
      assert.ok(!isError(response));
      assert.equal(response.operation?.kind, 'alice');
      assert.equal(response.operation?.project, 'physics');
    });

    it('streams every message of a server-streaming handler', async () => {
      const names: string[] = [];
      await new Promise<void>((resolve, reject) =>
        operationsClient(address)
          .watchOperation({ name: 'w' })
          .on('data', (m) => names.push(m.operation.name))
          .on('end', resolve)
          .on('error', reject),
      );
      assert.deepEqual(names, ['w/1', 'w/2', 'w/3']);
    });

    it('sends the code, the message and machine-readable details', async () => {
      const error = await getOperation(operationsClient(address), 'missing');
      assert.ok(isError(error));
      assert.equal(error.code, status.NOT_FOUND);
      assert.equal(error.details, 'operation "missing" does not exist');
      const details = errorDetails(error);
      assert.deepEqual(details.errorInfo, { reason: 'OPERATION_NOT_FOUND', domain: 'test.lapis.dev', metadata: { name: 'missing' } });
    });

    it('names the bad field of an invalid request', async () => {
      const error = await new Promise<ServiceError>((resolve) =>
        operationsClient(address).listOperations({ pageSize: -1, pageToken: '', onlyRunning: false }, (e) => resolve(e!)),
      );
      assert.equal(error.code, status.INVALID_ARGUMENT);
      assert.match(error.details, /page_size: must not be negative/);
      assert.deepEqual(errorDetails(error).violations, [{ field: 'page_size', description: 'must not be negative' }]);
    });

    it('hides a bug behind INTERNAL without leaking its message', async () => {
      const error = await getOperation(operationsClient(address), 'bug');
      assert.ok(isError(error));
      assert.equal(error.code, status.INTERNAL);
      assert.doesNotMatch(error.details, /undefined/);
      assert.match(error.details, /internal error in \/lapis\.common\.v1\.OperationsService\/GetOperation/);
    });
  });

  describe('client', () => {
    it('retries a call that fails with UNAVAILABLE', async () => {
      probe.flakyAttempts = 0;
      const response = await getOperation(operationsClient(address), 'flaky');
      assert.ok(!isError(response), String((response as Error).message));
      assert.equal(probe.flakyAttempts, 3);
    });

    it('gives up after its attempts and reports UNAVAILABLE', async () => {
      probe.flakyAttempts = -10;
      const error = await getOperation(operationsClient(address, { token: STATIC_TOKENS.alice, maxAttempts: 2 }), 'flaky');
      assert.ok(isError(error));
      assert.equal(error.code, status.UNAVAILABLE);
    });

    it('with waitForReady, waits within its deadline for a server that is not listening yet, instead of failing at once', async () => {
      const free = createNetServer().listen(0, '127.0.0.1');
      await once(free, 'listening');
      const port = (free.address() as AddressInfo).port;
      free.close();
      const target = `127.0.0.1:${port}`;
      const failsFast = await getOperation(operationsClient(target, { token: STATIC_TOKENS.alice, maxAttempts: 1 }), 'early');
      assert.equal((failsFast as ServiceError).code, status.UNAVAILABLE);
      const patient = getOperation(
        operationsClient(target, { token: STATIC_TOKENS.alice, maxAttempts: 1, waitForReady: true, deadlineMs: 15_000 }),
        'patient',
      );
      await sleep(500);
      const late = await startServer([operationsService(probe)], {}, undefined, port);
      try {
        const response = await patient;
        assert.ok(!isError(response), String((response as Error).message));
      } finally {
        await late.server.shutdown(100);
      }
    });

    it('puts a deadline on unary calls, and the handler sees the call end', async () => {
      const error = await getOperation(operationsClient(address, { token: STATIC_TOKENS.alice, deadlineMs: 200 }), 'slow:5000');
      assert.ok(isError(error));
      assert.equal(error.code, status.DEADLINE_EXCEEDED);
      await sleep(100);
      assert.ok(probe.aborted.includes('slow:5000'));
    });

    it('acts in the project the caller names, when the caller is a member', async () => {
      const chemistry = await getOperation(operationsClient(address, { token: STATIC_TOKENS.alice, project: 'chemistry' }), 'p');
      assert.ok(!isError(chemistry));
      assert.equal(chemistry.operation?.project, 'chemistry');
      const metadata = new Metadata();
      metadata.set('x-lapis-project', 'biology');
      const denied = await getOperation(operationsClient(address), 'p', metadata);
      assert.ok(isError(denied));
      assert.equal(denied.code, status.PERMISSION_DENIED);
      assert.match(denied.details, /alice is not a member of project "biology"/);
    });

    it('lets only admins call admin methods', async () => {
      const cancel = (token: string) =>
        new Promise<ServiceError | null>((resolve) =>
          operationsClient(address, { token }).cancelOperation({ name: 'x' }, (e) => resolve(e)),
        );
      const denied = await cancel(STATIC_TOKENS.alice);
      assert.equal(denied?.code, status.PERMISSION_DENIED);
      assert.match(denied!.details, /CancelOperation needs the admin role; alice does not have it/);
      assert.equal(await cancel(STATIC_TOKENS.root), null);
    });
  });
});

describe('per-caller limits on calls in progress (real grpc-js server and clients)', () => {
  type Watch = ClientReadableStream<WatchOperationResponse>;
  let server: GrpcServer | undefined;
  let address: string;
  let started: string[];
  let stalls: number;
  const streams: Watch[] = [];

  /** A server of its own per test, with these limits. */
  const start = async (callerLimits: CallerLimits) => {
    started = [];
    stalls = 0;
    const probe: OperationsProbe = { flakyAttempts: 0, aborted: [], onStart: (name) => started.push(name), onStall: () => stalls++ };
    ({ server, address } = await startServer([operationsService(probe)], {}, callerLimits));
  };
  afterEach(async () => {
    for (const stream of streams.splice(0)) stream.cancel();
    await server?.shutdown(1_000);
    server = undefined;
  });

  /** Opens WatchOperation(name): resolves with the stream at its first message, or with its error. */
  const watch = (name: string, token = STATIC_TOKENS.alice) =>
    new Promise<Watch | ServiceError>((resolve) => {
      const stream = operationsClient(address, { token }).watchOperation({ name });
      streams.push(stream);
      stream.once('data', () => resolve(stream));
      stream.on('error', (error: ServiceError) => resolve(error));
    });
  const open = async (name: string, token?: string) => {
    const result = await watch(name, token);
    if (isError(result)) throw result;
    return result;
  };
  /** Runs WatchOperation(name) to its end. */
  const complete = (name: string, token = STATIC_TOKENS.alice) =>
    new Promise<void>((resolve, reject) =>
      operationsClient(address, { token })
        .watchOperation({ name })
        .on('data', () => {})
        .on('end', resolve)
        .on('error', reject),
    );
  const assertExhausted = (result: unknown, pattern: RegExp, reason: string) => {
    assert.ok(isError(result), 'expected RESOURCE_EXHAUSTED, but the call was accepted');
    assert.equal(result.code, status.RESOURCE_EXHAUSTED, result.details);
    assert.match(result.details, pattern);
    assert.equal(errorDetails(result).errorInfo?.reason, reason);
  };

  it("refuses streams past the limit, not another caller's, and gives a slot back when a stream ends or is cancelled", async () => {
    await start({ streams: 3, unary: 10 });
    const held = [await open('hold'), await open('hold')];
    // Two held, one free: streams that run to their end pass through the free slot one by one.
    for (let i = 0; i < 4; i++) await complete(`w${i}`);
    held.push(await open('hold'));
    assertExhausted(
      await watch('hold'),
      /^alice already has 3 streams open, the limit per caller \(LAPIS_MAX_STREAMS_PER_CALLER=3\); close one first$/,
      'TOO_MANY_STREAMS',
    );
    await open('hold', STATIC_TOKENS.bob);
    // Cancelled: the server hears of it a moment later, and the slot comes back then.
    held[0]!.cancel();
    await until(async () => !isError(await watch('hold')), "the cancelled stream's slot to come back");
    assertExhausted(await watch('hold'), /alice already has 3 streams open/, 'TOO_MANY_STREAMS');
  });

  it('gives the slot of a cancelled stream back while its client was not reading', async () => {
    await start({ streams: 1, unary: 10 });
    const flood = await open('flood');
    flood.pause();
    await until(() => stalls > 0, 'the server to wait for the client');
    assertExhausted(await watch('hold'), /alice already has 1 streams open/, 'TOO_MANY_STREAMS');
    flood.cancel();
    await until(async () => !isError(await watch('hold')), 'the slot of the cancelled stream to come back');
  });

  it("refuses unary calls in progress past the limit, not another caller's, and gives the slot back when a call ends", async () => {
    await start({ streams: 10, unary: 2 });
    const client = operationsClient(address, { token: STATIC_TOKENS.alice, deadlineMs: 120_000 });
    const calls = ['slow:60000', 'slow:60001'].map((name) => client.getOperation({ name }, () => {}));
    await until(() => started.length === 2, 'two calls in their handlers');
    const refused = await getOperation(client, 'quick');
    assertExhausted(
      refused,
      /^alice already has 2 calls in progress, the limit per caller \(LAPIS_MAX_CALLS_PER_CALLER=2\); wait for one to finish$/,
      'TOO_MANY_CALLS',
    );
    assert.ok(!isError(await getOperation(operationsClient(address, { token: STATIC_TOKENS.bob }), 'quick')));
    for (const call of calls) call.cancel();
    await until(async () => !isError(await getOperation(client, 'quick')), 'the slots of the cancelled calls to come back');
  });
});
