// A deployment's phase and the operation working on it: a phase change is recorded, ends the
// operation when the phase ends it, and is published; a new operation ends the one it takes
// over from.
import { Code } from '@lapis/platform';
import { DeploymentStateChanged } from '@lapis/proto/lapis/events/v1/events';
import { DeploymentState } from '@lapis/proto/lapis/tosca/v1/tosca';
import { wantNothing, type DeploymentRecord } from '../domain/deployment';
import type { OperationKind } from '../adapters/operations';
import type { EngineContext } from './context';

/** Sets the phase (and with `rollback` undeploys what was made); the operation settles, the change is published. */
export async function setPhase(
  ctx: EngineContext,
  id: string,
  phase: DeploymentRecord['phase'],
  reason: string,
  rollback: boolean,
): Promise<void> {
  let changed: DeploymentRecord | undefined;
  await ctx.options.deployments.mutate(id, (current) => {
    if (!current) return undefined;
    if (current.phase === phase && current.reason === reason && !rollback) return undefined;
    current.phase = phase;
    current.reason = reason;
    current.updateTime = new Date().toISOString();
    if (rollback) {
      wantNothing(current);
      current.action = 'delete';
    }
    changed = current;
    return current;
  });
  if (changed) {
    await ctx.options.operations.settle(changed);
    await publishPhase(ctx, changed);
  }
}

/** Everyone else (the gateway, users' tools) learns of a deployment's new phase from the bus. */
export async function publishPhase(ctx: EngineContext, r: DeploymentRecord): Promise<void> {
  const { bus, log } = ctx.options;
  const event = DeploymentStateChanged.fromPartial({
    deploymentId: r.id,
    project: r.project,
    state: DeploymentState[r.phase],
    reason: r.reason,
  });
  await bus
    .publish(
      { $case: 'deploymentStateChanged', deploymentStateChanged: event },
      r.id,
      `${r.id}.${r.phase}.${r.generation}.${r.reason.length}`,
    )
    .catch((error) => log.warn({ err: error, deployment: r.id }, 'could not publish the deployment state'));
}

/** A new operation works on the deployment: the one it takes over from ends (ABORTED) if it still ran. */
export async function takeOver(ctx: EngineContext, previous: string, record: DeploymentRecord, kind: OperationKind): Promise<void> {
  const { operations } = ctx.options;
  if (previous && previous !== record.operation) {
    await operations.finish(previous, record.phase, { code: Code.ABORTED, message: `superseded by ${kind} (${record.operation})` });
  }
  await operations.begin(record, kind);
}
