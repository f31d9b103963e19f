// CancelOperation of a creation or an update: nothing more is made, and what was made is
// removed (kept with keep_on_failure); the deployment is FAILED (reason `cancelled`), its
// operation CANCELLED. A deletion is not cancelled.
import { Code } from '@lapis/platform';
import { wantNothing, type DeploymentRecord } from '../domain/deployment';
import { terminalPhases, type EngineContext } from './context';
import { publishPhase } from './phases';

/** Answers the deployment as it is after, undefined when nothing ran. */
export async function cancel(ctx: EngineContext, id: string): Promise<DeploymentRecord | undefined> {
  const reason = 'cancelled';
  let changed = false;
  const updated = await ctx.options.deployments.mutate(id, (current) => {
    if (!current || current.action === 'delete' || terminalPhases.has(current.phase)) return undefined;
    changed = true;
    current.phase = 'FAILED';
    current.reason = reason;
    current.updateTime = new Date().toISOString();
    if (!current.keepOnFailure) {
      wantNothing(current);
      current.action = 'delete';
    }
    return current;
  });
  if (!updated || !changed) return undefined;
  await ctx.options.operations.finish(updated.value.operation, 'FAILED', {
    code: Code.CANCELLED,
    message: `operation ${updated.value.operation} was cancelled`,
  });
  await publishPhase(ctx, updated.value);
  ctx.kick(id);
  return updated.value;
}
