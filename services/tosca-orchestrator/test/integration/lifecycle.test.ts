// Deployments against the real scheduler and runtime: the three services as their own processes
// (as production runs them) on the run's NATS, the runtime on the shared Docker engine with real
// containers and loop-device volumes. What a deployment made must be gone after
// DeleteDeployment, whatever state it was in: FAILED and kept, FAILED and rolled back, or still
// being created.
import { strict as assert } from 'node:assert';
import { call, Code, createClient } from '@lapis/platform';
import { TEST_TOKENS, until } from '@lapis/platform/testing';
import {
  InstanceState,
  type GetOperationRequest,
  type GetOperationResponse,
  type ListOperationsRequest,
  type ListOperationsResponse,
  type CancelOperationRequest,
  type CancelOperationResponse,
  type Operation,
  type WatchOperationResponse,
} from '@lapis/proto/lapis/common/v1/common';
import { OperationsServiceClient } from '@lapis/proto/lapis/common/v1/operations_service';
import type {
  ListInstancesRequest,
  ListInstancesResponse,
  ListVolumesRequest,
  ListVolumesResponse,
} from '@lapis/proto/lapis/runtime/v1/runtime';
import type { RuntimeServiceClient } from '@lapis/proto/lapis/runtime/v1/runtime_service';
import {
  DeploymentState,
  type CreateDeploymentRequest,
  type CreateDeploymentResponse,
  type DeleteDeploymentRequest,
  type DeleteDeploymentResponse,
  Deployment as DeploymentCodec,
  type Deployment,
  type GetDeploymentRequest,
  type GetDeploymentResponse,
} from '@lapis/proto/lapis/tosca/v1/tosca';
import type { ToscaServiceClient } from '@lapis/proto/lapis/tosca/v1/tosca_service';
import { docker } from '@lapis/testenv';
import { Mesh } from '../mesh';

/** A front end with a volume attached, and workers that need it; the workers' image is an input. */
const TEMPLATE = `tosca_definitions_version: tosca_simple_yaml_1_3
imports:
  - https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml
topology_template:
  inputs:
    image: { type: string }
    worker_image: { type: string }
    workers: { type: integer, default: 1 }
  node_templates:
    front:
      type: tosca.nodes.indigo.Compute
      capabilities:
        host: { properties: { num_cpus: 1, mem_size: 64 MB } }
        os: { properties: { image: { get_input: image } } }
      requirements:
        - local_storage:
            node: data
            capability: tosca.capabilities.Attachment
            relationship: { type: tosca.relationships.AttachesTo, properties: { location: /mnt/data } }
    data:
      type: tosca.nodes.indigo.BlockStorage
      properties: { size: 16 MiB }
    worker:
      type: tosca.nodes.indigo.Compute
      capabilities:
        host: { properties: { num_cpus: 1, mem_size: 64 MB } }
        scalable: { properties: { count: { get_input: workers } } }
        os: { properties: { image: { get_input: worker_image } } }
      requirements:
        - dependency: front
`;

describe('deployments against the real scheduler and runtime (own processes, Docker)', function () {
  this.timeout(180_000);
  const mesh = new Mesh();
  const { node, image, procs } = mesh;
  // Nothing listens on port 1: pulling it fails at once, the instance is in ERROR.
  const missingImage = '127.0.0.1:1/lapis/absent:1';
  let tosca: ToscaServiceClient;
  let ops: OperationsServiceClient;
  let runtime: RuntimeServiceClient;
  /** The orchestrator again, after a stop, and clients to it as alice. */
  const startOrchestrator = async () => {
    const orchestrator = await mesh.startOrchestrator();
    ({ tosca, ops } = mesh);
    return orchestrator;
  };

  before(async () => {
    await mesh.start();
    ({ tosca, ops, runtime } = mesh);
  });

  after(() => mesh.stop());

  const get = async (id: string) =>
    (await call<GetDeploymentRequest, GetDeploymentResponse>(tosca.getDeployment.bind(tosca), { deploymentId: id })).deployment!;
  const waitFor = (id: string, state: DeploymentState, check: (d: Deployment) => boolean = () => true) =>
    until(
      async () => {
        const d = await get(id);
        return d.state === state && check(d) ? d : undefined;
      },
      `deployment ${id} ${DeploymentState[state]}`,
      120_000,
    ).catch(async (error: Error) => {
      const d = await get(id);
      throw new Error(
        `${error.message}; it is ${DeploymentState[d.state]} (${d.stateReason}): ${JSON.stringify(d.nodes.map((n) => [n.name, n.state, n.instanceIds, n.volumeIds]))}`,
      );
    });
  const createOp = (inputs: Record<string, unknown>, keepOnFailure: boolean) =>
    call<CreateDeploymentRequest, CreateDeploymentResponse>(tosca.createDeployment.bind(tosca), {
      template: { content: { $case: 'yaml', yaml: TEMPLATE }, fileName: 'lifecycle.yaml', files: {} },
      inputs,
      textInputs: {},
      keepOnFailure,
      requestId: '',
    });
  const create = async (inputs: Record<string, unknown>, keepOnFailure: boolean) => (await createOp(inputs, keepOnFailure)).deploymentId;
  const getOperation = async (name: string) =>
    (await call<GetOperationRequest, GetOperationResponse>(ops.getOperation.bind(ops), { name })).operation!;
  /** Follows an operation with WatchOperation until it is done: every message it sent. */
  const watchOperation = (name: string) =>
    new Promise<Operation[]>((resolve, reject) => {
      const seen: Operation[] = [];
      const stream = ops.watchOperation({ name });
      stream.on('data', (r: WatchOperationResponse) => seen.push(r.operation!));
      stream.on('error', reject);
      stream.on('end', () => resolve(seen));
    });
  const deploymentOf = (any: { value: Uint8Array } | undefined) => DeploymentCodec.decode(any!.value);
  const remove = (id: string) =>
    call<DeleteDeploymentRequest, DeleteDeploymentResponse>(tosca.deleteDeployment.bind(tosca), { deploymentId: id, requestId: '' });

  /** Nothing of the deployment is left on the node: its instances are DELETED, its volumes gone, no container. */
  const nothingLeft = async (d: Deployment) => {
    const instanceIds = d.nodes.flatMap((n) => n.instanceIds);
    const volumeIds = d.nodes.flatMap((n) => n.volumeIds);
    assert.ok(instanceIds.length > 0 && volumeIds.length > 0, 'the deployment had made something');
    const { instances } = await call<ListInstancesRequest, ListInstancesResponse>(runtime.listInstances.bind(runtime), {
      pageSize: 1000,
      pageToken: '',
      project: '',
      state: 0,
      node,
    });
    const live = instances.filter((i) => instanceIds.includes(i.id) && i.state !== InstanceState.DELETED);
    assert.deepEqual(
      live.map((i) => `${i.id} ${InstanceState[i.state]}`),
      [],
      'no instance left',
    );
    const { volumes } = await call<ListVolumesRequest, ListVolumesResponse>(runtime.listVolumes.bind(runtime), {
      pageSize: 1000,
      pageToken: '',
      project: '',
      state: 0,
      instanceId: '',
    });
    assert.deepEqual(
      volumes.filter((v) => volumeIds.includes(v.id)).map((v) => v.id),
      [],
      'no volume left',
    );
    assert.equal((await docker(['ps', '-aq', '--filter', `label=tosca/deployment=${d.id}`])).trim(), '', 'no container left');
  };

  it('deleting a FAILED deployment kept on failure removes its running and failed instances and its volume, and ends DELETED', async () => {
    const { deploymentId: id, operation: creating } = await createOp({ image, worker_image: missingImage }, true);
    // The creation's operation, followed to its end: it ends with the failure.
    const watched = await watchOperation(creating!.name);
    const end = watched[watched.length - 1]!;
    assert.equal(end.done, true);
    assert.ok(
      watched.slice(0, -1).every((o) => !o.done),
      'done only at the end',
    );
    assert.equal(end.result?.$case === 'error' && end.result.error.code, 9);
    assert.match(end.result?.$case === 'error' ? end.result.error.message : '', /instance worker-0 \(node worker\) failed/);
    assert.equal(deploymentOf(end.metadata).state, DeploymentState.FAILED);
    const failed = await waitFor(id, DeploymentState.FAILED);
    assert.match(failed.stateReason, /instance worker-0 \(node worker\) failed/);
    const front = failed.nodes.find((n) => n.name === 'front')!;
    assert.equal(front.instanceIds.length, 1);
    assert.equal(failed.nodes.flatMap((n) => n.volumeIds).length, 1, 'the volume was made');
    const kept = await get(id);
    const { operation: deleting } = await remove(id);
    assert.equal(deleting?.kind, 'tosca.DeleteDeployment');
    assert.notEqual(deleting?.name, creating!.name);
    const done = (await watchOperation(deleting!.name)).pop()!;
    assert.equal(done.result?.$case, 'response');
    assert.equal(deploymentOf(done.result?.$case === 'response' ? done.result.response : undefined).state, DeploymentState.DELETED);
    const deleted = await waitFor(id, DeploymentState.DELETED);
    assert.equal(deleted.stateReason, '');
    await nothingLeft(kept);
    lastOperations = [creating!.name, deleting!.name];
  });

  let lastOperations: string[] = [];

  it('operations are kept across a restart of the orchestrator; only the project sees them', async () => {
    assert.equal(lastOperations.length, 2, 'the test before made two operations');
    const before = await Promise.all(lastOperations.map(getOperation));
    const old = procs.splice(
      procs.findIndex((p) => p.name === 'tosca-orchestrator'),
      1,
    )[0]!;
    await old.stop();
    await startOrchestrator();
    const after = await Promise.all(lastOperations.map(getOperation));
    assert.deepEqual(
      after.map((o) => [o.name, o.kind, o.done, o.result?.$case]),
      before.map((o) => [o.name, o.kind, o.done, o.result?.$case]),
    );
    assert.deepEqual(
      after.map((o) => [o.kind, o.result?.$case]),
      [
        ['tosca.CreateDeployment', 'error'],
        ['tosca.DeleteDeployment', 'response'],
      ],
    );
    const listed = await call<ListOperationsRequest, ListOperationsResponse>(ops.listOperations.bind(ops), {
      pageSize: 0,
      pageToken: '',
      onlyRunning: false,
    });
    assert.ok(
      lastOperations.every((name) => listed.operations.some((o) => o.name === name)),
      'listed',
    );
    const running = await call<ListOperationsRequest, ListOperationsResponse>(ops.listOperations.bind(ops), {
      pageSize: 0,
      pageToken: '',
      onlyRunning: true,
    });
    assert.ok(!running.operations.some((o) => lastOperations.includes(o.name)), 'done ones are not running');
    const bob = createClient(OperationsServiceClient, procs.find((p) => p.name === 'tosca-orchestrator')!.address, {
      token: TEST_TOKENS.bob.token,
    });
    try {
      await assert.rejects(
        call<GetOperationRequest, GetOperationResponse>(bob.getOperation.bind(bob), { name: lastOperations[0]! }),
        (e: { code: number }) => e.code === Code.NOT_FOUND,
      );
      const his = await call<ListOperationsRequest, ListOperationsResponse>(bob.listOperations.bind(bob), {
        pageSize: 0,
        pageToken: '',
        onlyRunning: false,
      });
      assert.ok(!his.operations.some((o) => lastOperations.includes(o.name)));
    } finally {
      bob.close();
    }
    await assert.rejects(getOperation('operations/tosca/dep-000000000000/0'), (e: { code: number }) => e.code === Code.NOT_FOUND);
  });

  it('deleting a FAILED deployment that rolled back ends DELETED with nothing left', async () => {
    const id = await create({ image, worker_image: missingImage }, false);
    // Seen while it still has its instances (the rollback may already be removing them).
    const made = await waitFor(
      id,
      DeploymentState.FAILED,
      (d) => d.nodes.some((n) => n.name === 'worker' && n.instanceIds.length > 0) && d.nodes.some((n) => n.volumeIds.length > 0),
    );
    await remove(id);
    await waitFor(id, DeploymentState.DELETED);
    await nothingLeft(made);
  });

  it('a deployment still being created is deleted: creation stops and what it made goes', async () => {
    const id = await create({ image, worker_image: image, workers: 2 }, false);
    const partial = await until(
      async () => {
        const d = await get(id);
        return d.nodes.find((n) => n.name === 'front')!.instanceIds.length > 0 &&
          d.nodes.find((n) => n.name === 'data')!.volumeIds.length > 0
          ? d
          : undefined;
      },
      'the front end and its volume made',
      120_000,
    );
    await remove(id);
    const deleted = await waitFor(id, DeploymentState.DELETED);
    await nothingLeft({
      ...deleted,
      nodes: deleted.nodes.map((n) => ({
        ...n,
        volumeIds: [...new Set([...n.volumeIds, ...(partial.nodes.find((p) => p.name === n.name)?.volumeIds ?? [])])],
      })),
    });
  });

  it('CancelOperation stops a creation: its operation ends CANCELLED, the deployment FAILED, and what it made goes', async () => {
    const { deploymentId: id, operation } = await createOp({ image, worker_image: image, workers: 2 }, false);
    await until(
      async () => ((await get(id)).nodes.find((n) => n.name === 'front')!.instanceIds.length > 0 ? true : undefined),
      'the front end submitted',
      60_000,
    );
    const cancelled = (
      await call<CancelOperationRequest, CancelOperationResponse>(ops.cancelOperation.bind(ops), { name: operation!.name })
    ).operation!;
    assert.equal(cancelled.done, true);
    assert.equal(cancelled.result?.$case === 'error' && cancelled.result.error.code, 1);
    const failed = await waitFor(id, DeploymentState.FAILED, (d) =>
      d.nodes.every((n) => n.state === 5 /* DELETED */ || (n.instanceIds.length === 0 && n.volumeIds.length === 0)),
    );
    assert.equal(failed.stateReason, 'cancelled');
    const made = failed.nodes.flatMap((n) => n.instanceIds);
    const { instances } = await call<ListInstancesRequest, ListInstancesResponse>(runtime.listInstances.bind(runtime), {
      pageSize: 1000,
      pageToken: '',
      project: '',
      state: 0,
      node,
    });
    assert.deepEqual(
      instances.filter((i) => made.includes(i.id) && i.state !== InstanceState.DELETED).map((i) => i.id),
      [],
      'nothing left running',
    );
    // A done operation is answered as it is; a deletion cannot be cancelled.
    assert.equal(
      (await call<CancelOperationRequest, CancelOperationResponse>(ops.cancelOperation.bind(ops), { name: operation!.name })).operation
        ?.done,
      true,
    );
    const { operation: deleting } = await remove(id);
    // (It may be done already: a rolled-back deployment has little left to delete.)
    const answer = await call<CancelOperationRequest, CancelOperationResponse>(ops.cancelOperation.bind(ops), {
      name: deleting!.name,
    }).then(
      (r) => r.operation!,
      (e: { code: number }) => e,
    );
    assert.ok(
      'done' in answer ? answer.done : answer.code === Code.FAILED_PRECONDITION,
      `a deletion is not cancelled: ${JSON.stringify(answer)}`,
    );
    await waitFor(id, DeploymentState.DELETED);
  });
});
