// The kubernetes backend's answer to SuspendInstance, run by kubernetes.test.ts inside its
// describe, on its control plane: Kubernetes has no pause for a Pod, so it is refused, and the
// instance runs on as it was.
import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import { errorDetails } from '@lapis/platform';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { expectCode, rpc } from '../harness';
import type { KubeCase } from './kubernetes.test';

export function suspendCases(t: KubeCase): void {
  it('refuses SuspendInstance with FAILED_PRECONDITION saying a Pod has no pause; the instance runs on', async () => {
    const { alice, create, get, remove } = t;
    const instance = await create('no-pause');
    try {
      const refused = await expectCode(
        rpc(alice, alice.suspendInstance, { instanceId: instance.id, requestId: '' }),
        status.FAILED_PRECONDITION,
        /Kubernetes has no pause for a Pod/,
      );
      assert.equal(errorDetails(refused).errorInfo?.reason, 'NO_SUSPEND');
      assert.equal((await get(instance.id)).state, InstanceState.RUNNING);
    } finally {
      await remove(instance.id);
    }
  });
}
