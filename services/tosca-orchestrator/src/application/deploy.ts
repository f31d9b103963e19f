// CreateDeployment: the topology's plan recorded as a new deployment, its operation begun, its
// loop started.
import { randomUUID } from 'node:crypto';
import { applyPlan, type DeploymentRecord } from '../domain/deployment';
import type { Topology } from '../domain/model';
import { plan } from '../domain/plan';
import type { EngineContext } from './context';

export const newDeploymentId = () => `dep-${randomUUID().slice(0, 12)}`;

/** Stores a new deployment and starts it. */
export async function deploy(ctx: EngineContext, record: DeploymentRecord, topology: Topology, token?: string): Promise<DeploymentRecord> {
  applyPlan(record, plan(topology));
  record.action = 'create';
  record.phase = 'PENDING';
  await ctx.options.deployments.create(record.id, record);
  await ctx.options.operations.begin(record, 'tosca.CreateDeployment');
  if (token) ctx.tokens.set(record.id, token);
  ctx.kick(record.id);
  return record;
}
