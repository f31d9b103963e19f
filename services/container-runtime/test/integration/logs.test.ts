// Following logs: many callers following one instance share one engine log stream. The
// runtime talks to the real engine through a pass-through Unix socket that notes every log
// follow request, so the test sees the engine connections the runtime really opens.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { until } from '@lapis/platform/testing';
import type { Instance, StreamInstanceLogsResponse } from '@lapis/proto/lapis/runtime/v1/runtime';
import { sharedDocker } from '@lapis/testenv';
import { adminOf, baseSpec, exec, rpc, startRuntime, type Client, type Runtime } from '../harness';

interface FollowRequest {
  container: string;
  open: boolean;
}

/** A socket in front of the engine's: passes every byte through, notes log follow requests. */
async function engineProxy(target: string) {
  const dir = mkdtempSync(join(tmpdir(), 'lapis-engine-proxy-'));
  const path = join(dir, 'docker.sock');
  const follows: FollowRequest[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const engine = connect(target);
    sockets.add(client).add(engine);
    let current: FollowRequest | undefined;
    client.on('data', (bytes: Buffer) => {
      // HTTP/1.1 without pipelining: a new request on the connection means the last one is over.
      for (const [, container, query] of bytes
        .toString('latin1')
        .matchAll(/^[A-Z]+ \S*?(?:\/containers\/([^/\s]+)\/logs\?(\S*))? HTTP\/1\.1\r$/gm)) {
        if (current) current.open = false;
        current = container && /(^|&)follow=(true|1)(&|$)/.test(query ?? '') ? { container, open: true } : undefined;
        if (current) follows.push(current);
      }
    });
    const close = () => {
      if (current) current.open = false;
      client.destroy();
      engine.destroy();
    };
    for (const socket of [client, engine]) socket.on('close', close).on('error', close);
    client.pipe(engine).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    /** The log follow requests made for a container so far. */
    followsOf: (container: string) => follows.filter((f) => container.startsWith(f.container) || f.container.startsWith(container)),
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface Follower {
  lines: string[];
  stream: ReturnType<Client['streamInstanceLogs']>;
  error?: ServiceError;
}

describe('following logs (real engine through a counting socket, NATS)', function () {
  this.timeout(180_000);
  let proxy: Awaited<ReturnType<typeof engineProxy>>;
  let rt: Runtime;
  let alice: Client;

  before(async () => {
    proxy = await engineProxy((await sharedDocker()).socketPath);
    rt = await startRuntime({ env: { LAPIS_DOCKER_SOCKET: proxy.path } });
    alice = rt.client('alice', 'physics');
  });
  after(async () => {
    await rt?.stop({ purge: true });
    await proxy?.stop();
  });

  const create = async (name: string) =>
    (
      (await rpc(adminOf(alice), adminOf(alice).createInstance, {
        instanceId: '',
        spec: baseSpec(name),
        preemptible: false,
        requestId: '',
      })) as { instance: Instance }
    ).instance;
  /** Writes to the container's own stdout, as its main process would. */
  const write = async (instance: Instance, text: string) => {
    const { code } = await exec(instance.backendId, ['sh', '-c', `${text} > /proc/1/fd/1`]);
    assert.equal(code, 0);
  };
  const follow = (instance: Instance, tailLines: number): Follower => {
    const follower: Follower = {
      lines: [],
      stream: alice.streamInstanceLogs({ instanceId: instance.id, follow: true, tailLines, sinceTime: undefined }),
    };
    follower.stream.on('data', (chunk: StreamInstanceLogsResponse) =>
      follower.lines.push(...chunk.data.toString().split('\n').filter(Boolean)),
    );
    follower.stream.on('error', (error: ServiceError) => {
      if (error.code !== status.CANCELLED) follower.error = error;
    });
    return follower;
  };
  const logSoFar = (instance: Instance) =>
    new Promise<string>((resolve, reject) => {
      let text = '';
      alice
        .streamInstanceLogs({ instanceId: instance.id, follow: false, tailLines: 0, sinceTime: undefined })
        .on('data', (chunk: StreamInstanceLogsResponse) => (text += chunk.data.toString()))
        .on('end', () => resolve(text))
        .on('error', reject);
    });
  const lines = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}`);

  it('opens one engine stream for many followers of an instance, gives each every line once, closes it when the last leaves', async () => {
    const instance = await create('followed-1');
    for (let n = 1; n <= 3; n++) await write(instance, `echo line ${n}`);
    await until(async () => (await logSoFar(instance)).includes('line 3'), 'line 3 in the log');
    const followers: Follower[] = [];
    // Followers join one by one while lines are written: each gets its tail, then what comes.
    for (let k = 0; k < 4; k++) {
      const follower = follow(instance, 2);
      followers.push(follower);
      await until(() => follower.lines.includes(`line ${3 + k}`), `follower ${k} to have the log so far`);
      await write(instance, `echo line ${4 + k}`);
      await until(() => followers.every((f) => f.lines.includes(`line ${4 + k}`)), `every follower to have line ${4 + k}`);
    }
    for (const [k, f] of followers.entries()) assert.deepEqual(f.lines, lines(2 + k, 7), `follower ${k}`);
    const engineFollows = () => proxy.followsOf(instance.backendId);
    assert.equal(engineFollows().length, 1, 'log follow requests to the engine');
    assert.equal(engineFollows()[0]!.open, true);

    // Three leave; the fourth still follows on the same engine stream.
    for (const f of followers.slice(0, 3)) f.stream.cancel();
    await write(instance, 'echo line 8');
    await until(() => followers[3]!.lines.includes('line 8'), 'the last follower to have line 8');
    assert.deepEqual(followers[3]!.lines, lines(5, 8));
    assert.equal(engineFollows().length, 1);
    // The last one leaves: the engine stream closes.
    followers[3]!.stream.cancel();
    await until(() => !engineFollows()[0]!.open, 'the engine log stream to close');
    assert.equal(rt.agent.logs.follows?.engineStreams, 0);
    assert.ok(
      followers.every((f) => f.error === undefined),
      followers.map((f) => f.error?.details).join('; '),
    );
  });

  it('gives followers that join while lines pour in every line once, in order, from one engine stream', async () => {
    const instance = await create('followed-3');
    await write(instance, 'echo line 0');
    await until(async () => (await logSoFar(instance)).includes('line 0'), 'line 0 in the log');
    // A line every millisecond or so while followers join: their log so far and the shared
    // stream overlap, and what both hold must come once.
    const writing = write(instance, 'i=1; while [ $i -le 3000 ]; do echo "line $i"; usleep 500; i=$((i+1)); done');
    const followers: Follower[] = [];
    for (let k = 0; k < 6; k++) {
      const follower = follow(instance, 3);
      followers.push(follower);
      await until(() => follower.lines.length > 0, `follower ${k} to start`);
    }
    await writing;
    await until(() => followers.every((f) => f.lines.includes('line 3000') || f.error), 'every follower to have line 3000', 60_000);
    followers.forEach((f, k) => {
      assert.equal(f.error, undefined, f.error?.details);
      const first = Number(f.lines[0]!.split(' ')[1]);
      assert.deepEqual(f.lines, lines(first, 3000), `follower ${k}: every line once, in order`);
    });
    assert.equal(proxy.followsOf(instance.backendId).length, 1, 'log follow requests to the engine');
    for (const f of followers) f.stream.cancel();
  });

  it('cuts off a follower that stopped reading with RESOURCE_EXHAUSTED; the others get every line', async () => {
    const instance = await create('followed-2');
    await write(instance, 'echo line 1');
    const slow = follow(instance, 1);
    const fast = follow(instance, 1);
    await until(() => slow.lines.includes('line 1') && fast.lines.includes('line 1'), 'both followers to have the log so far');
    slow.stream.pause();
    // 3000 lines of 4 KB: far more than a paused caller's buffers and the runtime's hold.
    await write(instance, `yes "$(head -c 4000 /dev/zero | tr '\\0' x)" | head -n 3000`);
    await until(() => fast.lines.length === 3001 || fast.error, 'the reading follower to have every line', 120_000);
    assert.equal(fast.error, undefined, fast.error?.details);
    assert.equal(fast.lines.length, 3001);
    slow.stream.resume();
    await until(() => slow.error, 'the stopped follower to be cut off', 60_000);
    assert.equal(slow.error!.code, status.RESOURCE_EXHAUSTED, slow.error!.details);
    assert.match(
      slow.error!.details,
      /the log of this instance is written faster than this caller reads it \(1024 chunks behind\); follow it again/,
    );
    assert.equal(fast.error, undefined);
    fast.stream.cancel();
  });
});
