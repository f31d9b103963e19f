// One deployment's loop: the domain says what to do next (domain/deployment.ts nextSteps), the
// steps are performed, until there is nothing left to do or the deployment rests.
import { nextSteps } from '../domain/deployment';
import type { EngineContext } from './context';
import { setPhase } from './phases';
import { perform } from './steps';

export async function drive(ctx: EngineContext, id: string): Promise<void> {
  // Another replica drives it once this one has lost its lease (ownership.ts).
  for (let round = 0; round < 1000 && !ctx.stopped() && ctx.owns(id); round++) {
    const entry = await ctx.options.deployments.get(id);
    if (!entry) return;
    const record = entry.value;
    // FAILED and kept: nothing more happens until an update or a deletion.
    if (record.phase === 'FAILED' && record.action !== 'delete') return;
    const { steps, phase, reason } = nextSteps(record);
    if (phase === 'FAILED' && record.action !== 'delete') {
      await setPhase(ctx, id, phase, reason, !record.keepOnFailure);
      if (record.keepOnFailure) return;
      continue;
    }
    if (record.phase !== phase || record.reason !== reason) await setPhase(ctx, id, phase, reason, false);
    if (!steps.length) return;
    await Promise.all(steps.map((step) => perform(ctx, id, record, step)));
  }
}
