import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startNats, startNatsCluster, TEST_NATS_URL_ENV, type NatsServer } from '../../src/index.js';
import { firstLine, canListen, isRefused } from './helpers/net.js';
import { RawNats } from './helpers/raw-nats.js';

function parseInfo(line: string): Record<string, unknown> {
  assert.match(line, /^INFO \{/, `first line is not INFO: ${line}`);
  return JSON.parse(line.slice('INFO '.length)) as Record<string, unknown>;
}

describe('testenv: NATS', function () {
  let nats: NatsServer | undefined;

  afterEach(async function () {
    await nats?.stop();
    nats = undefined;
  });

  it('the test run shares one NATS with JetStream through LAPIS_TEST_NATS_URL', async function () {
    const url = process.env[TEST_NATS_URL_ENV];
    assert.ok(url, `${TEST_NATS_URL_ENV} is not set: is mocha-hooks.js required?`);
    const { hostname, port } = new URL(url);
    const info = parseInfo(await firstLine(hostname, Number(port)));
    assert.equal(info.jetstream, true);
  });

  it('startNats gives a server that accepts connections and announces JetStream', async function () {
    nats = await startNats();
    assert.equal(nats.url, `nats://127.0.0.1:${nats.port}`);
    const info = parseInfo(await firstLine('127.0.0.1', nats.port));
    assert.equal(info.jetstream, true);
    assert.equal(info.port, nats.port);
    assert.ok(fs.existsSync(nats.logFile), 'no log file');
  });

  it('restart() keeps the port and the JetStream store (a restart loses nothing)', async function () {
    nats = await startNats();
    const port = nats.port;
    let client = await RawNats.connect(nats.url);
    const created = JSON.parse(
      await client.request('$JS.API.STREAM.CREATE.RESTART', JSON.stringify({ name: 'RESTART', subjects: ['restart.>'], storage: 'file' })),
    ) as { error?: unknown };
    assert.equal(created.error, undefined, JSON.stringify(created));
    const ack = JSON.parse(await client.request('restart.one', 'kept across restarts')) as { stream?: string; seq?: number };
    assert.deepEqual([ack.stream, ack.seq], ['RESTART', 1]);
    client.close();

    await nats.restart();
    assert.equal(nats.port, port);
    client = await RawNats.connect(nats.url);
    const stream = JSON.parse(await client.request('$JS.API.STREAM.INFO.RESTART', '')) as { state?: { messages?: number } };
    const msg = JSON.parse(await client.request('$JS.API.STREAM.MSG.GET.RESTART', JSON.stringify({ seq: 1 }))) as {
      message?: { data?: string };
    };
    client.close();
    assert.equal(stream.state?.messages, 1, JSON.stringify(stream));
    assert.equal(Buffer.from(msg.message?.data ?? '', 'base64').toString(), 'kept across restarts');
  });

  it('stop() frees the port and removes the dir', async function () {
    const server = await startNats({ monitor: true });
    nats = server;
    assert.ok(server.monitorUrl);
    const jsz = (await (await fetch(`${server.monitorUrl}/jsz`)).json()) as { config?: { store_dir?: string } };
    assert.ok(jsz.config?.store_dir?.startsWith(server.dir), JSON.stringify(jsz));
    await server.stop();
    assert.equal(await isRefused('127.0.0.1', server.port), true, 'the port still accepts connections');
    assert.equal(await canListen('127.0.0.1', server.port), true, 'the port is still taken');
    assert.equal(fs.existsSync(server.dir), false, `${server.dir} is still there`);
    await server.stop(); // idempotent
  });

  it('a failing start names the command, the port and the log file', async function () {
    // Take the port first so that nats-server cannot listen on it.
    nats = await startNats();
    const blocked = nats.port;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lapis-nats-fail-'));
    try {
      await assert.rejects(startNats({ port: blocked, dir, timeoutMs: 10_000 }), (e: Error) => {
        assert.match(e.message, /nats-server .*-p \d+/);
        assert.match(e.message, new RegExp(`${blocked}`));
        assert.match(e.message, /nats\.log/);
        return true;
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('startNatsCluster gives three routed servers with JetStream; kill() and restart() keep the store; stop() removes everything', async function () {
    this.timeout(120_000);
    const cluster = await startNatsCluster();
    try {
      assert.equal(cluster.url.split(',').length, 3);
      for (const server of cluster.servers) {
        const routez = (await (await fetch(`${server.monitorUrl}/routez`)).json()) as { num_routes: number };
        assert.ok(routez.num_routes >= 2, `${server.url} is routed to the two others: ${JSON.stringify(routez)}`);
      }
      const victim = cluster.servers[0]!;
      await victim.kill();
      assert.equal(await isRefused('127.0.0.1', victim.port), true, 'a killed server takes no connection');
      assert.ok(fs.existsSync(path.join(victim.dir, 'jetstream')), 'its store is kept');
      await victim.restart();
      await cluster.waitHealthy();
    } finally {
      await cluster.stop();
    }
    for (const server of cluster.servers) assert.equal(fs.existsSync(server.dir), false, `${server.dir} is still there`);
  });
});
