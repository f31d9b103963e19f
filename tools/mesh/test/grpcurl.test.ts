// grpcurl, a real gRPC client (built from its Go module by @lapis/testenv), against every
// service of the mesh through server reflection alone: it is given no .proto file, so what it
// lists, describes and calls comes from the descriptors each server sends.
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { ensureGrpcurl } from '@lapis/testenv';
import { startMesh, type Mesh, type ServiceName } from '../src/mesh';

interface Case {
  service: ServiceName;
  /** What `grpcurl list` must answer, sorted. */
  lists: string[];
  /** A service to describe, and a line its description must hold. */
  describe: [string, string];
  /** A message that uses a well-known type, and the field that does. */
  message: [string, string];
  /** One call with alice's token, its request, and what the answer must hold. */
  call: [string, object, RegExp];
}

const HEALTH = 'grpc.health.v1.Health';
const TEMPLATE =
  'tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    box:\n      type: tosca.nodes.Compute\n';

describe('grpcurl through server reflection, on every service', function () {
  this.timeout(600_000);
  let mesh: Mesh;
  let bin: string;

  before(async () => {
    // The first build on a machine takes a minute or two; later runs find it cached.
    bin = (await ensureGrpcurl({ progress: (line) => console.error(line) })).bin;
    mesh = await startMesh();
  });
  after(async () => mesh?.stop());

  /** Runs grpcurl against a service: grpcurl -plaintext [flags] ADDRESS [args]. */
  const grpcurl = (service: ServiceName, args: string[], flags: string[] = []) =>
    new Promise<string>((resolve, reject) =>
      execFile(bin, ['-plaintext', '-max-time', '30', ...flags, mesh.addresses[service]!, ...args], (error, stdout, stderr) =>
        error
          ? reject(new Error(`grpcurl ${[...flags, ...args].join(' ')} against ${service}: ${stderr || error.message}`))
          : resolve(stdout),
      ),
    );
  const invoke = (service: ServiceName, method: string, body: object) =>
    grpcurl(service, [method], ['-H', `authorization: Bearer ${mesh.tokens.alice.token}`, '-d', JSON.stringify(body)]);

  const cases: Case[] = [
    {
      service: 'container-runtime',
      lists: [HEALTH, 'lapis.runtime.v1.RuntimeService'],
      describe: [
        'lapis.runtime.v1.RuntimeService',
        'rpc StreamInstanceLogs ( .lapis.runtime.v1.StreamInstanceLogsRequest ) returns ( stream .lapis.runtime.v1.StreamInstanceLogsResponse );',
      ],
      message: ['lapis.runtime.v1.StreamInstanceLogsRequest', '.google.protobuf.Timestamp since_time = 4;'],
      call: ['lapis.runtime.v1.RuntimeService/GetNode', {}, /"name": "node-/],
    },
    {
      service: 'image-sync',
      lists: [HEALTH, 'lapis.common.v1.OperationsService', 'lapis.images.v1.ImageSyncService'],
      describe: [
        'lapis.images.v1.ImageSyncService',
        'rpc ResolveImage ( .lapis.images.v1.ResolveImageRequest ) returns ( .lapis.images.v1.ResolveImageResponse );',
      ],
      message: ['lapis.common.v1.Operation', '.google.protobuf.Any metadata = 3;'],
      call: ['lapis.images.v1.ImageSyncService/ListImages', {}, /"repository": "lapis\/busybox"/],
    },
    {
      service: 'scheduler',
      lists: [HEALTH, 'lapis.scheduler.v1.SchedulerService'],
      describe: [
        'lapis.scheduler.v1.SchedulerService',
        'rpc SubmitClaim ( .lapis.scheduler.v1.SubmitClaimRequest ) returns ( .lapis.scheduler.v1.SubmitClaimResponse );',
      ],
      message: ['lapis.scheduler.v1.Claim', '.google.protobuf.Timestamp'],
      call: ['lapis.scheduler.v1.SchedulerService/ListFlavors', {}, /"name": "m1\.tiny"/],
    },
    {
      service: 'tosca-orchestrator',
      lists: [HEALTH, 'lapis.common.v1.OperationsService', 'lapis.tosca.v1.ToscaService'],
      describe: [
        'lapis.tosca.v1.ToscaService',
        'rpc WatchDeployment ( .lapis.tosca.v1.WatchDeploymentRequest ) returns ( stream .lapis.tosca.v1.WatchDeploymentResponse );',
      ],
      message: ['lapis.tosca.v1.ValidateTemplateRequest', '.google.protobuf.Struct inputs = 2;'],
      // Struct inputs and a oneof: the request is encoded from the reflected descriptors.
      call: ['lapis.tosca.v1.ToscaService/ValidateTemplate', { template: { yaml: TEMPLATE }, inputs: { size: 1 } }, /"valid": true/],
    },
    {
      // The gateway serves OCCI over HTTP; its gRPC port serves health (and reflection) only.
      service: 'occi-gateway',
      lists: [HEALTH],
      describe: [HEALTH, 'rpc Check ( .grpc.health.v1.HealthCheckRequest ) returns ( .grpc.health.v1.HealthCheckResponse );'],
      message: ['grpc.health.v1.HealthListResponse', 'map<string, .grpc.health.v1.HealthCheckResponse> statuses = 1;'],
      call: [`${HEALTH}/Check`, {}, /"status": "SERVING"/],
    },
  ];

  for (const c of cases) {
    it(`${c.service}: list, describe a service and a message, call with a bearer token, health`, async () => {
      const listed = (await grpcurl(c.service, ['list'])).split('\n').filter(Boolean).sort();
      assert.deepEqual(
        listed.filter((name) => !name.startsWith('grpc.reflection.')),
        c.lists,
      );
      const [service, rpcLine] = c.describe;
      assert.ok((await grpcurl(c.service, ['describe', service])).includes(rpcLine), `describe ${service} lacks "${rpcLine}"`);
      const [message, field] = c.message;
      const described = await grpcurl(c.service, ['describe', message]);
      assert.match(described, new RegExp(`^${message.replace(/\./g, '\\.')} is a message:`));
      assert.ok(described.includes(field), `describe ${message} lacks "${field}":\n${described}`);
      const [method, request, answer] = c.call;
      assert.match(await invoke(c.service, method, request), answer);
      for (const name of c.lists) {
        assert.match(await invoke(c.service, `${HEALTH}/Check`, { service: name === HEALTH ? '' : name }), /"status": "SERVING"/);
      }
    });
  }
});
