// After a restart: every deployment that was not finished goes on where it stopped. An
// operation whose record or end was not written before the stop is written now; a claim whose
// submission was cut short is submitted again with the same request id (the scheduler gives
// back the same claim); a lifecycle operation that was running runs again.
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
    // An operation cut short by the stop runs again (scripts are written to be run again).
    if (Object.values(value.lifecycle ?? {}).some((l) => l.state === 'running')) {
      await ctx.change(key, (r) => {
        for (const l of Object.values(r.lifecycle ?? {})) if (l.state === 'running') l.state = 'pending';
      });
    }
    if (!terminalPhases.has(value.phase) || (value.action === 'delete' && value.phase === 'FAILED' && hasLive(value))) ctx.kick(key);
  }
}

/** Whether anything of the deployment still exists (or may). */
function hasLive(r: DeploymentRecord): boolean {
  return Object.values(r.instances).some((i) => i.state !== 'deleted') || Object.values(r.volumes).some((v) => v.state !== 'deleted');
}
