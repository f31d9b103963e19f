// Software deployed by its lifecycle operations, in real instances: the guestbook example
// (examples/tosca/guestbook: busybox httpd and a web application on one compute, a database on
// its DBMS on another) deployed by its scripts through the real scheduler and runtime, its page
// fetched over the project's network, an orchestrator restart in the middle, undeploy running
// stop and delete; a failing script failing the deployment with its node, operation and output;
// a span per operation in the deployment's trace (exported to a Zipkin collector); an Ansible
// playbook (examples/tosca/ansible-motd) run by the instance's own Ansible.
import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import { call } from '@lapis/platform';
import { until } from '@lapis/platform/testing';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type {
  ExecInInstanceRequest,
  ExecInInstanceResponse,
  ListInstancesRequest,
  ListInstancesResponse,
} from '@lapis/proto/lapis/runtime/v1/runtime';
import {
  DeploymentState,
  LifecycleOperationState,
  NodeState,
  type CreateDeploymentRequest,
  type CreateDeploymentResponse,
  type Deployment,
  type DeleteDeploymentRequest,
  type DeleteDeploymentResponse,
  type GetDeploymentRequest,
  type GetDeploymentResponse,
  type LifecycleOperation,
  type UpdateDeploymentRequest,
  type UpdateDeploymentResponse,
  type WatchDeploymentResponse,
} from '@lapis/proto/lapis/tosca/v1/tosca';
import { docker, sharedDocker } from '@lapis/testenv';
import { exampleTemplate, Mesh } from '../mesh';

const ansibleImage = 'lapis-tosca-test/ansible:bookworm';
const ansibleFixture = resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'ansible');
const repo = resolve(__dirname, '..', '..', '..', '..', '..');

const example = exampleTemplate;
const guestbook = (changes: Record<string, string> = {}) => example('guestbook', 'guestbook.yaml', changes);

const step = (o: LifecycleOperation) => `${o.node} ${o.interface}.${o.operation}`;
const states = (d: Deployment) => d.lifecycleOperations.map((o) => `${step(o)} ${LifecycleOperationState[o.state]}`);
/** The operations as a failure message shows them: failed ones with their reason and output. */
const described = (d: Deployment) =>
  d.lifecycleOperations.map((o) =>
    o.state === LifecycleOperationState.FAILED
      ? `${step(o)} FAILED: ${o.stateReason}\n${o.outputTail}`
      : `${step(o)} ${LifecycleOperationState[o.state]}`,
  );

describe('software deployed by its lifecycle operations (real instances, shell scripts, Docker)', function () {
  this.timeout(300_000);
  const mesh = new Mesh();
  const spans: Array<{ traceId: string; name: string; tags?: Record<string, string> }> = [];
  let collector: Server;

  before(async () => {
    collector = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk) => (body += chunk));
      request.on('end', () => {
        spans.push(...JSON.parse(body));
        response.statusCode = 202;
        response.end();
      });
    }).listen(0, '127.0.0.1');
    await once(collector, 'listening');
    await mesh.start({
      OTEL_TRACES_EXPORTER: 'zipkin',
      OTEL_EXPORTER_ZIPKIN_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}/api/v2/spans`,
      OTEL_BSP_SCHEDULE_DELAY: '200',
    });
  });
  after(async () => {
    await mesh.stop();
    collector?.close();
  });

  const get = async (id: string) =>
    (await call<GetDeploymentRequest, GetDeploymentResponse>(mesh.tosca.getDeployment.bind(mesh.tosca), { deploymentId: id })).deployment!;
  const waitFor = (id: string, what: string, check: (d: Deployment) => boolean) =>
    until(
      async () => {
        const d = await get(id);
        return check(d) ? d : undefined;
      },
      `deployment ${id} ${what}`,
      180_000,
    ).catch(async (error: Error) => {
      const d = await get(id);
      throw new Error(`${error.message}; it is ${DeploymentState[d.state]} (${d.stateReason}): ${JSON.stringify(described(d))}`);
    });
  const create = async (template: ReturnType<typeof guestbook>, metadata = new Metadata(), image = mesh.image) =>
    (
      await call<CreateDeploymentRequest, CreateDeploymentResponse>(
        mesh.tosca.createDeployment.bind(mesh.tosca),
        { template, inputs: { image }, textInputs: {}, keepOnFailure: false, requestId: '' },
        metadata,
      )
    ).deploymentId;
  const remove = (id: string) =>
    call<DeleteDeploymentRequest, DeleteDeploymentResponse>(mesh.tosca.deleteDeployment.bind(mesh.tosca), {
      deploymentId: id,
      requestId: '',
    });
  /** A command in an instance, as an admin. */
  const exec = (instanceId: string, argv: string[]) =>
    call<ExecInInstanceRequest, ExecInInstanceResponse>(mesh.runtime.execInInstance.bind(mesh.runtime), {
      instanceId,
      files: [],
      argv,
      environment: {},
      workingDir: '',
      timeout: undefined,
    });
  const operation = (d: Deployment, node: string, iface: string, op: string) =>
    d.lifecycleOperations.find((o) => o.node === node && o.interface === iface && o.operation === op)!;
  const started = (o: LifecycleOperation) => o.startTime!.getTime();

  it('deploys a guestbook by its scripts in TOSCA order, serves its page, survives a restart, reconfigures on a changed property, and undeploy stops and deletes it', async () => {
    const traceId = 'b1b2c3d4e5f60718293a4b5c6d7e8f90';
    const metadata = new Metadata();
    metadata.set('traceparent', `00-${traceId}-1122334455667788-01`);
    const id = await create(guestbook(), metadata);
    // An orchestrator stopped once the first operation has run goes on where it stopped.
    await waitFor(id, 'has run an operation', (d) => d.lifecycleOperations.some((o) => o.state === LifecycleOperationState.SUCCEEDED));
    await mesh.stopOrchestrator();
    await mesh.startOrchestrator();
    const d = await waitFor(id, 'DEPLOYED', (x) => x.state === DeploymentState.DEPLOYED);
    const deploying = d.lifecycleOperations.filter((o) => o.state !== LifecycleOperationState.PENDING);
    assert.deepEqual(deploying.map((o) => `${step(o)} ${LifecycleOperationState[o.state]}`).sort(), [
      'db Standard.configure SUCCEEDED',
      'db Standard.create SUCCEEDED',
      'dbms Standard.create SUCCEEDED',
      'dbms Standard.start SUCCEEDED',
      // INDIGO's Compute configures its users with a playbook by URL: said, not run.
      'dbserver Standard.configure SKIPPED',
      'guestbook Configure.pre_configure_source SUCCEEDED',
      'guestbook Standard.configure SUCCEEDED',
      'server Standard.configure SKIPPED',
      'web Standard.create SUCCEEDED',
      'web Standard.start SUCCEEDED',
    ]);
    assert.match(operation(d, 'server', 'Standard', 'configure').stateReason, /configure_users\.yml is fetched from the network/);
    // TOSCA's order: a node after what it requires; create, pre_configure, configure, start.
    for (const [before, after] of [
      ['web Standard.create', 'web Standard.start'],
      ['dbms Standard.start', 'db Standard.create'],
      ['db Standard.create', 'db Standard.configure'],
      ['web Standard.start', 'guestbook Configure.pre_configure_source'],
      ['db Standard.configure', 'guestbook Configure.pre_configure_source'],
      ['guestbook Configure.pre_configure_source', 'guestbook Standard.configure'],
    ]) {
      const [a, b] = [deploying.find((o) => step(o) === before)!, deploying.find((o) => step(o) === after)!];
      assert.ok(started(a) + a.duration!.seconds * 1000 <= started(b) + 1000, `${before} ended before ${after} started`);
    }
    const webCreate = operation(d, 'web', 'Standard', 'create');
    assert.deepEqual(webCreate.outputs, { DOC_ROOT: '/srv/www' }, 'what create reported');
    assert.equal(webCreate.exitCode, 0);
    assert.match(webCreate.outputTail, /document root \/srv\/www/);
    assert.match(operation(d, 'web', 'Standard', 'start').outputTail, /web (serving \/srv\/www on port 8080|already serving)/);
    const connect = operation(d, 'guestbook', 'Configure', 'pre_configure_source');
    assert.equal(connect.relationship, 'guestbook.database -> db');
    assert.match(connect.outputs.DB_URL ?? '', /^http:\/\/[\d.]+:8081\/guests$/);
    const server = d.nodes.find((n) => n.name === 'server')!.instanceIds[0]!;
    const dbserver = d.nodes.find((n) => n.name === 'dbserver')!.instanceIds[0]!;
    assert.equal(connect.instanceId, server, 'the source side runs in the source’s instance');
    // The page, as the database's instance fetches it over the project's network.
    const address = String(d.outputs?.page_url).replace(/^http:\/\//, '');
    const page = await exec(dbserver, ['wget', '-q', '-O', '-', `http://${address}`]);
    assert.equal(Buffer.from(page.outputTail).toString(), '<h1>Lapis guestbook</h1>\n<p>hello from the database</p>\n');

    // A changed property (the title, through its input) reruns the guestbook's configure, and nothing else.
    await call<UpdateDeploymentRequest, UpdateDeploymentResponse>(mesh.tosca.updateDeployment.bind(mesh.tosca), {
      deploymentId: id,
      template: undefined,
      inputs: { title: 'Guests of Lapis' },
      textInputs: {},
      requestId: '',
    });
    const configured = operation(d, 'guestbook', 'Standard', 'configure');
    const updated = await waitFor(
      id,
      'DEPLOYED again, reconfigured',
      (x) => x.state === DeploymentState.DEPLOYED && started(operation(x, 'guestbook', 'Standard', 'configure')) > started(configured),
    );
    const rerun = updated.lifecycleOperations.filter((o) => {
      const was = d.lifecycleOperations.find((p) => p.node === o.node && p.interface === o.interface && p.operation === o.operation);
      return o.startTime && was?.startTime && started(o) !== started(was);
    });
    assert.deepEqual(rerun.map(step), ['guestbook Standard.configure']);
    const newPage = await exec(dbserver, ['wget', '-q', '-O', '-', `http://${address}`]);
    assert.equal(Buffer.from(newPage.outputTail).toString(), '<h1>Guests of Lapis</h1>\n<p>hello from the database</p>\n');

    await remove(id);
    const gone = await waitFor(id, 'DELETED', (x) => x.state === DeploymentState.DELETED);
    const undeploying = gone.lifecycleOperations.filter((o) => ['stop', 'delete'].includes(o.operation));
    assert.deepEqual(undeploying.map((o) => `${step(o)} ${LifecycleOperationState[o.state]}`).sort(), [
      'dbms Standard.stop SUCCEEDED',
      'guestbook Standard.delete SUCCEEDED',
      'web Standard.delete SUCCEEDED',
      'web Standard.stop SUCCEEDED',
    ]);
    assert.match(operation(gone, 'web', 'Standard', 'stop').outputTail, /web stopped \(process \d+\)/);
    const order = ['guestbook Standard.delete', 'web Standard.stop', 'web Standard.delete'].map(
      (s) => undeploying.find((o) => step(o) === s)!,
    );
    assert.ok(started(order[0]!) <= started(order[1]!) && started(order[1]!) <= started(order[2]!), 'what requires a node goes first');
    const { instances } = await call<ListInstancesRequest, ListInstancesResponse>(mesh.runtime.listInstances.bind(mesh.runtime), {
      pageSize: 100,
      pageToken: '',
      project: '',
      state: 0,
      node: mesh.node,
    });
    assert.deepEqual(
      instances.filter((i) => [server, dbserver].includes(i.id) && i.state !== InstanceState.DELETED).map((i) => i.id),
      [],
      'its instances are gone',
    );
    // A span per operation, in the trace of the call that created the deployment.
    const ours = await until(() => {
      const found = spans.filter((s) => s.traceId === traceId && s.name.startsWith('tosca '));
      return found.length >= 8 ? found : undefined;
    }, 'the operations’ spans');
    // (Zipkin spells span names in lower case.)
    assert.ok(
      ours.some((s) => s.name.toLowerCase() === 'tosca standard.configure guestbook'),
      JSON.stringify(ours.map((s) => s.name)),
    );
    assert.ok(
      ours.every((s) => s.tags?.['tosca.node.name']),
      'each names its node',
    );
  });

  it('a failing script fails the deployment naming the node, the operation and its last output lines; what ran is undeployed', async () => {
    const id = await create(
      guestbook({ 'scripts/db/configure.sh': '#!/bin/sh\necho "writing entries"\necho "disk full: no room for guests" >&2\nexit 7\n' }),
    );
    // WatchDeployment names the node whose operations moved, with the operations as they are.
    const watched: { node: string; operations: string[] }[] = [];
    const watch = mesh.tosca.watchDeployment({ deploymentId: id });
    watch.on('data', (m: WatchDeploymentResponse) => watched.push({ node: m.node, operations: states(m.deployment!) }));
    watch.on('error', () => undefined);
    const failed = await waitFor(
      id,
      'FAILED and rolled back',
      (d) => d.state === DeploymentState.FAILED && d.nodes.every((n) => n.instanceIds.length === 0 || n.state === NodeState.DELETED),
    );
    assert.match(failed.stateReason, /^node db: Standard\.configure failed in dbserver-0: exit status 7; last output:\n/);
    assert.match(failed.stateReason, /disk full: no room for guests/);
    watch.cancel();
    assert.ok(
      watched.some((w) => w.node === 'db' && w.operations.includes('db Standard.configure FAILED')),
      JSON.stringify(watched.map((w) => w.node)),
    );
    const configure = operation(failed, 'db', 'Standard', 'configure');
    assert.equal(configure.state, LifecycleOperationState.FAILED);
    assert.equal(configure.exitCode, 7);
    // The rollback stops what started; what never ran is skipped, not run.
    const undeploy = (o: LifecycleOperation) => o.operation === 'stop' || o.operation === 'delete';
    const rolledBack = await waitFor(id, 'rolled back', (d) =>
      d.lifecycleOperations.filter(undeploy).every((o) => o.state !== LifecycleOperationState.PENDING),
    );
    assert.equal(operation(rolledBack, 'dbms', 'Standard', 'stop').state, LifecycleOperationState.SUCCEEDED);
    assert.equal(operation(rolledBack, 'web', 'Standard', 'stop').state, LifecycleOperationState.SUCCEEDED);
    const never = operation(rolledBack, 'guestbook', 'Standard', 'delete');
    assert.equal(never.state, LifecycleOperationState.SKIPPED, 'the guestbook never deployed: nothing to delete');
    assert.equal(never.stateReason, 'its node never deployed there');
    assert.equal(operation(rolledBack, 'guestbook', 'Standard', 'configure').state, LifecycleOperationState.PENDING, 'never run');
  });

  it('an Ansible playbook configures an instance with the instance’s own Ansible (Debian’s ansible-core), its inputs as typed variables', async function () {
    this.timeout(900_000);
    // The instance image: built here from lapis/base (images/build.sh) with Debian's ansible-core, once.
    if (
      !(await docker(['image', 'inspect', ansibleImage]).then(
        () => true,
        () => false,
      ))
    ) {
      // The base: imported from the debootstrap root filesystem build.sh keeps (made once).
      if (
        !(await docker(['image', 'inspect', 'lapis/base:bookworm']).then(
          () => true,
          () => false,
        ))
      ) {
        const built = spawnSync(join(repo, 'images', 'build.sh'), ['base'], {
          encoding: 'utf8',
          env: { ...process.env, DOCKER_HOST: `unix://${(await sharedDocker()).socketPath}` },
        });
        assert.equal(built.status, 0, `images/build.sh base: ${built.stderr}`);
      }
      await docker(['build', '-q', '-t', ansibleImage, ansibleFixture]);
    }
    const id = await create(example('ansible-motd', 'motd.yaml'), new Metadata(), ansibleImage);
    const d = await waitFor(id, 'DEPLOYED', (x) => x.state === DeploymentState.DEPLOYED);
    const configure = operation(d, 'motd', 'Standard', 'configure');
    assert.equal(configure.state, LifecycleOperationState.SUCCEEDED, configure.stateReason);
    assert.match(configure.outputTail, /PLAY RECAP[\s\S]*ok=2 +changed=2 +unreachable=0 +failed=0/);
    assert.deepEqual(configure.outputs, { MOTD_LINES: '3' });
    const host = d.nodes.find((n) => n.name === 'host')!;
    const motd = await exec(host.instanceIds[0]!, ['cat', '/etc/motd']);
    assert.equal(
      Buffer.from(motd.outputTail).toString(),
      `Hello from Ansible on ${String((host.attributes!.private_address as string[])[0])}\nport 80\nport 443\n`,
    );
    await remove(id);
    await waitFor(id, 'DELETED', (x) => x.state === DeploymentState.DELETED);
  });

  it('a playbook in an instance without Ansible fails saying so', async () => {
    const id = await create(example('ansible-motd', 'motd.yaml'));
    const failed = await waitFor(id, 'FAILED', (d) => d.state === DeploymentState.FAILED);
    assert.match(failed.stateReason, /^node motd: Standard\.configure failed in host-0: exit status 127; last output:\n/);
    assert.match(failed.stateReason, /ansible-playbook is not installed in this instance/);
  });
});
