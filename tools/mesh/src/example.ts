// The example deployment `make up` makes: a small multi-container application with an
// attached volume, from examples/tosca/web-app.yaml, through the orchestrator like any user.
import type { Mesh } from './mesh';

export async function deployExample(mesh: Mesh): Promise<Record<string, unknown>> {
  void mesh;
  throw new Error('the example deployment needs the tosca-orchestrator (not built yet)');
}
