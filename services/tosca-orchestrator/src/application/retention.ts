// DELETED deployments stay readable for a while (LAPIS_TOSCA_DELETED_RETENTION_S), then their
// records go, so the buckets and the work at every start do not grow for ever.
import { RevisionConflict } from '@lapis/platform';
import type { EngineContext } from './context';

/**
 * Removes the records of deployments DELETED longer ago than the retention: the deployment,
 * its operations and its instances' index entries (the index last written, first removed, so
 * a late event finds no owner rather than a missing record). Returns the removed ids.
 */
export async function sweepDeleted(ctx: EngineContext, now = Date.now()): Promise<string[]> {
  const { deployments, index, operations, log, deletedRetentionMs: retention } = ctx.options;
  if (retention === undefined) return [];
  const expired = (await deployments.list()).filter(
    (e) => e.value.phase === 'DELETED' && Date.parse(e.value.updateTime) + retention <= now,
  );
  if (!expired.length) return [];
  const ids = new Set(expired.map((e) => e.key));
  for (const entry of await index.list()) if (ids.has(entry.value.deployment)) await index.delete(entry.key);
  for (const { key, revision } of expired) {
    await operations.forget(key);
    // Only as it was read: a deployment changed since (it cannot come back from DELETED) stays.
    await deployments.delete(key, revision).catch((error: unknown) => {
      if (!(error instanceof RevisionConflict)) throw error;
    });
  }
  log.info({ deployments: [...ids] }, 'records of deleted deployments removed');
  return [...ids];
}

/** Sweeps now and then every half retention (between 1 s and 10 min); undefined without a retention. */
export function startSweeping(ctx: EngineContext): NodeJS.Timeout | undefined {
  const retention = ctx.options.deletedRetentionMs;
  if (retention === undefined) return undefined;
  const sweep = () => void sweepDeleted(ctx).catch((error) => ctx.options.log.warn({ err: error }, 'sweeping deleted deployments failed'));
  const sweeper = setInterval(sweep, Math.min(Math.max(retention / 2, 1_000), 600_000));
  sweeper.unref();
  sweep();
  return sweeper;
}
