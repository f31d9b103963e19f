// After a restart: every deployment that was not finished goes on where it stopped. An
// operation whose record or end was not written before the stop is written now; a claim whose
// submission was cut short is submitted again with the same request id (the scheduler gives
// back the same claim).
import type { DeploymentRecord } from '../domain/deployment';
import { terminalPhases, type EngineContext } from './context';

export async function resume(ctx: EngineContext): Promise<void> {
  const { deployments, operations } = ctx.options;
  for (const { key, value } of await deployments.list()) {
    await operations.begin(
      value,
      value.generation === 0 ? 'tosca.CreateDeployment' : value.action === 'delete' ? 'tosca.DeleteDeployment' : 'tosca.UpdateDeployment',
    );
    await operations.settle(value);
    if (Object.values(value.instances).some((i) => i.state === 'submitted' && !i.claimId)) {
      await ctx.change(key, (r) => {
        for (const i of Object.values(r.instances)) if (i.state === 'submitted' && !i.claimId) i.state = 'wanted';
      });
    }
    if (!terminalPhases.has(value.phase) || (value.action === 'delete' && value.phase === 'FAILED' && hasLive(value))) ctx.kick(key);
  }
}

/** Whether anything of the deployment still exists (or may). */
function hasLive(r: DeploymentRecord): boolean {
  return Object.values(r.instances).some((i) => i.state !== 'deleted') || Object.values(r.volumes).some((v) => v.state !== 'deleted');
}
