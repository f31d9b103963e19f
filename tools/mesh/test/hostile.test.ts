// Hostile input, property-based: for every RPC of every service (found by walking the
// contracts' descriptors, so a new RPC or field is covered the day it is added), requests
// whose strings, numbers, enums, repeated and map fields hold hostile values (huge strings,
// NUL, NATS wildcards, "../", unicode, white space; 2^64-1, negatives, unknown enum numbers;
// very long lists) go to the real services of a real mesh over gRPC. No answer may be
// INTERNAL or UNKNOWN, none may hang past its deadline or find the service gone, and every
// process must still be alive and SERVING at the end.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import {
  create,
  createFileRegistry,
  fromBinary,
  ScalarType,
  toBinary,
  type DescEnum,
  type DescField,
  type DescMessage,
  type DescService,
} from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import fc from 'fast-check';
import { startMesh, type Mesh, type ServiceName } from '../src/mesh';

/** The gRPC services each process serves (occi-gateway answers health only). */
const SERVED: Partial<Record<ServiceName, string[]>> = {
  'container-runtime': ['lapis.runtime.v1.RuntimeService'],
  'image-sync': ['lapis.images.v1.ImageSyncService', 'lapis.common.v1.OperationsService'],
  scheduler: ['lapis.scheduler.v1.SchedulerService'],
  'tosca-orchestrator': ['lapis.tosca.v1.ToscaService', 'lapis.common.v1.OperationsService'],
};
/** Requests per RPC (LAPIS_HOSTILE_RUNS to run more). */
const RUNS = Number(process.env.LAPIS_HOSTILE_RUNS ?? 20);
const DEADLINE_MS = 20_000;
/** What a hostile request may never get back. */
const FORBIDDEN = new Set([status.INTERNAL, status.UNKNOWN, status.DEADLINE_EXCEEDED, status.UNAVAILABLE]);

const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(require.resolve('@lapis/proto/descriptor.binpb'))));

const HOSTILE_TEXT = [
  '',
  'a',
  '*',
  '>',
  'a.*',
  'lapis.>',
  '\u0000',
  'a\u0000b',
  '../../etc/passwd',
  '..',
  '.',
  'a..b',
  ' ',
  'a b',
  '\t\n\r',
  '%2E',
  '$KV.x.y',
  'ü',
  '日本語',
  '🙂',
  '\uFFFF',
  '-',
  'operations/../x',
  'lapis/busybox:1.36',
  'A'.repeat(129),
  'x'.repeat(5_000),
  'y'.repeat(70_000),
];
const text = fc.oneof(fc.constantFrom(...HOSTILE_TEXT), fc.string({ maxLength: 16, unit: 'binary' }));
const U64 = [0n, 1n, 2n ** 53n - 1n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n];
const I64 = [-(2n ** 63n), -1n, 0n, 2n ** 53n + 1n, 2n ** 63n - 1n];
const U32 = [0, 1, 99, 2 ** 31, 2 ** 32 - 1];
const I32 = [-(2 ** 31), -1, 0, 99, 2 ** 31 - 1];

function scalar(type: ScalarType): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.STRING:
      return text;
    case ScalarType.BYTES:
      return fc.oneof(fc.constant(new Uint8Array(0)), fc.constant(new Uint8Array(100_000).fill(0xff)), fc.uint8Array({ maxLength: 32 }));
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.constantFrom(Number.NaN, Infinity, -Infinity, -1, 1e308, 0);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.constantFrom(...U64);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.constantFrom(...I64);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.constantFrom(...U32);
    default:
      return fc.constantFrom(...I32);
  }
}

/** A value for one item of the field (the field itself when singular), of the field's type. */
function single(field: DescField, depth: number): fc.Arbitrary<unknown> {
  const kind = field.fieldKind === 'list' ? field.listKind : field.fieldKind === 'map' ? field.mapKind : field.fieldKind;
  const f = field as { scalar?: ScalarType; enum?: DescEnum; message?: DescMessage };
  if (kind === 'scalar') return scalar(f.scalar!);
  if (kind === 'enum') return fc.constantFrom(...f.enum!.values.map((v) => v.number), 99, -1, 2 ** 31 - 1);
  return message(f.message!, depth + 1);
}

const small = (v: unknown) => typeof v !== 'string' || v.length < 10;

function fieldValue(field: DescField, depth: number): fc.Arbitrary<unknown> {
  if (field.fieldKind === 'list') {
    const item = single(field, depth);
    // Long lists hold one small value many times, so the message stays under gRPC's 4 MiB.
    const long = field.listKind === 'message' ? fc.constant([]) : item.filter(small).map((v) => Array.from({ length: 2_000 }, () => v));
    return fc.oneof(fc.array(item, { maxLength: 3 }), long);
  }
  if (field.fieldKind === 'map') {
    const value = single(field, depth);
    const key = field.mapKey === ScalarType.STRING ? text : scalar(field.mapKey).map(String);
    const many =
      field.mapKind === 'message'
        ? fc.constant({})
        : value.filter(small).map((v) => Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, v])));
    return fc.oneof(fc.dictionary(key as fc.Arbitrary<string>, value, { maxKeys: 3 }), many);
  }
  return single(field, depth);
}

/** A @bufbuild/protobuf init object for `desc` with hostile values in some of its fields. */
function message(desc: DescMessage, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  if (depth > 3) return fc.constant({});
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const member of desc.members) {
    if (member.kind === 'oneof') {
      parts[member.localName] = fc.option(
        fc.oneof(...member.fields.map((f) => fieldValue(f, depth).map((value) => ({ case: f.localName, value })))),
        { nil: undefined },
      );
    } else {
      parts[member.localName] = fc.option(fieldValue(member, depth), { nil: undefined, freq: 3 });
    }
  }
  return fc.record(parts).map((init) => Object.fromEntries(Object.entries(init).filter(([, v]) => v !== undefined)));
}

interface Outcome {
  code: status;
  details: string;
}

/** One call with raw bytes; resolves with the status (streams: at the first message or the end). */
function call(client: Client, path: string, stream: boolean, body: Uint8Array, token: string): Promise<Outcome> {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  const options = { deadline: Date.now() + DEADLINE_MS };
  const serialize = () => Buffer.from(body);
  const deserialize = (b: Buffer) => b;
  return new Promise((resolve) => {
    if (!stream) {
      client.makeUnaryRequest(path, serialize, deserialize, null, metadata, options, (error: ServiceError | null) =>
        resolve(error ? { code: error.code, details: error.details } : { code: status.OK, details: '' }),
      );
      return;
    }
    const s = client.makeServerStreamRequest(path, serialize, deserialize, null, metadata, options);
    let done = false;
    const finish = (outcome: Outcome) => {
      if (done) return;
      done = true;
      resolve(outcome);
      s.cancel();
    };
    s.on('data', () => finish({ code: status.OK, details: 'streaming' }));
    s.on('error', (error: ServiceError) => finish({ code: error.code, details: error.details }));
    s.on('end', () => finish({ code: status.OK, details: '' }));
  });
}

/** grpc.health.v1.Health/Check for the whole server: true when SERVING. */
async function serving(address: string): Promise<boolean> {
  const client = new Client(address, credentials.createInsecure());
  try {
    return await new Promise<boolean>((resolve) =>
      client.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        () => Buffer.alloc(0),
        (b: Buffer) => b,
        null,
        new Metadata(),
        { deadline: Date.now() + 5_000 },
        (error, response) =>
          // HealthCheckResponse { status = 1 (SERVING) } is the two bytes 08 01.
          resolve(!error && response?.equals(Buffer.from([0x08, 0x01])) === true),
      ),
    );
  } finally {
    client.close();
  }
}

/** The service's last logged bug, to say why it answered INTERNAL. */
function cause(mesh: Mesh, name: ServiceName): string {
  const bug = mesh.processes[name]?.logs.findLast((l) => l.msg === 'unexpected error') as { err?: { stack?: string } } | undefined;
  return bug?.err?.stack ? `; logged: ${bug.err.stack.split('\n').slice(0, 3).join(' | ').slice(0, 500)}` : '';
}

describe('hostile requests to every RPC of the real mesh (property-based)', function () {
  this.timeout(15 * 60_000);
  let mesh: Mesh;
  const clients: Client[] = [];

  before(async function () {
    this.timeout(10 * 60_000);
    mesh = await startMesh();
  });
  after(async () => {
    for (const client of clients) client.close();
    await mesh?.stop();
  });

  it('never answers INTERNAL or UNKNOWN, never hangs, and every service stays up', async () => {
    // A service added to the contracts must be mapped to its process here, or it goes untested.
    const contracts = [...registry].filter((t) => t.kind === 'service' && t.typeName.startsWith('lapis.')).map((t) => t.typeName);
    const served = new Set(Object.values(SERVED).flat());
    assert.deepEqual(
      contracts.filter((name) => !served.has(name)),
      [],
      'services no process in SERVED serves',
    );
    const failures: string[] = [];
    const tokens = [mesh.tokens.admin.token, mesh.tokens.alice.token];
    for (const [name, services] of Object.entries(SERVED) as Array<[ServiceName, string[]]>) {
      const client = new Client(mesh.addresses[name]!, credentials.createInsecure(), { 'grpc.max_send_message_length': 64 * 1024 * 1024 });
      clients.push(client);
      for (const serviceName of services) {
        const service = registry.getService(serviceName) as DescService;
        for (const method of service.methods) {
          const path = `/${serviceName}/${method.name}`;
          const stream = method.methodKind === 'server_streaming';
          let first = '';
          await fc
            .assert(
              fc.asyncProperty(message(method.input), fc.constantFrom(...tokens), async (init, token) => {
                const body = toBinary(method.input, create(method.input, init as never));
                const outcome = await call(client, path, stream, body, token);
                if (FORBIDDEN.has(outcome.code)) {
                  first ||= `${name} ${path}: ${status[outcome.code]} ${outcome.details.slice(0, 300)}${cause(mesh, name)}`;
                  return false;
                }
                return true;
              }),
              // No shrinking: the first failure of each RPC is reported, and the run stays short.
              { numRuns: RUNS, endOnFailure: true },
            )
            .catch((error: Error) => failures.push(first || error.message.slice(0, 500)));
        }
      }
    }
    for (const [name, process] of Object.entries(mesh.processes)) {
      const exited = await Promise.race([
        process.exited.then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10)),
      ]);
      if (exited) failures.push(`${name} exited: ${process.stderr().slice(-1000)}`);
      else if (!(await serving(mesh.addresses[name as ServiceName]!))) failures.push(`${name} is not SERVING after the hostile requests`);
    }
    assert.deepEqual(failures, []);
  });
});
