// Overcommit against a real scheduler on real NATS: a node filled by its claims takes more once
// an admin sets a CPU allocation ratio (SetAllocationRatios) or the configuration has one, the
// ratios are shown by ListPartitions, bad ratios are refused naming the field, and quotas keep
// counting what was requested.
import { strict as assert } from 'node:assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { errorDetails } from '@lapis/platform';
import { until } from '@lapis/platform/testing';
import { PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import type { RunningScheduler } from '../../src/wiring';
import { client, FakeFreeNode, placedIds, startTestScheduler, unique, type Api } from './harness';

const small = { spec: { name: 'vm', flavor: 'm1.small', image: 'lapis/base:1' } };

async function failure(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error('the call succeeded');
}

describe('overcommit: allocation ratios (real NATS, real gRPC)', () => {
  let running: RunningScheduler | undefined;
  let alice: Api;
  let root: Api;
  const nodes: FakeFreeNode[] = [];

  async function start(extra: Record<string, string> = {}) {
    running = await startTestScheduler(unique('sched').toLowerCase(), extra);
    alice = client(`127.0.0.1:${running.port}`, 'alice-token', 'physics');
    root = client(`127.0.0.1:${running.port}`, 'root-token');
  }
  /** A node of 2 CPUs and 32 GiB that has sent its first heartbeat and is known to the scheduler. */
  async function twoCoreNode(): Promise<FakeFreeNode> {
    const node = await FakeFreeNode.start(unique('node').toLowerCase());
    nodes.push(node);
    await node.heartbeat(2, 32);
    await until(async () => (await root.listPartitions({})).partitions.some((p) => p.nodes.includes(node.name)), 'the node known');
    return node;
  }
  afterEach(async () => {
    alice?.close();
    root?.close();
    await running?.shutdown.run('test over');
    running = undefined;
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  it('places beside claims that filled a 2-core node once an admin sets a CPU ratio; quotas count what was asked', async () => {
    await start();
    const node = await twoCoreNode();
    const partition = async () => (await root.listPartitions({})).partitions.find((p) => p.name === 'default')!;
    assert.deepEqual((await partition()).allocationRatios, { cpu: 1, memory: 1 }, 'no overcommit unless set');
    const fill = [(await alice.submitClaim(small)).claim!.id, (await alice.submitClaim(small)).claim!.id];
    await until(() => fill.every((id) => placedIds(node).includes(id)), 'the two claims placed');
    const third = (await alice.submitClaim(small)).claim!.id;
    await until(
      async () => (await alice.getClaim({ claimId: third })).claim?.pendingReason === PendingReason.RESOURCES,
      'the third claim waiting for room',
    );

    const set = await root.setAllocationRatios({ partition: 'default', ratios: { cpu: 2 } });
    assert.deepEqual(set.partition?.allocationRatios, { cpu: 2, memory: 1 });
    await until(() => placedIds(node).includes(third), 'the third claim placed on the overcommitted node');
    const quota = (await alice.getQuota({})).quota!;
    assert.equal(Number(quota.usedResources?.cpuMillis), 3000, 'three 1-CPU claims are charged 3 CPUs on a 2-core node');
    const fourth = (await alice.submitClaim(small)).claim!.id;
    const fifth = (await alice.submitClaim(small)).claim!.id;
    await until(() => placedIds(node).includes(fourth), 'the fourth claim placed (2 cores × 2)');
    await until(
      async () => (await alice.getClaim({ claimId: fifth })).claim?.pendingReason === PendingReason.RESOURCES,
      'the fifth claim waiting: 4 CPUs handed out',
    );

    // The node's own ratio wins over its partition's, and is listed with the partition.
    const own = await root.setAllocationRatios({ node: node.name, ratios: { cpu: 3, memory: 0 } });
    assert.deepEqual(own.partition?.nodeAllocationRatios, { [node.name]: { cpu: 3, memory: 1 } });
    await until(() => placedIds(node).includes(fifth), 'the fifth claim placed (2 cores × 3)');
    // Both 0: the node follows its partition again.
    await root.setAllocationRatios({ node: node.name, ratios: { cpu: 0, memory: 0 } });
    assert.deepEqual((await partition()).nodeAllocationRatios, {});
  });

  it('refuses bad ratios naming the field, unknown targets, and callers who are not admins', async () => {
    await start();
    const node = await twoCoreNode();
    const fields = async (request: Parameters<Api['setAllocationRatios']>[0]) => {
      const error = await failure(root.setAllocationRatios(request));
      assert.equal(error.code, status.INVALID_ARGUMENT, error.message);
      return errorDetails(error).violations.map((v) => v.field);
    };
    assert.deepEqual(await fields({ partition: 'default', ratios: { cpu: 0.5 } }), ['ratios.cpu']);
    assert.deepEqual(await fields({ partition: 'default', ratios: { cpu: 2, memory: 65 } }), ['ratios.memory']);
    assert.deepEqual(await fields({ partition: 'default', ratios: { cpu: Number.NaN, memory: Number.POSITIVE_INFINITY } }), [
      'ratios.cpu',
      'ratios.memory',
    ]);
    assert.deepEqual(await fields({ partition: 'default', node: node.name, ratios: { cpu: 2 } }), ['partition']);
    assert.deepEqual(await fields({ ratios: { cpu: 2 } }), ['partition']);
    assert.equal((await failure(root.setAllocationRatios({ node: 'no-such-node', ratios: { cpu: 2 } }))).code, status.NOT_FOUND);
    assert.equal((await failure(root.setAllocationRatios({ partition: 'nowhere', ratios: { cpu: 2 } }))).code, status.NOT_FOUND);
    assert.equal((await failure(alice.setAllocationRatios({ partition: 'default', ratios: { cpu: 2 } }))).code, status.PERMISSION_DENIED);
    assert.deepEqual((await root.listPartitions({})).partitions.find((p) => p.name === 'default')?.allocationRatios, {
      cpu: 1,
      memory: 1,
    });
  });

  it('takes partition ratios from the configuration file, and an admin’s win over them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'overcommit-'));
    const file = join(dir, 'scheduler.yaml');
    writeFileSync(file, 'partitions:\n  - { name: default, cpu_allocation_ratio: 2, memory_allocation_ratio: 1.5 }\n');
    await start({ LAPIS_SCHEDULER_CONFIG_FILE: file });
    const node = await twoCoreNode();
    const ratios = async () => (await root.listPartitions({})).partitions.find((p) => p.name === 'default')?.allocationRatios;
    assert.deepEqual(await ratios(), { cpu: 2, memory: 1.5 });
    const claims: string[] = [];
    for (let i = 0; i < 4; i++) claims.push((await alice.submitClaim(small)).claim!.id);
    await until(() => claims.every((id) => placedIds(node).includes(id)), 'four 1-CPU claims on the 2-core node');
    await root.setAllocationRatios({ partition: 'default', ratios: { cpu: 4 } });
    assert.deepEqual(await ratios(), { cpu: 4, memory: 1.5 }, 'memory still from the configuration');
    await root.setAllocationRatios({ partition: 'default', ratios: {} });
    assert.deepEqual(await ratios(), { cpu: 2, memory: 1.5 }, 'cleared: the configuration’s again');
  });
});
