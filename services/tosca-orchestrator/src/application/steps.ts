// One step of a deployment performed through the ports (submit or cancel a claim, create,
// attach or delete a volume) and recorded. Every request carries an id made of the deployment,
// the step and the generation, so a step done again after a restart is done once.
import { Code, withRetries } from '@lapis/platform';
import type { DeploymentRecord, Step } from '../domain/deployment';
import type { EngineContext } from './context';
import { runOperation, skipOperation } from './lifecycle-run';
import { setPhase } from './phases';
import type { ActAs } from './ports';

/** Performs the step; a failure makes the deployment FAILED (rolled back unless kept). */
export async function perform(ctx: EngineContext, id: string, record: DeploymentRecord, step: Step): Promise<void> {
  const { log } = ctx.options;
  // Every request carries the step's id, so trying again is safe. A scheduler or runtime that
  // is restarting (UNAVAILABLE) is waited for (peerWaitMs); a removal is retried on any error
  // (a deletion that still fails is FAILED; deleting again retries it).
  const deleting = record.action === 'delete';
  const waitUntil = Date.now() + (ctx.options.peerWaitMs ?? 15_000);
  try {
    await withRetries(() => performOnce(ctx, id, record, step), {
      attempts: deleting ? 6 : Number.POSITIVE_INFINITY,
      retryIf: (error) => !ctx.stopped() && (deleting || (unavailable(error) && Date.now() < waitUntil)),
      delayMs: (failed) => Math.min(250 * 2 ** failed, 4_000),
      onRetry: (error, attempt) => log.info({ err: error, deployment: id, step, attempt }, 'deployment step failed; retrying'),
    });
  } catch (error) {
    // Stopping: the step is left as it is and the deployment goes on where it stopped once the
    // orchestrator is back (as after a crash), rather than failing for a call cut short.
    if (ctx.stopped()) {
      log.info({ err: error, deployment: id, step }, 'deployment step cut short by shutdown; resumed at the next start');
      return;
    }
    log.warn({ err: error, deployment: id, step }, 'deployment step failed');
    await setPhase(
      ctx,
      id,
      'FAILED',
      `${step.kind} ${step.key} failed: ${(error as Error).message}`,
      !record.keepOnFailure && record.action !== 'delete',
    );
    if (record.action === 'delete') throw error;
  }
}

const unavailable = (error: unknown) => (error as { code?: number }).code === Code.UNAVAILABLE;

async function performOnce(ctx: EngineContext, id: string, record: DeploymentRecord, step: Step): Promise<void> {
  const as: ActAs = { token: ctx.tokens.get(id), project: record.project };
  const requestId = `${id}:${step.kind}:${step.key}:${record.generation}`;
  const { ports, index } = ctx.options;
  switch (step.kind) {
    case 'submitClaim': {
      const inst = record.instances[step.key]!;
      await ctx.change(id, (r) => {
        const i = r.instances[step.key];
        if (i?.state === 'wanted') Object.assign(i, { state: 'submitted', submitRequestId: requestId });
      });
      ctx.submissions.inflight++;
      try {
        const claimId = await ports.submitClaim(inst.spec, requestId, as);
        await index.put(claimId, { deployment: id, key: step.key });
        await ctx.change(id, (r) => {
          const i = r.instances[step.key]!;
          i.claimId = claimId;
          // Deleted while the submission was on its way: the claim goes too.
          if (i.state === 'deleted') i.state = 'unwanted';
        });
      } finally {
        ctx.submissions.inflight--;
      }
      return;
    }
    case 'createVolume': {
      const att = Object.values(record.attachments).find((a) => a.spec.volume === step.key);
      const host = att ? record.instances[att.spec.instance]?.host : undefined;
      const volumeId = await ports.createVolume(record.volumes[step.key]!.spec, requestId, as, host);
      await ctx.change(id, (r) => {
        const v = r.volumes[step.key]!;
        // Deleted while it was being made: it is removed in turn.
        Object.assign(v, { volumeId, state: v.state === 'wanted' ? 'created' : 'unwanted' });
      });
      return;
    }
    case 'attachVolume': {
      const att = record.attachments[step.key]!;
      const volumeId = record.volumes[att.spec.volume]!.volumeId!;
      const instanceId = record.instances[att.spec.instance]!.claimId!;
      await ports.attachVolume(volumeId, instanceId, att.spec, requestId, as);
      await ctx.change(id, (r) => {
        r.attachments[step.key]!.state = 'attached';
      });
      return;
    }
    case 'cancelClaim': {
      const inst = record.instances[step.key]!;
      let claimId = inst.claimId;
      if (!claimId && inst.submitRequestId) {
        // Its submission never answered: the same request id gives back the same claim.
        claimId = await ports.submitClaim(inst.spec, inst.submitRequestId, as);
        await index.put(claimId, { deployment: id, key: step.key });
        await ctx.change(id, (r) => {
          r.instances[step.key]!.claimId = claimId;
        });
      }
      if (!claimId) {
        await ctx.change(id, (r) => {
          r.instances[step.key]!.state = 'deleted';
        });
        return;
      }
      await ctx.change(id, (r) => {
        r.instances[step.key]!.state = 'deleting';
      });
      const { placed } = await ports.cancelClaim(claimId, requestId, as);
      // Cancelling a claim that has ended (its instance in ERROR) does not remove the
      // instance: the runtime is asked directly.
      const gone = await ports.deleteInstance(claimId, requestId, as);
      if (gone === 'deleted' || (gone === 'absent' && !placed)) {
        await ctx.change(id, (r) => {
          const i = r.instances[step.key]!;
          if (i.state === 'deleting' || i.state === 'unwanted') i.state = 'deleted';
        });
      }
      // Otherwise the runtime's events tell (a placement it has not made yet is made and
      // then removed; one it makes after the cancellation is seen running and deleted again).
      return;
    }
    case 'runOperation':
      return runOperation(ctx, id, record, step.key, as);
    case 'skipOperation':
      return skipOperation(ctx, id, step.key, step.reason);
    case 'deleteVolume': {
      const vol = record.volumes[step.key]!;
      if (vol.volumeId) await ports.deleteVolume(vol.volumeId, requestId, as);
      await ctx.change(id, (r) => {
        r.volumes[step.key]!.state = 'deleted';
        for (const a of Object.values(r.attachments)) if (a.spec.volume === step.key) a.state = 'detached';
      });
      return;
    }
  }
}
