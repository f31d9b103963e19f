// The runtime's instance_state_changed events move deployments on: an instance running (its
// addresses and node recorded), gone, preempted or in ERROR. Events come at least once and may
// come before the claim they are about is recorded.
import { RetryLater, type RunningConsumer } from '@lapis/platform';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { EngineContext } from './context';

export interface InstanceEvent {
  instanceId: string;
  node: string;
  state: InstanceState;
  reason: string;
  addresses: { network: string; ip: string }[];
}

/** Consumes the runtime's instance events (a durable consumer, so none is lost across restarts). */
export function consumeInstanceEvents(ctx: EngineContext): Promise<RunningConsumer> {
  return ctx.options.bus.consume({
    durable: ctx.options.consumer ?? 'tosca-instances',
    subject: 'lapis.runtime.instance_state_changed.>',
    // A new orchestrator has no deployments that older events could be about; an existing
    // durable consumer goes on from where it stopped.
    deliverNew: true,
    // An event may come before its claim is known (RetryLater): 50 tries are 10 s of that.
    maxDeliver: 50,
    // Handled in milliseconds: one a replica took when it died comes again to another after 10 s.
    ackWaitMs: 10_000,
    handler: async (event) => {
      if (event.payload?.$case !== 'instanceStateChanged') return;
      await onInstance(ctx, event.payload.instanceStateChanged);
    },
  });
}

export async function onInstance(ctx: EngineContext, event: InstanceEvent): Promise<void> {
  const owner = await ctx.options.index.get(event.instanceId);
  if (!owner) {
    if (ctx.submissions.inflight > 0) throw new RetryLater(`instance ${event.instanceId} is not known yet`, 200);
    return;
  }
  const { deployment, key } = owner.value;
  await ctx.change(deployment, (r) => {
    const inst = r.instances[key];
    // The index is written as soon as SubmitClaim answers, the record just after: an event
    // in between records the claim id itself. An end waits for the record instead: it may be
    // the last word of an earlier claim of the same key.
    if (inst && !inst.claimId && inst.state === 'submitted') {
      if ([InstanceState.DELETED, InstanceState.ERROR, InstanceState.PREEMPTED].includes(event.state))
        throw new RetryLater(`claim ${event.instanceId} is not recorded yet`, 200);
      inst.claimId = event.instanceId;
    }
    if (!inst || inst.claimId !== event.instanceId) return;
    switch (event.state) {
      case InstanceState.RUNNING:
        // Made after its cancellation reached the node: deleted again.
        if (inst.state === 'deleting') inst.state = 'unwanted';
        if (inst.state === 'submitted' || inst.state === 'wanted') inst.state = 'running';
        if (inst.state !== 'running') break;
        inst.addresses = event.addresses.map((a) => ({ network: a.network, ip: a.ip }));
        if (event.node) inst.host = event.node;
        break;
      case InstanceState.DELETED:
      case InstanceState.PREEMPTED:
        // Events may come twice (redelivery): a deleted instance stays deleted.
        if (inst.state === 'deleting' || inst.state === 'unwanted' || inst.state === 'deleted') inst.state = 'deleted';
        else if (inst.state !== 'error') {
          inst.state = 'error';
          inst.reason =
            event.reason || (event.state === InstanceState.DELETED ? 'deleted outside the deployment' : InstanceState[event.state]);
        }
        break;
      case InstanceState.ERROR:
        // An instance in ERROR is still on its node (and holds its volumes): one being deleted
        // is deleted again, directly on the runtime.
        if (inst.state === 'deleting') inst.state = 'unwanted';
        else if (inst.state !== 'error' && inst.state !== 'unwanted' && inst.state !== 'deleted') {
          inst.state = 'error';
          inst.reason = event.reason || InstanceState[event.state];
        }
        break;
      default:
        break;
    }
  });
  ctx.kick(deployment);
}
