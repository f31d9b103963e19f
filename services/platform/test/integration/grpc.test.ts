import { strict as assert } from 'node:assert';
import { dirname, join } from 'node:path';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { errorDetails } from '../../src/errors';
import type { GrpcServer } from '../../src/grpc/server';
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
    const reflectionProto = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto/grpc/reflection/v1/reflection.proto');
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
        new Promise<ServiceError | null>((resolve) => operationsClient(address, { token }).cancelOperation({ name: 'x' }, (e) => resolve(e)));
      const denied = await cancel(STATIC_TOKENS.alice);
      assert.equal(denied?.code, status.PERMISSION_DENIED);
      assert.match(denied!.details, /CancelOperation needs the admin role; alice does not have it/);
      assert.equal(await cancel(STATIC_TOKENS.root), null);
    });
  });
});
