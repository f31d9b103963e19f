// One repository of a policy: its upstream tags (the tag list, or HEADs of the tags a policy
// names exactly, together with HEADs of the catalogued ones), the chosen tags synced side by
// side (sync-tag.ts), tags gone upstream pruned when the policy says so, and one status
// (RUNNING first when it takes longer than a moment).
import {
  SyncResult,
  UpstreamRemoval,
  type Image,
  type RepositorySyncStatus,
  type SyncError,
  type SyncPolicy,
} from '@lapis/proto/lapis/images/v1/images';
import type { RegistryClient } from '../adapters/registry/client';
import { RegistryError } from '../adapters/registry/errors';
import { statusKey } from '../adapters/store';
import { destinationOf, namedTags, selectTags } from '../domain/policy';
import { SyncFailure } from '../domain/sync-failure';
import { removeImage } from './remove-image';
import type { SyncContext } from './sync-context';
import { syncTag } from './sync-tag';
import { recordRepositorySync } from './metrics';

export async function syncRepository(
  ctx: SyncContext,
  policy: SyncPolicy,
  repository: string,
  source: RegistryClient | undefined,
  sourceError: SyncFailure | undefined,
  catalogued: Image[],
  signal?: AbortSignal,
): Promise<RepositorySyncStatus> {
  const destination = destinationOf(policy, repository);
  const log = ctx.options.log.child({ policy: policy.name, repository });
  const status: RepositorySyncStatus = {
    policy: policy.name,
    repository: destination,
    result: SyncResult.RUNNING,
    startTime: new Date(),
    endTime: undefined,
    tagsPromoted: 0,
    tagsUnchanged: 0,
    tagsRemoved: 0,
    bytesCopied: 0,
    errors: [],
  };
  const { statuses } = ctx.options.stores;
  // Recorded as RUNNING while the work goes on, once it takes longer than a moment (a no-op
  // is over before: it writes only its final status); the final status is written after it.
  let running: Promise<unknown> | undefined;
  const runningTimer = setTimeout(() => {
    running = statuses.put(statusKey(policy.name, destination), { ...status });
    running.catch(() => undefined);
  }, ctx.options.runningAfterMs ?? 250);
  const finish = async (result: SyncResult) => {
    clearTimeout(runningTimer);
    status.result = result;
    status.endTime = new Date();
    await running;
    await statuses.put(statusKey(policy.name, destination), status);
    recordRepositorySync(status);
    log.info(
      {
        result: SyncResult[result],
        promoted: status.tagsPromoted,
        unchanged: status.tagsUnchanged,
        removed: status.tagsRemoved,
        bytes: status.bytesCopied,
        errors: status.errors,
      },
      'repository synced',
    );
    return status;
  };
  let upstreamTags: string[] = [];
  // The tags already in the catalogue are looked up upstream while the tag list comes: a
  // no-op sync is then one round trip deep.
  const heads = new Map<string, ReturnType<RegistryClient['headManifest']>>();
  // A policy that names its tags exactly needs no tag list: those tags are looked up too.
  const named = namedTags(policy);
  for (const tag of [...catalogued.filter((image) => image.policy === policy.name).map((image) => image.tag), ...(named ?? [])]) {
    if (!source || heads.has(tag)) continue;
    const head = source.headManifest(repository, tag);
    head.catch(() => undefined);
    heads.set(tag, head);
  }
  try {
    if (!source) throw sourceError;
    if (named) {
      const found = await Promise.all(named.map(async (tag) => ((await heads.get(tag)) ? tag : undefined)));
      upstreamTags = found.filter((tag): tag is string => tag !== undefined);
    }
    // None of them there: the tag list tells a repository gone (an error, nothing pruned)
    // from one without those tags.
    if (!named || upstreamTags.length === 0) upstreamTags = await source.listTags(repository);
  } catch (error) {
    status.errors.push(toSyncError('', error));
    return finish(SyncResult.FAILED);
  }
  const selected = selectTags(upstreamTags, policy);
  const known = new Map(catalogued.map((image) => [image.tag, image]));
  await Promise.all(
    selected.map(async (tag) => {
      try {
        const outcome = await syncTag(ctx, policy, source, repository, destination, tag, known.get(tag), heads.get(tag), signal);
        if (outcome.state === 'promoted') status.tagsPromoted++;
        else status.tagsUnchanged++;
        status.bytesCopied += outcome.bytes;
      } catch (error) {
        const syncError = toSyncError(tag, error);
        log.warn({ tag, reason: syncError.reason, err: error }, 'tag not promoted');
        status.errors.push(syncError);
      }
    }),
  );
  // Tags gone upstream (or no longer chosen by the policy).
  for (const [tag, image] of known) {
    if (selected.includes(tag) || image.policy !== policy.name) continue;
    if (policy.onUpstreamRemoval !== UpstreamRemoval.PRUNE) continue;
    try {
      await removeImage(ctx, image, [...known.values()]);
      status.tagsRemoved++;
    } catch (error) {
      status.errors.push(toSyncError(tag, error));
    }
  }
  status.errors.sort((a, b) => a.tag.localeCompare(b.tag));
  const good = status.tagsPromoted + status.tagsUnchanged + status.tagsRemoved;
  return finish(status.errors.length === 0 ? SyncResult.SUCCEEDED : good > 0 ? SyncResult.PARTIAL : SyncResult.FAILED);
}

function toSyncError(tag: string, error: unknown): SyncError {
  if (error instanceof SyncFailure || error instanceof RegistryError) return { tag, reason: error.reason, message: error.message };
  if ((error as Error)?.name === 'AbortError') return { tag, reason: 'CANCELLED', message: 'sync cancelled' };
  return { tag, reason: 'INTERNAL', message: (error as Error)?.message ?? String(error) };
}
