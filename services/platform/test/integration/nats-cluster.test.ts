// A service on a three-server NATS cluster with replicas 3, as a site runs it: servers are
// killed under it while it writes (a bucket entry and an event per call). What it acknowledged
// is never lost; without quorum it says NOT_SERVING and refuses writes with UNAVAILABLE; when
// quorum is back it serves again by itself, without a restart.
import { strict as assert } from 'node:assert';
import { status, type ServiceError } from '@grpc/grpc-js';
import { startNatsCluster, type NatsCluster } from '@lapis/testenv';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { EventBus } from '../../src/nats/bus';
import { subjectFor } from '../../src/nats/events';
import { jsonCodec } from '../../src/nats/json-codec';
import { spawnService, staticTokenFile, type ServiceProcess } from '../../src/testing';
import { dynamicClient, getOperation, operationsClient } from '../grpc-harness';
import { log, sleep, until } from '../helpers';

describe('a service on a three-server NATS cluster, replicas 3 (real nats-server processes)', function () {
  this.timeout(240_000);
  let cluster: NatsCluster;
  let probe: ServiceProcess;

  before(async () => {
    cluster = await startNatsCluster();
    probe = await spawnService('probe', require.resolve('../fixtures/service-main'), {
      LAPIS_NATS_URL: cluster.url,
      LAPIS_NATS_REPLICAS: '3',
      LAPIS_STATIC_TOKENS_FILE: staticTokenFile(),
    });
  });
  after(async () => {
    await probe?.kill();
    await cluster?.stop();
  });

  const health = () =>
    new Promise<string>((resolve) =>
      dynamicClient(healthProtoPath, 'grpc.health.v1.Health', probe.address).check(
        { service: '' },
        (error: ServiceError | null, response: { status: string }) => resolve(error ? `error ${error.code}` : response.status),
      ),
    );
  /** One write through the service: the error code, or 0 when acknowledged. */
  const write = async (key: string) => {
    const result = await getOperation(operationsClient(probe.address, { token: 'alice-token', maxAttempts: 1 }), `publish:${key}`);
    if (result instanceof Error) lastError = result.message;
    return result instanceof Error ? (result as ServiceError).code : 0;
  };
  let lastError = '';
  const consumed = (key: string) => probe.logs.some((l) => l.msg === 'consumed' && l.key === key);

  /** Reads what the cluster holds, from a connection of its own. */
  async function stored(keys: string[]): Promise<{ missingInBucket: string[]; missingInStream: string[] }> {
    const reader = await EventBus.connect({ url: cluster.url, name: 'cluster-test-reader', stream: 'LAPIS', log });
    try {
      const bucket = await reader.bucket('probe-writes', jsonCodec<string>());
      const missingInBucket: string[] = [];
      const missingInStream: string[] = [];
      for (const key of keys) {
        if ((await bucket.get(key))?.value !== key) missingInBucket.push(key);
        const last = await reader.jsm.streams
          .getMessage('LAPIS', { last_by_subj: subjectFor('instanceStateChanged', key) })
          .catch(() => undefined);
        if (!last) missingInStream.push(key);
      }
      return { missingInBucket, missingInStream };
    } finally {
      await reader.drain();
    }
  }

  async function leaderOf(stream: string) {
    const admin = await EventBus.connect({ url: cluster.url, name: 'cluster-test-admin', stream: 'LAPIS', log });
    try {
      const name = (await admin.jsm.streams.info(stream)).cluster?.leader ?? '';
      const server = cluster.servers[Number(name.split('-').at(-1))];
      assert.ok(server, `a server leads ${stream}: ${name}`);
      return server;
    } finally {
      await admin.drain();
    }
  }

  it('keeps every stream and bucket at 3 replicas', async () => {
    const admin = await EventBus.connect({ url: cluster.url, name: 'cluster-test-admin', stream: 'LAPIS', log });
    try {
      for (const name of ['LAPIS', 'KV_probe-writes']) {
        const info = await admin.jsm.streams.info(name);
        assert.equal(info.config.num_replicas, 3, name);
        assert.equal(info.cluster?.replicas?.length, 2, `${name}: a leader and two replicas`);
      }
    } finally {
      await admin.drain();
    }
  });

  it('loses no acknowledged write while one server is killed and comes back; the client goes on by itself', async () => {
    assert.equal(await health(), 'SERVING');
    const acknowledged: string[] = [];
    const refused: number[] = [];
    let slowest = 0;
    let n = 0;
    // Until 4 s after the server is back (the time is set then).
    let end = Number.POSITIVE_INFINITY;
    const writeUntilEnd = async () => {
      while (Date.now() < end) {
        const key = `one-down-${n++}`;
        const started = Date.now();
        const code = await write(key);
        slowest = Math.max(slowest, Date.now() - started);
        if (code === 0) acknowledged.push(key);
        else refused.push(code);
      }
    };
    // The server that leads the event stream: the hardest one to lose (a new leader is elected).
    const leader = await leaderOf('LAPIS');
    const healthSeen = new Set<string>();
    const watching = (async () => {
      while (Date.now() < end) {
        healthSeen.add(await health());
        await sleep(250);
      }
    })();
    const writing = writeUntilEnd();
    await sleep(1_500);
    await leader.kill();
    await sleep(4_000);
    const beforeRestart = acknowledged.length;
    await leader.restart();
    end = Date.now() + 4_000;
    await writing;
    await watching;
    assert.deepEqual([...healthSeen], ['SERVING'], 'readiness does not flap while a new leader is elected');
    assert.ok(acknowledged.length > beforeRestart, 'writes acknowledged after the server came back');
    assert.deepEqual(
      refused.filter((code) => code !== status.UNAVAILABLE),
      [],
      'a write refused while a server is down is UNAVAILABLE',
    );
    assert.ok(
      acknowledged.length > 10 * Math.max(1, refused.length),
      `writes wait for the new leader instead of failing: ${acknowledged.length} of ${n} acknowledged, ${refused.length} refused (last: ${lastError}), the slowest in ${slowest} ms`,
    );
    await cluster.waitHealthy();
    assert.deepEqual(await stored(acknowledged), { missingInBucket: [], missingInStream: [] });
    await until(() => consumed(acknowledged.at(-1)!) || undefined, 'the consumer to take the last event', 30_000);
  });

  it('without quorum (two servers killed) reports NOT_SERVING and refuses writes with UNAVAILABLE; back, it serves again without a restart', async () => {
    assert.equal(await write('before-quorum-loss'), 0);
    await cluster.servers[1]!.kill();
    await cluster.servers[2]!.kill();
    // The probe's 10 s before reporting down, after the survivor's stream leader steps down (longer
    // on a loaded machine: it timed out at 30 s once with a load average of 13 on 2 cores).
    await until(async () => (await health()) === 'NOT_SERVING' || undefined, 'NOT_SERVING without quorum', 60_000);
    const refused = await write('without-quorum');
    assert.equal(refused, status.UNAVAILABLE);

    await Promise.all([cluster.servers[1]!.restart(), cluster.servers[2]!.restart()]);
    await cluster.waitHealthy();
    await until(async () => (await health()) === 'SERVING' || undefined, 'SERVING with quorum back', 30_000);
    let code = -1;
    await until(
      async () => ((code = await write('after-quorum')) === 0 ? true : undefined),
      `a write after quorum came back (last: ${code})`,
      30_000,
    );
    assert.deepEqual(await stored(['before-quorum-loss', 'after-quorum']), { missingInBucket: [], missingInStream: [] });
    await until(() => consumed('after-quorum') || undefined, 'the consumer to take an event after quorum came back', 30_000);
  });
});
