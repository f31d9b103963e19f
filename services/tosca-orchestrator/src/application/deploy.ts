// CreateDeployment: the topology's plan (instances, volumes, lifecycle operations) recorded as a
// new deployment, its operation begun, its loop started.
import { randomUUID } from 'node:crypto';
import { applyPlan, type DeploymentRecord } from '../domain/deployment';
import type { Topology } from '../domain/model';
import { applyLifecycle } from '../domain/lifecycle';
import { lifecyclePlan } from '../domain/lifecycle-plan';
import { plan } from '../domain/plan';
import { templateFiles } from '../domain/template-files';
import type { EngineContext } from './context';
import { currentTraceparent } from './trace-context';

export const newDeploymentId = () => `dep-${randomUUID().slice(0, 12)}`;

/** Stores a new deployment and starts it. */
export async function deploy(ctx: EngineContext, record: DeploymentRecord, topology: Topology, token?: string): Promise<DeploymentRecord> {
  const instances = plan(topology);
  applyPlan(record, instances);
  const { files, mainFile } = templateFiles(record.template);
  applyLifecycle(record, lifecyclePlan(topology, instances, files, mainFile));
  record.traceparent = currentTraceparent();
  record.action = 'create';
  record.phase = 'PENDING';
  await ctx.options.deployments.create(record.id, record);
  await ctx.options.operations.begin(record, 'tosca.CreateDeployment');
  if (token) ctx.tokens.set(record.id, token);
  ctx.kick(record.id);
  return record;
}
