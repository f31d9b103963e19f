// Safe to open to tenants: secrets planted in real requests (env values, user data, SSH keys, a
// TOSCA input, a bearer token, a query string) show up in no exported span and in no log line
// of any service, while the spans are still there; and what `make up` starts (NATS and its
// monitor, the registries, the services, Zipkin) listens on loopback only, so a container
// cannot reach it through its bridge gateway.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { createClient } from '@lapis/platform';
import { until } from '@lapis/platform/testing';
import { InstanceSpec, InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { GetClaimResponse, SubmitClaimResponse } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import { DeploymentState, type CreateDeploymentResponse, type GetDeploymentResponse } from '@lapis/proto/lapis/tosca/v1/tosca';
import { ToscaServiceClient } from '@lapis/proto/lapis/tosca/v1/tosca_service';
import { startMesh, type Mesh } from '../src/mesh';
import { startZipkin, type Zipkin, type ZipkinSpan } from '../src/zipkin';

type Unary<Res> = (metadata: Metadata, callback: (error: ServiceError | null, response: Res) => void) => unknown;
const unary = <Res>(invoke: Unary<Res>) =>
  new Promise<Res>((resolve, reject) => invoke(new Metadata(), (error, response) => (error ? reject(error) : resolve(response))));

/** Letters and digits only, so no encoding (URL, JSON, shell) changes how it reads. */
const canary = (what: string) => `canary${what}${randomBytes(12).toString('hex')}`;
const CANARIES = {
  env: canary('env'),
  userData: canary('userdata'),
  sshKey: canary('sshkey'),
  toscaInput: canary('toscainput'),
  token: canary('token'),
  query: canary('query'),
};

/**
 * How a canary can appear: as itself, or inside base64 (the runtime passes user data and the
 * spec that way) at any of the three byte alignments, without the partial groups at its ends.
 */
function formsOf(secret: string): string[] {
  const forms = [secret];
  for (let shift = 0; shift < 3; shift++)
    forms.push(
      Buffer.from('\0'.repeat(shift) + secret)
        .toString('base64')
        .slice(4, -4),
    );
  return forms;
}

/** Which canaries a text holds, read as it is and URL-decoded. */
function canariesIn(text: string): string[] {
  let decoded = text;
  try {
    decoded = decodeURIComponent(text);
  } catch {
    // not URL-encoded
  }
  return Object.entries(CANARIES)
    .filter(([, secret]) => formsOf(secret).some((form) => text.includes(form) || decoded.includes(form)))
    .map(([what]) => what);
}

/** A template whose container gets an environment variable from an input. */
const TEMPLATE = `tosca_definitions_version: tosca_simple_yaml_1_3
imports:
  - https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml
topology_template:
  inputs:
    secret: { type: string }
  node_templates:
    app:
      type: tosca.nodes.indigo.Container.Application.Docker
      properties:
        command: "sleep 3600"
        environment_variables: { APP_SECRET: { get_input: secret } }
      artifacts:
        image: { file: "lapis/busybox:1.36", type: tosca.artifacts.Deployment.Image.Container.Docker }
      requirements:
        - host: runtime
    runtime:
      type: tosca.nodes.indigo.Container.Runtime.Docker
      capabilities:
        host:
          properties: { num_cpus: 0.5, mem_size: 128 MB }
`;

interface ListeningSocket {
  address: string;
  port: number;
  pid: number;
}

/** The processes this test started, and theirs (the services, NATS, the registries, Zipkin). */
function descendantsOf(root: number): Set<number> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const found = new Set<number>();
  const queue = [root];
  while (queue.length) for (const child of children.get(queue.shift()!) ?? []) if (!found.has(child)) found.add(child), queue.push(child);
  return found;
}

/** Listening TCP sockets of these processes, from /proc (as `ss -ltnp` reads them). */
function listeningSocketsOf(pids: Set<number>): ListeningSocket[] {
  const owner = new Map<string, number>();
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
        if (inode) owner.set(inode, pid);
      } catch {
        // closed meanwhile
      }
    }
  }
  const sockets: ListeningSocket[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] !== '0A') continue; // 0A: LISTEN
      const pid = owner.get(fields[9]!);
      if (pid === undefined) continue;
      const [hex, port] = fields[1]!.split(':') as [string, string];
      sockets.push({ address: addressOf(hex), port: parseInt(port, 16), pid });
    }
  }
  return sockets;
}

/** /proc/net's hex address (32-bit words in host order, little-endian here) as text. */
function addressOf(hex: string): string {
  const words = hex.match(/.{8}/g)!.map((w) => Buffer.from(w, 'hex').reverse());
  if (words.length === 1) return [...words[0]!].join('.');
  const bytes = Buffer.concat(words);
  if (bytes.subarray(0, 12).equals(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff])))
    return `::ffff:${[...bytes.subarray(12)].join('.')}`;
  return (bytes.toString('hex').match(/.{4}/g) ?? []).map((g) => g.replace(/^0+(?=.)/, '')).join(':');
}

const isLoopback = (address: string) => /^(::ffff:)?127\./.test(address) || address === '0:0:0:0:0:0:0:1';

describe('secrets and listeners of a local mesh', function () {
  this.timeout(600_000);
  let mesh: Mesh | undefined;
  let zipkin: Zipkin | undefined;
  let collector: Server;
  const exported: string[] = [];
  const spans = () => exported.flatMap((body) => JSON.parse(body) as ZipkinSpan[]);

  before(async () => {
    // Keeps each export's body as it came, so the search below reads exactly what left the services.
    collector = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk) => (body += chunk));
      request.on('end', () => {
        exported.push(body || '[]');
        response.statusCode = 202;
        response.end();
      });
    }).listen(0, '127.0.0.1');
    await once(collector, 'listening');
    zipkin = await startZipkin(join(tmpdir(), `lapis-zipkin-${process.pid}.log`));
    mesh = await startMesh({
      env: {
        OTEL_TRACES_EXPORTER: 'zipkin',
        OTEL_EXPORTER_ZIPKIN_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}/api/v2/spans`,
        OTEL_BSP_SCHEDULE_DELAY: '200',
      },
      serviceEnv: { 'container-runtime': { LAPIS_NODE_CPU_MILLIS: '4000', LAPIS_STOP_TIMEOUT_S: '1' } },
    });
  });
  after(async () => {
    await mesh?.stop();
    await zipkin?.stop();
    collector?.close();
  });

  it('listens on loopback only: NATS and its monitor, the registries, the services, Zipkin', () => {
    const m = mesh!;
    const portOf = (url: string) => Number(new URL(url).port);
    const expected: Record<string, number> = {
      NATS: portOf(m.nats.url),
      'NATS monitor': portOf(m.nats.monitorUrl!),
      'upstream registry': portOf(m.upstream.url),
      'site registry': portOf(m.site.url),
      'OCCI HTTP': portOf(m.occiUrl!),
      Zipkin: portOf(zipkin!.url),
      ...Object.fromEntries(Object.entries(m.addresses).map(([name, address]) => [name, Number(address.split(':').pop())])),
    };
    const sockets = listeningSocketsOf(descendantsOf(process.pid));
    for (const [what, port] of Object.entries(expected))
      assert.ok(
        sockets.some((s) => s.port === port),
        `${what} (port ${port}) is among the listeners found`,
      );
    const open = sockets.filter((s) => !isLoopback(s.address));
    assert.deepEqual(
      open.map(
        (s) =>
          `${s.address}:${s.port} (${Object.entries(expected).find(([, p]) => p === s.port)?.[0] ?? readFileSync(`/proc/${s.pid}/cmdline`, 'utf8').split('\0')[0]})`,
      ),
      [],
      'listeners on more than loopback',
    );
  });

  it('keeps planted secrets out of every exported span and every log line', async () => {
    const m = mesh!;
    // An instance with secrets in its environment, user data and SSH keys, run to RUNNING.
    const scheduler = createClient(SchedulerServiceClient, m.addresses.scheduler!, { token: m.tokens.alice.token });
    const spec = InstanceSpec.fromPartial({
      name: 'secretive',
      flavor: 'm1.small',
      image: m.images[0]!,
      command: ['sleep', '3600'],
      environment: { DB_PASSWORD: CANARIES.env },
      userData: Buffer.from(`#!/bin/sh\necho ${CANARIES.userData} > /tmp/seed\n`),
      sshPublicKeys: [`ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA${CANARIES.sshKey} alice@laptop`],
    });
    const { claim } = await unary<SubmitClaimResponse>((md, cb) =>
      scheduler.submitClaim(
        { spec, preemptible: false, onPreemption: 0, partition: '', backend: 0, antiAffinityGroup: '', qos: '', requestId: '' },
        md,
        cb,
      ),
    );
    await until(
      async () => {
        const { claim: c } = await unary<GetClaimResponse>((md, cb) => scheduler.getClaim({ claimId: claim!.id }, md, cb));
        return c?.instanceState === InstanceState.RUNNING ? true : undefined;
      },
      'the instance with secrets to run',
      120_000,
    );

    // A TOSCA deployment whose container's environment comes from a secret input.
    const tosca = createClient(ToscaServiceClient, m.addresses['tosca-orchestrator']!, { token: m.tokens.alice.token, deadlineMs: 30_000 });
    const created = await unary<CreateDeploymentResponse>((md, cb) =>
      tosca.createDeployment(
        {
          template: { content: { $case: 'yaml', yaml: TEMPLATE }, fileName: 'secret.yaml', files: {} },
          inputs: { secret: CANARIES.toscaInput },
          textInputs: {},
          keepOnFailure: false,
          requestId: '',
        },
        md,
        cb,
      ),
    );
    await until(
      async () => {
        const { deployment } = await unary<GetDeploymentResponse>((md, cb) =>
          tosca.getDeployment({ deploymentId: created.deploymentId }, md, cb),
        );
        if (deployment?.state === DeploymentState.FAILED) throw new Error(`deployment failed: ${deployment.stateReason}`);
        return deployment?.state === DeploymentState.DEPLOYED ? true : undefined;
      },
      'the deployment with a secret input',
      120_000,
    );

    // A bearer token that fails, over gRPC and over OCCI, and a query string.
    const stranger = createClient(SchedulerServiceClient, m.addresses.scheduler!, { token: CANARIES.token });
    await assert.rejects(
      unary((md, cb) => stranger.getClaim({ claimId: claim!.id }, md, cb)),
      (error: ServiceError) => error.code === status.UNAUTHENTICATED,
    );
    const refused = await fetch(`${m.occiUrl}/compute/`, { headers: { authorization: `Bearer ${CANARIES.token}` } });
    assert.equal(refused.status, 401);
    await refused.arrayBuffer();
    const queried = await fetch(`${m.occiUrl}/compute/?category=${CANARIES.query}`, {
      headers: { authorization: `Bearer ${m.tokens.alice.token}`, accept: 'text/uri-list' },
    });
    await queried.arrayBuffer();
    for (const client of [scheduler, tosca, stranger]) client.close();

    // Every span of that work is exported: the Docker calls (the create carried the spec), the gRPC calls, the OCCI requests.
    const dockerCreate = (s: ZipkinSpan) =>
      s.kind === 'CLIENT' &&
      s.localEndpoint?.serviceName === 'container-runtime' &&
      /^http:\/\/localhost\/containers\/create([?#]|$)/.test(s.tags?.['url.full'] ?? '');
    await until(() => (spans().some(dockerCreate) ? true : undefined), 'the span of the Docker create call', 30_000);
    await until(
      () =>
        spans().some((s) => s.kind === 'SERVER' && s.localEndpoint?.serviceName === 'occi-gateway' && /^GET/.test(s.name))
          ? true
          : undefined,
      'the OCCI request spans',
      30_000,
    );
    // Stopping flushes the rest (the services export their last spans as they shut down).
    const stopping = mesh!;
    mesh = undefined;
    await stopping.stop();

    const all = spans();
    for (const name of ['scheduler', 'container-runtime', 'tosca-orchestrator', 'occi-gateway']) {
      assert.ok(
        all.some((s) => s.localEndpoint?.serviceName === name),
        `spans of ${name} were exported`,
      );
    }
    assert.ok(
      all.some((s) => /SubmitClaim/.test(s.name)) && all.some((s) => /CreateDeployment/.test(s.name)),
      'the gRPC calls were traced',
    );
    const leaks: string[] = [];
    for (const body of exported) {
      for (const span of JSON.parse(body) as ZipkinSpan[]) {
        const found = canariesIn(JSON.stringify(span));
        if (found.length)
          leaks.push(
            `span "${span.name}" of ${span.localEndpoint?.serviceName}: ${found.join(', ')} in ${JSON.stringify(span).slice(0, 600)}`,
          );
      }
    }
    const logDir = join(stopping.stateDir, 'logs');
    let lines = 0;
    for (const file of readdirSync(logDir)) {
      for (const line of readFileSync(join(logDir, file), 'utf8').split('\n')) {
        lines++;
        const found = canariesIn(line);
        if (found.length) leaks.push(`${file}: ${found.join(', ')} in ${line.slice(0, 600)}`);
      }
    }
    assert.ok(readdirSync(logDir).length >= 5 && lines > 50, `the services' logs were read (${lines} lines)`);
    assert.deepEqual(leaks, [], 'secrets that reached a span or a log line');
  });
});
