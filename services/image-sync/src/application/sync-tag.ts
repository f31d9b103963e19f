// One tag of a policy's repository: HEAD upstream (a pin that moved is refused), unchanged
// when it matches the catalogue and the site; otherwise the manifest by digest, its signature
// checked when the policy has keys, blobs and child manifests copied (for an index, the
// platforms the policy keeps), the tag last, then the catalogue entry and imageSynced.
import type { Image, Platform, PlatformManifest, SyncPolicy } from '@lapis/proto/lapis/images/v1/images';
import type { RegistryClient } from '../adapters/registry/client';
import { isIndex, type FetchedManifest } from '../adapters/registry/manifest';
import { imageKey } from '../adapters/store';
import { platformMatches } from '../domain/policy';
import { SIGNATURE_ANNOTATION, SIMPLE_SIGNING, signatureTag, verifySignatures, type Verdict } from '../domain/signature';
import { SyncFailure } from '../domain/sync-failure';
import { settleAll } from './copy-blobs';
import type { SyncContext } from './sync-context';

export interface TagOutcome {
  state: 'promoted' | 'unchanged';
  bytes: number;
}

export async function syncTag(
  ctx: SyncContext,
  policy: SyncPolicy,
  source: RegistryClient,
  repository: string,
  destination: string,
  tag: string,
  existing: Image | undefined,
  prefetched: ReturnType<RegistryClient['headManifest']> | undefined,
  signal?: AbortSignal,
): Promise<TagOutcome> {
  const site = ctx.options.site;
  // A tag new to the catalogue is fetched at once (its digest is the hash of the bytes);
  // a known one is HEADed first, since it is most often unchanged.
  const fetched = existing || prefetched ? undefined : await source.getManifest(repository, tag);
  const head = fetched ?? (await (prefetched ?? source.headManifest(repository, tag)));
  if (!head) throw new SyncFailure('TAG_NOT_FOUND', `${repository}:${tag} disappeared upstream during the sync`);
  const sourceDigest = head.digest;
  const pin = policy.pins[tag];
  if (pin && pin !== sourceDigest) {
    throw new SyncFailure('PIN_MISMATCH', `upstream ${repository}:${tag} points at ${sourceDigest} but is pinned to ${pin}; not promoted`);
  }
  const key = imageKey(destination, tag);
  const sameAsCatalogued = existing?.sourceReference.endsWith(`@${sourceDigest}`) ?? false;
  // A policy that now requires signatures re-checks images promoted without one.
  if (existing && sameAsCatalogued && (!policy.signature?.required || existing.signature?.verified)) {
    // Unchanged upstream. The site is checked too (HEAD), unless this syncer saw the tag
    // there recently: then a no-op costs one HEAD upstream per tag.
    const seen = ctx.seenAtSite.get(key);
    if (seen !== undefined && Date.now() - seen < (ctx.options.siteCheckMs ?? 3_600_000)) return { state: 'unchanged', bytes: 0 };
    const there = await site.headManifest(destination, tag);
    if (there?.digest === existing.digest) {
      ctx.seenAtSite.set(key, Date.now());
      return { state: 'unchanged', bytes: 0 };
    }
  }
  signal?.throwIfAborted();
  const top = fetched ?? (await source.getManifest(repository, sourceDigest));
  if (!top) throw new SyncFailure('TAG_NOT_FOUND', `${repository}@${sourceDigest} disappeared upstream during the sync`);
  const verdict = await checkSignature(policy, source, repository, sourceDigest);
  if (policy.signature?.required && !verdict.verified) {
    if (existing && sameAsCatalogued) {
      // The catalogued image itself fails the policy now: it is no longer trusted.
      await ctx.options.stores.catalogue.delete(key);
      (await ctx.catalogue()).forget(key);
      throw new SyncFailure(verdict.reason, `${repository}:${tag} (${sourceDigest}): ${verdict.message}; removed from the catalogue`);
    }
    throw new SyncFailure(verdict.reason, `${repository}:${tag} (${sourceDigest}): ${verdict.message}; not promoted`);
  }

  let bytes = 0;
  let size = 0;
  const platforms: Platform[] = [];
  const manifests: PlatformManifest[] = [];
  let pushed: { mediaType: string; bytes: Buffer } = { mediaType: top.mediaType, bytes: top.bytes };
  if (isIndex(top.mediaType)) {
    const all = top.manifest.manifests ?? [];
    const kept = all.filter((d) =>
      platformMatches(
        d.platform && { os: d.platform.os, architecture: d.platform.architecture, variant: d.platform.variant ?? '' },
        policy.platforms,
      ),
    );
    if (kept.length === 0) throw new SyncFailure('NO_MATCHING_PLATFORM', `${repository}:${tag} has none of the policy's platforms`);
    await settleAll(
      kept.map(async (descriptor) => {
        const child = await source.getManifest(repository, descriptor.digest);
        if (!child)
          throw new SyncFailure('MANIFEST_MISSING', `${repository}@${descriptor.digest} (in the index of ${tag}) is missing upstream`);
        const copied = await ctx.blobs.copyImage(source, repository, destination, child, signal);
        bytes += copied.bytes;
        size += copied.size;
        const platform = {
          os: descriptor.platform?.os ?? '',
          architecture: descriptor.platform?.architecture ?? '',
          variant: descriptor.platform?.variant ?? '',
        };
        platforms.push(platform);
        manifests.push({ platform, digest: child.digest, sizeBytes: copied.size });
        await site.putManifest(destination, child.digest, child.mediaType, child.bytes);
      }),
    );
    if (kept.length !== all.length) {
      // Filtered by platform: a new index (a new digest; the upstream one stays in source_reference).
      pushed = { mediaType: top.mediaType, bytes: Buffer.from(JSON.stringify({ ...top.manifest, manifests: kept }, null, 2)) };
    }
  } else {
    const copied = await ctx.blobs.copyImage(source, repository, destination, top, signal);
    bytes += copied.bytes;
    size = copied.size;
    if (copied.platform) platforms.push(copied.platform);
  }
  signal?.throwIfAborted();
  // Everything the manifest refers to is at the site and verified: now the tag.
  const digest = await site.putManifest(destination, tag, pushed.mediaType, pushed.bytes);
  if (verdict.verified && verdict.artifact && digest === sourceDigest) {
    // The signature goes along (same digest, so it still applies), for checks at the site.
    await ctx.blobs.copyImage(source, repository, destination, verdict.artifact, signal);
    await site.putManifest(destination, signatureTag(digest), verdict.artifact.mediaType, verdict.artifact.bytes);
  }
  const image: Image = {
    repository: destination,
    tag,
    digest,
    mediaType: pushed.mediaType,
    sizeBytes: size,
    platforms: platforms.sort((a, b) => `${a.os}/${a.architecture}/${a.variant}`.localeCompare(`${b.os}/${b.architecture}/${b.variant}`)),
    signature: verdict.verified
      ? { verified: true, keyId: verdict.keyId, verifyTime: new Date() }
      : { verified: false, keyId: '', verifyTime: undefined },
    policy: policy.name,
    sourceReference: `${source.host}/${repository}@${sourceDigest}`,
    syncTime: new Date(),
    prepull: policy.prepull,
    pullReference: `${site.host}/${destination}@${digest}`,
    manifests: manifests.sort((a, b) => a.digest.localeCompare(b.digest)),
  };
  (await ctx.catalogue()).note(key, image, await ctx.options.stores.catalogue.put(key, image));
  ctx.seenAtSite.set(key, Date.now());
  await ctx.options.bus?.publish(
    {
      $case: 'imageSynced',
      imageSynced: {
        repository: destination,
        tag,
        digest,
        pullReference: image.pullReference,
        prepull: policy.prepull,
        policy: policy.name,
      },
    },
    destination,
    `synced.${destination}.${tag}.${digest}`,
  );
  return { state: 'promoted', bytes };
}

async function checkSignature(
  policy: SyncPolicy,
  source: RegistryClient,
  repository: string,
  digest: string,
): Promise<(Verdict | { verified: false; reason: string; message: string }) & { artifact?: FetchedManifest }> {
  const keys = policy.signature?.keys ?? [];
  if (keys.length === 0) return { verified: false, reason: 'SIGNATURE_MISSING', message: 'no keys in the policy' };
  const signatures = await source.getManifest(repository, signatureTag(digest));
  if (!signatures) return verifySignatures([], digest, repository, keys);
  const payloads = await Promise.all(
    (signatures.manifest.layers ?? [])
      .filter((layer) => layer.mediaType === SIMPLE_SIGNING && layer.annotations?.[SIGNATURE_ANNOTATION])
      .map(async (layer) => ({
        payload: await source.getBlobBytes(repository, layer.digest, layer.size),
        signature: layer.annotations![SIGNATURE_ANNOTATION]!,
      })),
  );
  return { ...verifySignatures(payloads, digest, repository, keys), artifact: signatures };
}
