// A compute is a scheduler claim joined with its runtime instance. It exists from its claim
// until it is deleted: a claim the scheduler ended (the container failed) still has its
// instance, shown in error; a cancelled claim, or an ended one whose instance is gone, is a
// deleted compute.
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import { ClaimState, type Claim } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import type { Credentials } from '../adapters/lapis';
import { OcciError } from '../domain/entity';
import type { GatewayContext } from './context';
import { hideOtherProjects } from './hide-other-projects';

/** An instance that no longer exists on its node. */
export const isGone = (instance: Instance) => instance.state === InstanceState.DELETED || instance.state === InstanceState.PREEMPTED;

/** A compute's claim and instance; 404 once it is deleted. */
export async function compute(ctx: GatewayContext, c: Credentials, id: string): Promise<{ claim: Claim; instance?: Instance }> {
  const claim = await ctx.lapis.getClaim(c, id);
  if (claim.state === ClaimState.CANCELLED) throw new OcciError(404, `compute ${id} was deleted`);
  const instance = claim.node ? await ctx.lapis.findInstance(c, id) : undefined;
  if (claim.state === ClaimState.ENDED && (!instance || isGone(instance))) throw new OcciError(404, `compute ${id} was deleted`);
  return { claim, instance };
}

/** The compute's instance, for what needs one (actions, links); a queued compute has none yet (409). */
export async function liveInstance(ctx: GatewayContext, c: Credentials, id: string, what: string): Promise<Instance> {
  const { claim, instance } = await hideOtherProjects('compute', id, () => compute(ctx, c, id));
  if (!instance || instance.state === InstanceState.SCHEDULED || instance.state === InstanceState.PENDING) {
    const reason =
      claim.state === ClaimState.PENDING || claim.state === ClaimState.REQUEUED
        ? claim.reasonDetail || 'queued'
        : 'placed, its instance is being made';
    throw new OcciError(409, `compute ${id} is queued and has no instance yet (${reason}): ${what} once it runs`);
  }
  return instance;
}
