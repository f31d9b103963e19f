// The kubernetes backend's answer to ConnectNetwork, run by kubernetes.test.ts inside its
// describe: a Pod's interfaces are fixed when it is made, so a connect is refused, and the
// network stays with nothing connected (it can be deleted).
import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import { errorDetails } from '@lapis/platform';
import type { Network } from '@lapis/proto/lapis/runtime/v1/runtime';
import { expectCode, rpc } from '../harness';
import type { KubeCase } from './kubernetes.test';

export function networkCases(t: KubeCase): void {
  it("refuses ConnectNetwork with FAILED_PRECONDITION saying a Pod's interfaces are fixed; the network stays unused", async () => {
    const { alice, create, remove } = t;
    const instance = await create('no-nets');
    const { network } = (await rpc(alice, alice.createNetwork, {
      name: 'pods-net',
      address: '10.250.0.0/24',
      gateway: '',
      allocation: 0,
      requestId: '',
    })) as { network: Network };
    try {
      const refused = await expectCode(
        rpc(alice, alice.connectNetwork, { networkId: network.id, instanceId: instance.id, ip: '', requestId: '' }),
        status.FAILED_PRECONDITION,
        /a Pod's network interfaces are fixed/,
      );
      assert.equal(errorDetails(refused).errorInfo?.reason, 'NETWORKS_NOT_SUPPORTED');
      const after = (await rpc(alice, alice.getNetwork, { networkId: network.id })) as { network: Network };
      assert.deepEqual(after.network.connections, []);
    } finally {
      await rpc(alice, alice.deleteNetwork, { networkId: network.id, requestId: '' });
      await remove(instance.id);
    }
  });
}
