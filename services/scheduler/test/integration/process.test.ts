// The scheduler as its own process, started the way it runs in production
// (node -r @lapis/platform/register dist/src/main.js): it serves, and exits 0 on SIGTERM;
// a bad variable stops it at once, naming the variable.
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { until } from '@lapis/platform/testing';
import { client, schedulerEnv, unique } from './harness';

const MAIN = resolve(__dirname, '../../src/main.js');

function startProcess(env: NodeJS.ProcessEnv): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['-r', require.resolve('@lapis/platform/register'), MAIN], {
    env: { PATH: process.env.PATH, OTEL_SERVICE_NAME: 'scheduler', ...env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  return { child, out: () => out, exited: once(child, 'exit').then(([code]) => code as number | null) };
}

describe('the scheduler process (real NATS, real signals)', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
  });

  it('serves, and exits 0 on SIGTERM', async () => {
    const p = startProcess(schedulerEnv(unique('proc').toLowerCase()));
    children.push(p.child);
    const line = await until(
      () =>
        p
          .out()
          .split('\n')
          .find((l) => l.includes('gRPC server listening')),
      `the process to listen (${p.out()})`,
      20_000,
    );
    const port = (JSON.parse(line) as { port: number }).port;
    const api = client(`127.0.0.1:${port}`, 'alice-token', 'physics');
    const flavors = await api.listFlavors({});
    assert.ok(flavors.flavors.length > 0);
    api.close();
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0);
  });

  it('refuses to start on a bad variable, naming it', async () => {
    const p = startProcess({ ...schedulerEnv(unique('proc').toLowerCase()), LAPIS_SCHEDULER_CYCLE_MS: 'often' });
    children.push(p.child);
    assert.equal(await p.exited, 1);
    assert.match(p.out(), /LAPIS_SCHEDULER_CYCLE_MS/);
  });
});
