// A tag out of the catalogue (pruned, or its policy deleted with its images): the site
// manifest goes too unless another catalogued tag shares it; imageRemoved is published.
import type { Image } from '@lapis/proto/lapis/images/v1/images';
import { imageKey } from '../adapters/store';
import type { SyncContext } from './sync-context';

/** Removes a tag from the catalogue and, when no other catalogued tag shares its digest, the manifest from the site. */
export async function removeImage(ctx: SyncContext, image: Image, others: readonly Image[]): Promise<void> {
  const shared = others.some((o) => o.tag !== image.tag && o.repository === image.repository && o.digest === image.digest);
  if (!shared) await ctx.options.site.deleteManifest(image.repository, image.digest);
  await ctx.options.stores.catalogue.delete(imageKey(image.repository, image.tag));
  (await ctx.catalogue()).forget(imageKey(image.repository, image.tag));
  ctx.seenAtSite.delete(imageKey(image.repository, image.tag));
  await ctx.options.bus?.publish(
    { $case: 'imageRemoved', imageRemoved: { repository: image.repository, tag: image.tag, digest: image.digest, policy: image.policy } },
    image.repository,
    `removed.${image.repository}.${image.tag}.${image.digest}.${Date.now()}`,
  );
}
