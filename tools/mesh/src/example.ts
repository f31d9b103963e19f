// The example deployment `make up` makes: a small web application with an attached volume
// (examples/tosca/web-app.yaml), through the orchestrator's gRPC API like any user's. A page is
// then written into the volume through the web instance, so its address serves something.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import { createClient } from '@lapis/platform';
import {
  DeploymentState,
  type Deployment,
  type CreateDeploymentResponse,
  type GetDeploymentResponse,
  type UpdateDeploymentResponse,
  type WatchDeploymentResponse,
} from '@lapis/proto/lapis/tosca/v1/tosca';
import { ToscaServiceClient } from '@lapis/proto/lapis/tosca/v1/tosca_service';
import { docker } from '@lapis/testenv';
import { MESH_TOKENS, REPO_ROOT, type Mesh } from './mesh';

export const EXAMPLE_TEMPLATE = join(REPO_ROOT, 'examples/tosca/web-app.yaml');

export async function deployExample(mesh: Mesh, file = EXAMPLE_TEMPLATE): Promise<Record<string, unknown>> {
  const deployment = await deploy(mesh, readFileSync(file, 'utf8'), 'web-app.yaml');
  const web = deployment.nodes.find((n) => n.name === 'web')?.instanceIds[0];
  const container = web && (await docker(['ps', '-q', '--filter', `label=lapis.instance-id=${web}`])).trim();
  if (container) {
    const page = `<h1>Lapis</h1><p>Served by instance ${web} of deployment ${deployment.id}, from the volume attached at /mnt/site.</p>\n`;
    await docker(['exec', '-i', container, 'sh', '-c', 'cat > /mnt/site/index.html'], { input: page });
  }
  return (deployment.outputs ?? {}) as Record<string, unknown>;
}

/** Creates a deployment as alice and waits until it is DEPLOYED (or says why it failed). */
type Unary = <Res>(invoke: (metadata: Metadata, callback: (error: Error | null, response: Res) => void) => unknown) => Promise<Res>;

/** A call as alice (the example's user), with the client closed afterwards. */
async function asAlice<T>(mesh: Pick<Mesh, 'addresses'>, work: (client: ToscaServiceClient, unary: Unary) => Promise<T>): Promise<T> {
  const client = createClient(ToscaServiceClient, mesh.addresses['tosca-orchestrator']!, {
    token: MESH_TOKENS.alice.token,
    deadlineMs: 30_000,
  });
  const unary: Unary = (invoke) =>
    new Promise((resolve, reject) => invoke(new Metadata(), (error, response) => (error ? reject(error) : resolve(response))));
  try {
    return await work(client, unary);
  } finally {
    client.close();
  }
}

/** Follows the deployment's watch stream until it is in `state` (FAILED throws). */
async function waitForState(client: ToscaServiceClient, id: string, state: DeploymentState, timeoutMs: number): Promise<Deployment> {
  const call = client.watchDeployment({ deploymentId: id }, new Metadata(), { deadline: Date.now() + timeoutMs });
  let last: Deployment | undefined;
  try {
    for await (const message of call as AsyncIterable<WatchDeploymentResponse>) {
      last = message.deployment;
      if (last?.state === state) return last;
      if (last?.state === DeploymentState.FAILED) throw new Error(`deployment ${id} failed: ${last.stateReason}`);
    }
  } catch (error) {
    if ((error as { code?: number }).code !== status.DEADLINE_EXCEEDED) throw error;
  } finally {
    call.on('error', () => undefined);
    call.cancel();
  }
  throw new Error(`deployment ${id} still ${DeploymentState[last?.state ?? 0]} after ${timeoutMs} ms: ${last?.stateReason ?? ''}`);
}

/** Creates a deployment as alice and waits until it is DEPLOYED. */
export async function deploy(
  mesh: Pick<Mesh, 'addresses'>,
  yaml: string,
  fileName: string,
  timeoutMs = 120_000,
  inputs?: Record<string, unknown>,
): Promise<Deployment> {
  return asAlice(mesh, async (client, unary) => {
    const created = await unary<CreateDeploymentResponse>((m, cb) =>
      client.createDeployment(
        {
          template: { content: { $case: 'yaml', yaml }, fileName, files: {} },
          inputs,
          textInputs: {},
          keepOnFailure: false,
          requestId: '',
        },
        m,
        cb,
      ),
    );
    return waitForState(client, created.deploymentId, DeploymentState.DEPLOYED, timeoutMs);
  });
}

/** A deployment of alice's as it is now (outputs from the instances' current addresses). */
export async function getDeployment(mesh: Pick<Mesh, 'addresses'>, id: string): Promise<Deployment> {
  return asAlice(
    mesh,
    async (client, unary) => (await unary<GetDeploymentResponse>((m, cb) => client.getDeployment({ deploymentId: id }, m, cb))).deployment!,
  );
}

/** Gives a deployment of alice's new inputs; the orchestrator applies them in the background. */
export async function updateInputs(mesh: Pick<Mesh, 'addresses'>, id: string, inputs: Record<string, unknown>): Promise<void> {
  await asAlice(mesh, (client, unary) =>
    unary<UpdateDeploymentResponse>((m, cb) =>
      client.updateDeployment({ deploymentId: id, template: undefined, inputs, textInputs: {}, requestId: '' }, m, cb),
    ),
  );
}

/** Deletes a deployment of alice's and waits until it is DELETED. */
export async function undeploy(mesh: Pick<Mesh, 'addresses'>, id: string, timeoutMs = 120_000): Promise<void> {
  await asAlice(mesh, async (client, unary) => {
    await unary((m, cb) => client.deleteDeployment({ deploymentId: id, requestId: '' }, m, cb));
    await waitForState(client, id, DeploymentState.DELETED, timeoutMs);
  });
}
