// The example deployment `make up` makes: a small web application with an attached volume
// (examples/tosca/web-app.yaml), through the orchestrator's gRPC API like any user's.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import { createClient } from '@lapis/platform';
import { DeploymentState, ToscaServiceClient, type Deployment, type GetDeploymentResponse, type CreateDeploymentResponse } from '@lapis/proto/lapis/tosca/v1/tosca';
import { sleep } from '@lapis/platform/testing';
import { MESH_TOKENS, REPO_ROOT, type Mesh } from './mesh';

export const EXAMPLE_TEMPLATE = join(REPO_ROOT, 'examples/tosca/web-app.yaml');

export async function deployExample(mesh: Mesh, file = EXAMPLE_TEMPLATE): Promise<Record<string, unknown>> {
  const deployment = await deploy(mesh, readFileSync(file, 'utf8'), 'web-app.yaml');
  return (deployment.outputs ?? {}) as Record<string, unknown>;
}

/** Creates a deployment as alice and waits until it is DEPLOYED (or says why it failed). */
export async function deploy(mesh: Mesh, yaml: string, fileName: string, timeoutMs = 120_000): Promise<Deployment> {
  const client = createClient(ToscaServiceClient, mesh.addresses['tosca-orchestrator']!, { token: MESH_TOKENS.alice.token, deadlineMs: 30_000 });
  const unary = <Res>(invoke: (metadata: Metadata, callback: (error: Error | null, response: Res) => void) => unknown) =>
    new Promise<Res>((resolve, reject) => invoke(new Metadata(), (error, response) => (error ? reject(error) : resolve(response))));
  try {
    const created = await unary<CreateDeploymentResponse>((m, cb) =>
      client.createDeployment({ template: { content: { $case: 'yaml', yaml }, fileName, files: {} }, inputs: undefined, keepOnFailure: false, requestId: '' }, m, cb),
    );
    for (const deadline = Date.now() + timeoutMs; ; await sleep(300)) {
      const { deployment } = await unary<GetDeploymentResponse>((m, cb) => client.getDeployment({ deploymentId: created.deploymentId }, m, cb));
      if (deployment?.state === DeploymentState.DEPLOYED) return deployment;
      if (deployment?.state === DeploymentState.FAILED) throw new Error(`deployment ${created.deploymentId} failed: ${deployment.stateReason}`);
      if (Date.now() > deadline) throw new Error(`deployment ${created.deploymentId} still ${DeploymentState[deployment?.state ?? 0]} after ${timeoutMs} ms: ${deployment?.stateReason}`);
    }
  } finally {
    client.close();
  }
}
