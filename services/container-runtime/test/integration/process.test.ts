// The agent as its own process, the way it runs on a node: started from main.js, stopped with
// SIGTERM; instances outlive it and the next process takes them over.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createClient } from '@lapis/platform';
import { natsUrl, samplesOf, scrapeMetrics, spawnService, staticTokenFile, TEST_TOKENS, unique } from '@lapis/platform/testing';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Instance, Node } from '@lapis/proto/lapis/runtime/v1/runtime';
import { RuntimeServiceClient } from '@lapis/proto/lapis/runtime/v1/runtime_service';
import { baseSpec, FLAVORS, leftovers, nothingLeft, rpc } from '../harness';

const MAIN = resolve(__dirname, '../../src/main.js');

describe('the agent process (real NATS, Docker, signals)', function () {
  let stateDir: string;
  const node = unique('proc').toLowerCase();
  let env: Record<string, string>;
  before(() => (stateDir = mkdtempSync(join(tmpdir(), 'lapis-rt-proc-'))));
  before(
    () =>
      (env = {
        LAPIS_NATS_URL: natsUrl(),
        LAPIS_STATIC_TOKENS_FILE: staticTokenFile(),
        LAPIS_NODE_NAME: node,
        LAPIS_FLAVORS_FILE: FLAVORS,
        LAPIS_STATE_DIR: stateDir,
        LAPIS_ALLOW_UNTRUSTED_IMAGES: 'true',
        LAPIS_SHUTDOWN_GRACE_MS: '2000',
      }),
  );
  after(() => rmSync(stateDir, { recursive: true, force: true }));

  it('serves, exits 0 on SIGTERM leaving instances running, and the next process takes them over', async () => {
    let agent = await spawnService('container-runtime', MAIN, env);
    let client = createClient(RuntimeServiceClient, agent.address, { token: 'alice-token', project: 'physics' });
    // Direct creates are an admin's (tenants submit claims to the scheduler).
    const root = createClient(RuntimeServiceClient, agent.address, { token: TEST_TOKENS.root.token, project: 'physics' });
    const { instance } = (await rpc(root, root.createInstance, {
      instanceId: '',
      spec: baseSpec('proc-1'),
      preemptible: false,
      requestId: '',
    })) as { instance: Instance };
    assert.equal(instance.state, InstanceState.RUNNING);
    const { node: served } = (await rpc(client, client.getNode, { name: '' })) as { node: Node };
    assert.equal(served.name, node);
    assert.equal(served.instanceCount, 1);
    // Its metrics: the instance by state, how long it took to start, the reconcile at start.
    const samples = await scrapeMetrics(agent.metricsUrl!);
    assert.equal(samplesOf(samples, 'lapis_runtime_instances', { state: 'RUNNING' })[0]?.value, 1);
    assert.equal(samplesOf(samples, 'lapis_runtime_instances', { state: 'ERROR' })[0]?.value, 0);
    assert.equal(samplesOf(samples, 'lapis_runtime_instance_start_duration_count', { backend: 'docker', outcome: 'ok' })[0]?.value, 1);
    assert.equal(samplesOf(samples, 'lapis_runtime_reconcile_duration_count')[0]?.value, 1);
    assert.equal(samplesOf(samples, 'rpc_server_duration_count', { rpc_method: 'CreateInstance', rpc_grpc_status_code: '0' })[0]?.value, 1);
    client.close();
    root.close();
    assert.equal(await agent.stop(), 0);
    assert.equal((await leftovers(node, stateDir)).containers.length, 1, 'the instance outlives the agent');

    agent = await spawnService('container-runtime', MAIN, env);
    client = createClient(RuntimeServiceClient, agent.address, { token: 'alice-token', project: 'physics' });
    const again = ((await rpc(client, client.getInstance, { instanceId: instance.id })) as { instance: Instance }).instance;
    assert.equal(again.state, InstanceState.RUNNING);
    assert.equal(again.backendId, instance.backendId);
    await rpc(client, client.deleteInstance, { instanceId: instance.id, timeout: { seconds: 0, nanos: 0 }, requestId: '' });
    client.close();
    assert.equal(await agent.stop(), 0);
    assert.deepEqual(await leftovers(node, stateDir), nothingLeft);
  });

  it('refuses to start on a bad variable, naming it', async () => {
    await assert.rejects(
      spawnService('container-runtime', MAIN, { ...env, LAPIS_ALLOW_UNTRUSTED_IMAGES: 'false', LAPIS_INFINIBAND_MEMLOCK: 'lots' }),
      (error: Error) => {
        assert.match(error.message, /LAPIS_IMAGE_SYNC_ADDRESS must be set \(or LAPIS_ALLOW_UNTRUSTED_IMAGES=true\)/);
        assert.match(error.message, /LAPIS_INFINIBAND_MEMLOCK="lots" is invalid: "unlimited" or a number of bytes/);
        return true;
      },
    );
  });
});
