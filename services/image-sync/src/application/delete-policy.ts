// DeletePolicy: its running sync aborted, its images pruned from the site when asked (else
// they stay in the catalogue), its statuses and the policy itself removed.
import type { Stores } from '../adapters/store';
import { statusKey } from '../adapters/store';
import { destinationOf } from '../domain/policy';
import { forgetPolicy } from './metrics';
import type { Policies } from './policies';
import type { SyncRuns } from './sync-runs';
import type { Syncer } from './syncer';

export async function deletePolicy(
  parts: { stores: Stores; policies: Policies; runs: SyncRuns; syncer: Syncer },
  name: string,
  pruneImages: boolean,
): Promise<void> {
  const { stores, syncer } = parts;
  const policy = await parts.policies.get(name);
  await parts.runs.abort(name);
  const images = [...(await syncer.catalogue()).values()].filter((i) => i.policy === name);
  if (pruneImages) {
    for (const image of images) await syncer.removeImage(image, images);
  }
  for (const repository of policy.repositories)
    await stores.statuses.delete(statusKey(name, destinationOf(policy, repository))).catch(() => undefined);
  forgetPolicy(name);
  await stores.policies.delete(name);
}
