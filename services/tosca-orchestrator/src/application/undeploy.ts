// DeleteDeployment, in every state: a creation or update still running is cut short (nothing
// more is submitted; what is in flight is removed once it answers), a FAILED deployment (kept,
// rolled back, or whose rollback stopped) has what is left removed, its software stopped and
// deleted first (undeploy operations); it ends DELETED.
import { wantNothing, type DeploymentRecord } from '../domain/deployment';
import type { EngineContext } from './context';
import { takeOver } from './phases';
import { currentTraceparent } from './trace-context';

/** Undeploys whatever the deployment is doing; a deletion already under way is left as it is. */
export async function undeploy(ctx: EngineContext, id: string, token?: string): Promise<DeploymentRecord | undefined> {
  let previous = '';
  const updated = await ctx.options.deployments.mutate(id, (current) => {
    if (!current || current.phase === 'DELETED' || (current.action === 'delete' && current.phase !== 'FAILED')) return undefined;
    previous = current.operation;
    current.generation++;
    wantNothing(current);
    current.action = 'delete';
    current.phase = 'DELETING';
    current.updateTime = new Date().toISOString();
    current.operation = `operations/tosca/${id}/${current.generation}`;
    current.traceparent = currentTraceparent() ?? current.traceparent;
    return current;
  });
  // (mutate answers the entry as it is when nothing changed)
  if (updated && previous) await takeOver(ctx, previous, updated.value, 'tosca.DeleteDeployment');
  if (token) ctx.tokens.set(id, token);
  ctx.kick(id);
  return updated?.value;
}
