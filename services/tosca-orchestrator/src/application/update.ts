// UpdateDeployment: a new template or new inputs. The plan is made against what exists (so
// `scalable.count` and `removal_list` add or remove only their instances) and only the
// difference changes; the operation under way, if any, is taken over.
import { applyPlan, type DeploymentRecord } from '../domain/deployment';
import type { Topology } from '../domain/model';
import { applyLifecycle } from '../domain/lifecycle';
import { lifecyclePlan } from '../domain/lifecycle-plan';
import { plan, type Existing } from '../domain/plan';
import { templateFiles } from '../domain/template-files';
import type { EngineContext } from './context';
import { takeOver } from './phases';
import { currentTraceparent } from './trace-context';

/** A new template or inputs (`change` answers the new topology): only what the plan's difference says changes. */
export async function update(
  ctx: EngineContext,
  id: string,
  change: (r: DeploymentRecord) => Topology,
  token?: string,
): Promise<DeploymentRecord> {
  let previous = '';
  const updated = await ctx.options.deployments.mutate(id, (current) => {
    if (!current) return undefined;
    previous = current.operation;
    const topology = change(current);
    const existing: Existing = new Map();
    for (const [key, inst] of Object.entries(current.instances)) {
      if (inst.state === 'deleted' || inst.state === 'unwanted' || key.includes('~')) continue;
      const list = existing.get(inst.spec.node) ?? [];
      list.push({ key, instanceId: inst.claimId });
      existing.set(inst.spec.node, list);
    }
    current.generation++;
    const instances = plan(topology, existing);
    applyPlan(current, instances);
    const { files, mainFile } = templateFiles(current.template);
    applyLifecycle(current, lifecyclePlan(topology, instances, files, mainFile));
    current.traceparent = currentTraceparent() ?? current.traceparent;
    current.action = 'update';
    current.phase = 'UPDATING';
    current.updateTime = new Date().toISOString();
    current.operation = `operations/tosca/${id}/${current.generation}`;
    return current;
  });
  if (!updated) throw new Error(`deployment ${id} vanished`);
  await takeOver(ctx, previous, updated.value, 'tosca.UpdateDeployment');
  if (token) ctx.tokens.set(id, token);
  ctx.kick(id);
  return updated.value;
}
