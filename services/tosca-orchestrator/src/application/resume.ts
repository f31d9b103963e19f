// After a restart, or when a replica takes over a deployment whose replica stopped or crashed:
// the deployment goes on where it stopped. An operation whose record or end was not written is
// written now; a claim whose submission was cut short is submitted again with the same request
// id (the scheduler gives back the same claim); a lifecycle operation that was running runs
// again (scripts are written to be run again).
import type { DeploymentRecord } from '../domain/deployment';
import { terminalPhases, type EngineContext } from './context';

/** At start: writes what a stop left unwritten of resting deployments, and kicks every other one. */
export async function resume(ctx: EngineContext): Promise<void> {
  for (const { key, value } of await ctx.options.deployments.list()) {
    if (needsDriving(value))
      ctx.kick(key); // its loop picks it up (pickUp) once its lease is free
    else await settleOperation(ctx, value);
  }
}

/** Run by the replica that has just taken the deployment's lease, before it drives it. */
export async function pickUp(ctx: EngineContext, id: string): Promise<void> {
  const entry = await ctx.options.deployments.get(id);
  if (!entry) return;
  const { value } = entry;
  await settleOperation(ctx, value);
  if (Object.values(value.instances).some((i) => i.state === 'submitted' && !i.claimId)) {
    await ctx.change(id, (r) => {
      for (const i of Object.values(r.instances)) if (i.state === 'submitted' && !i.claimId) i.state = 'wanted';
    });
  }
  if (Object.values(value.lifecycle ?? {}).some((l) => l.state === 'running')) {
    await ctx.change(id, (r) => {
      for (const l of Object.values(r.lifecycle ?? {})) if (l.state === 'running') l.state = 'pending';
    });
  }
}

async function settleOperation(ctx: EngineContext, value: DeploymentRecord): Promise<void> {
  const { operations } = ctx.options;
  await operations.begin(
    value,
    value.generation === 0 ? 'tosca.CreateDeployment' : value.action === 'delete' ? 'tosca.DeleteDeployment' : 'tosca.UpdateDeployment',
  );
  await operations.settle(value);
}

/** Whether the deployment has work left: not resting, or a deletion that failed with something left. */
export function needsDriving(r: DeploymentRecord): boolean {
  return !terminalPhases.has(r.phase) || (r.action === 'delete' && r.phase === 'FAILED' && hasLive(r));
}

/** Whether anything of the deployment still exists (or may). */
function hasLive(r: DeploymentRecord): boolean {
  return Object.values(r.instances).some((i) => i.state !== 'deleted') || Object.values(r.volumes).some((v) => v.state !== 'deleted');
}
