// ExecInInstance on the real engine: files written into a running instance (parents made, modes
// kept), a command run there with its environment, its exit status and the tail of its output
// back; admins and services only; bounds refused at the edge.
import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import type { ExecInInstanceResponse, Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import { adminOf, baseSpec, exec, expectCode, rpc, startRuntime, type Client, type Runtime } from '../harness';

describe('ExecInInstance (real engine, NATS)', function () {
  this.timeout(120_000);
  let rt: Runtime;
  let alice: Client;
  let admin: Client;
  let instance: Instance;

  before(async () => {
    rt = await startRuntime();
    alice = rt.client('alice', 'physics');
    admin = adminOf(alice);
    instance = (await rpc(admin, admin.createInstance, { instanceId: '', spec: baseSpec('exec-1'), preemptible: false, requestId: '' }))
      .instance as Instance;
  });
  after(async () => {
    await rt?.stop({ purge: true });
  });

  const run = (request: Record<string, unknown>, client = admin): Promise<ExecInInstanceResponse> =>
    rpc(client, client.execInInstance, {
      instanceId: instance.id,
      files: [],
      argv: [],
      environment: {},
      workingDir: '',
      timeout: undefined,
      ...request,
    });

  it('writes files (parents made, modes kept) and runs a command with its environment', async () => {
    const script = '#!/bin/sh\necho "hello $WHO from $(pwd)"\necho oops >&2\nexit 3\n';
    const answer = await run({
      files: [
        { path: '/opt/lapis/ops/web/create.sh', content: Buffer.from(script), mode: 0o755 },
        { path: '/opt/lapis/ops/web/data/page.html', content: Buffer.from('<p>page</p>'), mode: 0 },
      ],
      argv: ['/opt/lapis/ops/web/create.sh'],
      environment: { WHO: 'tosca' },
      workingDir: '/opt/lapis/ops/web',
    });
    assert.equal(answer.exitCode, 3);
    assert.equal(answer.timedOut, false);
    // stdout and stderr are separate pipes: their order between them is not kept.
    assert.deepEqual(answer.outputTail.toString().split('\n').sort(), ['', 'hello tosca from /opt/lapis/ops/web', 'oops']);
    const modes = await exec(instance.backendId, [
      'stat',
      '-c',
      '%a %n',
      '/opt/lapis/ops/web/create.sh',
      '/opt/lapis/ops/web/data/page.html',
    ]);
    assert.equal(modes.out, '755 /opt/lapis/ops/web/create.sh\n644 /opt/lapis/ops/web/data/page.html\n');
    // /tmp, which the archive passes through, keeps its mode.
    await run({ files: [{ path: '/tmp/x/y', content: Buffer.from('y'), mode: 0 }] });
    assert.equal((await exec(instance.backendId, ['stat', '-c', '%a', '/tmp'])).out, '1777\n');
  });

  it('keeps only the tail of a long output, and says so', async () => {
    const answer = await run({ argv: ['sh', '-c', 'i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done'] });
    assert.equal(answer.exitCode, 0);
    assert.equal(answer.outputTruncated, true);
    assert.ok(answer.outputTail.length <= 64 * 1024);
    assert.ok(answer.outputTail.toString().endsWith('line 19999\n'));
  });

  it('answers timed_out when the command outlives its timeout', async () => {
    const started = Date.now();
    const answer = await run({ argv: ['sh', '-c', 'echo started; sleep 30'], timeout: { seconds: 1, nanos: 0 } });
    assert.equal(answer.timedOut, true);
    assert.equal(answer.exitCode, -1);
    assert.equal(answer.outputTail.toString(), 'started\n');
    assert.ok(Date.now() - started < 10_000);
  });

  it('is for admins and services only; a tenant is refused, even in its own project', async () => {
    await expectCode(run({ argv: ['true'] }, alice), status.PERMISSION_DENIED, /only admins and the Lapis services/);
  });

  it('refuses relative paths, and sizes beyond its bounds at the edge', async () => {
    await expectCode(run({ files: [{ path: 'etc/x', content: Buffer.from('x'), mode: 0 }] }), status.INVALID_ARGUMENT, /absolute/);
    await expectCode(
      run({ files: [{ path: '/big', content: Buffer.alloc(1024 * 1024 + 1), mode: 0 }] }),
      status.INVALID_ARGUMENT,
      /content/,
    );
  });

  it('refuses an instance that is not running', async () => {
    await rpc(admin, admin.stopInstance, { instanceId: instance.id, timeout: { seconds: 1, nanos: 0 }, requestId: '' });
    await expectCode(run({ argv: ['true'] }), status.FAILED_PRECONDITION, /RUNNING/);
  });
});
