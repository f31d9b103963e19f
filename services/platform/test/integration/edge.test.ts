// The edge every request passes (a real grpc-js server with the contracts' RuntimeService, its
// handlers recording what reached them) and the NATS backstop behind it (real JetStream).
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { create, createFileRegistry, fromBinary, toBinary, type DescMessage } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { InstanceStateChanged } from '@lapis/proto/lapis/events/v1/events';
import { RuntimeServiceService } from '@lapis/proto/lapis/runtime/v1/runtime_service';
import { errorDetails, LapisError } from '../../src/errors';
import { service, type GrpcServer, type Handlers } from '../../src/grpc/server';
import { EventBus } from '../../src/nats/bus';
import { startServer, STATIC_TOKENS } from '../grpc-harness';
import { log, natsUrl, unique } from '../helpers';

const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(require.resolve('@lapis/proto/descriptor.binpb'))));
const input = (method: string) => registry.getService('lapis.runtime.v1.RuntimeService')!.methods.find((m) => m.name === method)!.input;

describe('edge validation of every request (real gRPC server)', () => {
  let server: GrpcServer;
  let client: Client;
  /** Methods whose handler ran. */
  const reached: string[] = [];

  before(async () => {
    // Every handler answers an empty response: what matters is whether the request got there.
    const handlers = new Proxy({}, { get: (_, method: string) => async () => (reached.push(method), {}) }) as Handlers<
      typeof RuntimeServiceService
    >;
    let address: string;
    ({ server, address } = await startServer([service(RuntimeServiceService, handlers)]));
    client = new Client(address, credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await server.shutdown(1_000);
  });
  beforeEach(() => reached.splice(0));

  /** Sends `init` (a @bufbuild/protobuf init: 64-bit numbers as bigint) to a RuntimeService method. */
  function send(method: string, init: Record<string, unknown>) {
    const desc: DescMessage = input(method);
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${STATIC_TOKENS.root}`);
    const body = Buffer.from(toBinary(desc, create(desc, init as never)));
    return new Promise<ServiceError | undefined>((resolve) =>
      client.makeUnaryRequest(
        `/lapis.runtime.v1.RuntimeService/${method}`,
        () => body,
        (b: Buffer) => b,
        null,
        metadata,
        { deadline: Date.now() + 5_000 },
        (error) => resolve(error ?? undefined),
      ),
    );
  }

  async function refused(method: string, init: Record<string, unknown>): Promise<string[]> {
    const error = await send(method, init);
    assert.ok(error, `${method} was accepted`);
    assert.equal(status[error.code], 'INVALID_ARGUMENT', error.details);
    assert.deepEqual(reached, [], 'the handler ran');
    return errorDetails(error).violations.map((v) => v.field);
  }

  it('names a 64-bit number above 2^53 instead of answering INTERNAL', async () => {
    assert.deepEqual(await refused('CreateVolume', { name: 'data', sizeBytes: 2n ** 64n - 1n }), ['size_bytes']);
    assert.deepEqual(await refused('CreateInstance', { spec: { name: 'web', resources: { cpuMillis: 2n ** 53n + 1n } } }), [
      'spec.resources.cpu_millis',
    ]);
  });

  it('refuses ids that are too long or hold what NATS gives meaning to, before the handler', async () => {
    for (const id of ['x'.repeat(5_000), 'a*', '>', 'a\u0000b', '../etc', 'a b', 'a.b']) {
      assert.deepEqual(await refused('GetInstance', { instanceId: id }), ['instance_id'], JSON.stringify(id.slice(0, 20)));
    }
    assert.deepEqual(await refused('GetNode', { name: 'node..1' }), ['name']);
  });

  it('refuses unknown enum values, huge image names and unbounded labels, naming each field', async () => {
    const fields = await refused('CreateInstance', {
      spec: { name: 'web', image: 'i'.repeat(10_000), devices: [{ kind: 99 }], labels: { team: 'v'.repeat(300) } },
    });
    assert.deepEqual(fields.sort(), ['spec.devices[0].kind', 'spec.image', 'spec.labels[team]']);
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']));
    assert.deepEqual(await refused('CreateVolume', { name: 'data', labels: many }), ['labels']);
    assert.deepEqual(await refused('ListInstances', { state: 42 }), ['state']);
  });

  it('lets an ordinary request through', async () => {
    const error = await send('CreateInstance', {
      instanceId: 'i-0123456789abcdef0123',
      requestId: 'tosca dep-1:submitClaim:web:0',
      spec: {
        name: 'web-1',
        flavor: 'm1.small',
        image: `registry.site:5000/lapis/busybox@sha256:${'a'.repeat(64)}`,
        command: ['sh', '-c', 'echo "hello\nworld"'],
        environment: { GREETING: 'multi\nline' },
        labels: { 'tosca/deployment': 'dep-1', team: 'physics' },
        volumes: [{ volumeId: 'vol-0123456789abcdef', mountPath: '/mnt/data' }],
        devices: [{ kind: 1, count: 2 }],
      },
    });
    assert.equal(error, undefined, error?.details);
    assert.deepEqual(reached, ['createInstance']);
  });
});

describe('NATS key-value backstop (real JetStream)', () => {
  let bus: EventBus;
  before(async () => (bus = await EventBus.connect({ url: natsUrl(), name: 'platform-edge-test', stream: 'LAPIS', log })));
  after(async () => bus.drain());

  it('answers absent for a key NATS would refuse, and keeps the connection', async () => {
    const bucket = await bus.bucket(unique('edge').toLowerCase(), {
      encode: (v: string) => ({ finish: () => Buffer.from(v) }),
      decode: (b: Uint8Array) => Buffer.from(b).toString(),
    });
    for (const key of ['', 'x'.repeat(5_000), 'a*', '>', 'a\u0000b', '../etc', '.a', 'a..b']) {
      assert.equal(await bucket.get(key), undefined, JSON.stringify(key.slice(0, 20)));
    }
    await bucket.put('fine', 'v');
    assert.equal((await bucket.get('fine'))?.value, 'v');
    assert.equal(bus.nc.isClosed(), false);
  });

  it('refuses an event key too long for a subject, and keeps the connection', async () => {
    const key = 'x'.repeat(5_000);
    const payload = { $case: 'instanceStateChanged' as const, instanceStateChanged: InstanceStateChanged.fromPartial({ instanceId: key }) };
    await assert.rejects(
      bus.publish(payload, key),
      (error: unknown) => error instanceof LapisError && error.code === status.INVALID_ARGUMENT,
    );
    assert.equal(bus.nc.isClosed(), false);
    await bus.publish(
      { $case: 'instanceStateChanged', instanceStateChanged: InstanceStateChanged.fromPartial({ instanceId: 'i-1' }) },
      'i-1',
    );
  });

  it('refuses to write under such a key with INVALID_ARGUMENT', async () => {
    const bucket = await bus.bucket(unique('edge').toLowerCase(), {
      encode: (v: string) => ({ finish: () => Buffer.from(v) }),
      decode: (b: Uint8Array) => Buffer.from(b).toString(),
    });
    for (const write of [() => bucket.put('a*', 'v'), () => bucket.create('x'.repeat(5_000), 'v'), () => bucket.delete('')]) {
      await assert.rejects(
        write(),
        (error: unknown) => error instanceof LapisError && error.code === status.INVALID_ARGUMENT && error.reason === 'INVALID_KEY',
      );
    }
  });
});
