// The sync of one policy: upstream tags chosen by the policy are checked (pins, signatures),
// copied into the site registry (blobs first, verified while they stream; child manifests by
// digest; the tag last) and recorded in the catalogue. What is already there is not copied
// again; a repository whose tags are all unchanged costs only HEAD requests and a tag list
// (no tag list when the policy names its tags exactly).
import { readFileSync } from 'node:fs';
import { appendTo, BucketMirror, type EventBus, type Logger } from '@lapis/platform';
import { SyncResult, UpstreamRemoval, type Platform, type PlatformManifest, type RepositorySyncStatus, type SyncError, type SyncPolicy, Image } from '@lapis/proto/lapis/images/v1/images';
import { isIndex, RegistryClient, type RegistryClientOptions, RegistryError, registryCause, Semaphore, type Credentials, type Descriptor, type FetchedManifest } from './adapters/registry/client';
import { imageKey, statusKey, type Stores } from './adapters/store';
import { destinationOf, namedTags, platformMatches, selectTags } from './domain/policy';
import { SIGNATURE_ANNOTATION, SIMPLE_SIGNING, signatureTag, verifySignatures, type Verdict } from './domain/signature';

/** A tag that cannot be promoted, with the reason reported in the sync status. */
export class SyncFailure extends Error {
  override name = 'SyncFailure';
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export interface SyncerOptions {
  site: RegistryClient;
  stores: Stores;
  bus?: EventBus;
  log: Logger;
  /** Blob copies at once across the whole sync (default 8). */
  blobConcurrency?: number;
  /** Options for the upstream clients (tests count requests with onResponse, short backoffs). */
  upstream?: { onResponse?: RegistryClientOptions['onResponse']; attempts?: number; backoffMs?: number; chunkSize?: number; concurrency?: number };
  /** How long a tag seen at the site is trusted to be there without a HEAD (default 1 h; 0 checks every sync). */
  siteCheckMs?: number;
  /** A repository's RUNNING status is recorded when its sync takes longer than this (default 250 ms). */
  runningAfterMs?: number;
  /** Attempts of one blob copy that broke off (network, 5xx) before the tag fails (default 3). */
  copyAttempts?: number;
}

/** Reads a policy's credentials from the secret it names: "file:/path" or "env:NAME". */
export function readCredentials(secret: string): Credentials | undefined {
  if (!secret) return undefined;
  let text: string | undefined;
  if (secret.startsWith('file:')) {
    try {
      text = readFileSync(secret.slice(5), 'utf8');
    } catch (error) {
      throw new SyncFailure('CREDENTIALS_UNAVAILABLE', `cannot read secret ${secret}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  } else if (secret.startsWith('env:')) {
    text = process.env[secret.slice(4)];
    if (text === undefined) throw new SyncFailure('CREDENTIALS_UNAVAILABLE', `secret ${secret}: variable not set`);
  } else {
    throw new SyncFailure('CREDENTIALS_UNAVAILABLE', `secret ${secret} is neither file: nor env:`);
  }
  text = text.trim();
  const colon = text.indexOf(':');
  return colon > 0 ? { username: text.slice(0, colon), password: text.slice(colon + 1) } : { token: text };
}

interface TagOutcome {
  state: 'promoted' | 'unchanged';
  bytes: number;
}

export class Syncer {
  private readonly blobs: Semaphore;
  /** Digest -> a site repository known to hold it (mount source). */
  private readonly siteHas = new Map<string, string>();
  /** Digest -> copy in progress (to some repository), so a shared layer moves once. */
  private readonly inFlight = new Map<string, Promise<unknown>>();

  /** The catalogue, followed through a watch of its bucket: every instance's writes show. */
  private readonly mirror: BucketMirror<Image>;
  private mirrorStarted: Promise<void> | undefined;
  /** Catalogue key -> when the site was last seen holding that tag at its digest. */
  private readonly seenAtSite = new Map<string, number>();
  private readonly upstreams = new Map<string, RegistryClient>();

  constructor(private readonly options: SyncerOptions) {
    this.blobs = new Semaphore(options.blobConcurrency ?? 8);
    this.mirror = new BucketMirror(options.stores.catalogue, (bytes) => Image.decode(bytes));
  }

  /** The catalogue by key. */
  async catalogue(): Promise<BucketMirror<Image>> {
    this.mirrorStarted ??= this.mirror.start().catch((error: unknown) => {
      this.mirrorStarted = undefined;
      throw error;
    });
    await this.mirrorStarted;
    return this.mirror;
  }

  /** Stops following the catalogue and closes the upstream clients' connections. */
  stop(): void {
    this.mirror.stop();
    for (const client of this.upstreams.values()) void client.close().catch(() => undefined);
    this.upstreams.clear();
  }

  /** A client per upstream and credentials, kept: it remembers the auth scheme and tokens. */
  upstreamClient(policy: SyncPolicy): RegistryClient {
    const credentials = readCredentials(policy.source?.credentialsSecret ?? '');
    const key = JSON.stringify([policy.source?.url, credentials]);
    let client = this.upstreams.get(key);
    if (!client) {
      client = new RegistryClient({ url: policy.source?.url ?? '', ...(credentials ? { credentials } : {}), ...this.options.upstream });
      this.upstreams.set(key, client);
    }
    return client;
  }

  /** Syncs the policy's repositories (or the given ones) at once; one status each. */
  async syncPolicy(policy: SyncPolicy, only: readonly string[] = [], signal?: AbortSignal, onDone?: (status: RepositorySyncStatus) => void): Promise<RepositorySyncStatus[]> {
    const repositories = only.length > 0 ? policy.repositories.filter((r) => only.includes(r) || only.includes(destinationOf(policy, r))) : policy.repositories;
    let source: RegistryClient | undefined;
    let sourceError: SyncFailure | undefined;
    try {
      source = this.upstreamClient(policy);
    } catch (error) {
      sourceError = error as SyncFailure;
    }
    const catalogue = await this.catalogue();
    const byRepository = new Map<string, Image[]>();
    for (const image of catalogue.values()) appendTo(byRepository, image.repository, image);
    return Promise.all(
      repositories.map(async (repository) => {
        const status = await this.syncRepository(policy, repository, source, sourceError, byRepository.get(destinationOf(policy, repository)) ?? [], signal);
        onDone?.(status);
        return status;
      }),
    );
  }

  private async syncRepository(
    policy: SyncPolicy,
    repository: string,
    source: RegistryClient | undefined,
    sourceError: SyncFailure | undefined,
    catalogued: Image[],
    signal?: AbortSignal,
  ): Promise<RepositorySyncStatus> {
    const destination = destinationOf(policy, repository);
    const log = this.options.log.child({ policy: policy.name, repository });
    const status: RepositorySyncStatus = {
      policy: policy.name, repository: destination, result: SyncResult.RUNNING, startTime: new Date(), endTime: undefined,
      tagsPromoted: 0, tagsUnchanged: 0, tagsRemoved: 0, bytesCopied: 0, errors: [],
    };
    const { statuses } = this.options.stores;
    // Recorded as RUNNING while the work goes on, once it takes longer than a moment (a no-op
    // is over before: it writes only its final status); the final status is written after it.
    let running: Promise<unknown> | undefined;
    const runningTimer = setTimeout(() => {
      running = statuses.put(statusKey(policy.name, destination), { ...status });
      running.catch(() => undefined);
    }, this.options.runningAfterMs ?? 250);
    const finish = async (result: SyncResult) => {
      clearTimeout(runningTimer);
      status.result = result;
      status.endTime = new Date();
      await running;
      await statuses.put(statusKey(policy.name, destination), status);
      log.info({ result: SyncResult[result], promoted: status.tagsPromoted, unchanged: status.tagsUnchanged, removed: status.tagsRemoved, bytes: status.bytesCopied, errors: status.errors }, 'repository synced');
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
          const outcome = await this.syncTag(policy, source, repository, destination, tag, known.get(tag), heads.get(tag), signal);
          if (outcome.state === 'promoted') status.tagsPromoted++;
          else status.tagsUnchanged++;
          status.bytesCopied += outcome.bytes;
        } catch (error) {
          const syncError = toSyncError(tag, error);
          log.warn(syncError, 'tag not promoted');
          status.errors.push(syncError);
        }
      }),
    );
    // Tags gone upstream (or no longer chosen by the policy).
    for (const [tag, image] of known) {
      if (selected.includes(tag) || image.policy !== policy.name) continue;
      if (policy.onUpstreamRemoval !== UpstreamRemoval.PRUNE) continue;
      try {
        await this.removeImage(image, [...known.values()]);
        status.tagsRemoved++;
      } catch (error) {
        status.errors.push(toSyncError(tag, error));
      }
    }
    status.errors.sort((a, b) => a.tag.localeCompare(b.tag));
    const good = status.tagsPromoted + status.tagsUnchanged + status.tagsRemoved;
    return finish(status.errors.length === 0 ? SyncResult.SUCCEEDED : good > 0 ? SyncResult.PARTIAL : SyncResult.FAILED);
  }

  /** Removes a tag from the catalogue and, when no other catalogued tag shares its digest, the manifest from the site. */
  async removeImage(image: Image, others: readonly Image[]): Promise<void> {
    const shared = others.some((o) => o.tag !== image.tag && o.repository === image.repository && o.digest === image.digest);
    if (!shared) await this.options.site.deleteManifest(image.repository, image.digest);
    await this.options.stores.catalogue.delete(imageKey(image.repository, image.tag));
    (await this.catalogue()).forget(imageKey(image.repository, image.tag));
    this.seenAtSite.delete(imageKey(image.repository, image.tag));
    await this.options.bus?.publish(
      { $case: 'imageRemoved', imageRemoved: { repository: image.repository, tag: image.tag, digest: image.digest, policy: image.policy } },
      image.repository,
      `removed.${image.repository}.${image.tag}.${image.digest}.${Date.now()}`,
    );
  }

  private async syncTag(
    policy: SyncPolicy,
    source: RegistryClient,
    repository: string,
    destination: string,
    tag: string,
    existing: Image | undefined,
    prefetched: ReturnType<RegistryClient['headManifest']> | undefined,
    signal?: AbortSignal,
  ): Promise<TagOutcome> {
    const site = this.options.site;
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
      const seen = this.seenAtSite.get(key);
      if (seen !== undefined && Date.now() - seen < (this.options.siteCheckMs ?? 3_600_000)) return { state: 'unchanged', bytes: 0 };
      const there = await site.headManifest(destination, tag);
      if (there?.digest === existing.digest) {
        this.seenAtSite.set(key, Date.now());
        return { state: 'unchanged', bytes: 0 };
      }
    }
    signal?.throwIfAborted();
    const top = fetched ?? (await source.getManifest(repository, sourceDigest));
    if (!top) throw new SyncFailure('TAG_NOT_FOUND', `${repository}@${sourceDigest} disappeared upstream during the sync`);
    const verdict = await this.checkSignature(policy, source, repository, sourceDigest);
    if (policy.signature?.required && !verdict.verified) {
      if (existing && sameAsCatalogued) {
        // The catalogued image itself fails the policy now: it is no longer trusted.
        await this.options.stores.catalogue.delete(key);
        (await this.catalogue()).forget(key);
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
      const kept = all.filter((d) => platformMatches(d.platform && { os: d.platform.os, architecture: d.platform.architecture, variant: d.platform.variant ?? '' }, policy.platforms));
      if (kept.length === 0) throw new SyncFailure('NO_MATCHING_PLATFORM', `${repository}:${tag} has none of the policy's platforms`);
      await settleAll(
        kept.map(async (descriptor) => {
          const child = await source.getManifest(repository, descriptor.digest);
          if (!child) throw new SyncFailure('MANIFEST_MISSING', `${repository}@${descriptor.digest} (in the index of ${tag}) is missing upstream`);
          const copied = await this.copyImage(source, repository, destination, child, signal);
          bytes += copied.bytes;
          size += copied.size;
          const platform = { os: descriptor.platform?.os ?? '', architecture: descriptor.platform?.architecture ?? '', variant: descriptor.platform?.variant ?? '' };
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
      const copied = await this.copyImage(source, repository, destination, top, signal);
      bytes += copied.bytes;
      size = copied.size;
      if (copied.platform) platforms.push(copied.platform);
    }
    signal?.throwIfAborted();
    // Everything the manifest refers to is at the site and verified: now the tag.
    const digest = await site.putManifest(destination, tag, pushed.mediaType, pushed.bytes);
    if (verdict.verified && verdict.artifact && digest === sourceDigest) {
      // The signature goes along (same digest, so it still applies), for checks at the site.
      await this.copyImage(source, repository, destination, verdict.artifact, signal);
      await site.putManifest(destination, signatureTag(digest), verdict.artifact.mediaType, verdict.artifact.bytes);
    }
    const image: Image = {
      repository: destination, tag, digest, mediaType: pushed.mediaType, sizeBytes: size,
      platforms: platforms.sort((a, b) => `${a.os}/${a.architecture}/${a.variant}`.localeCompare(`${b.os}/${b.architecture}/${b.variant}`)),
      signature: verdict.verified ? { verified: true, keyId: verdict.keyId, verifyTime: new Date() } : { verified: false, keyId: '', verifyTime: undefined },
      policy: policy.name, sourceReference: `${source.host}/${repository}@${sourceDigest}`, syncTime: new Date(), prepull: policy.prepull,
      pullReference: `${site.host}/${destination}@${digest}`,
      manifests: manifests.sort((a, b) => a.digest.localeCompare(b.digest)),
    };
    (await this.catalogue()).note(key, image, await this.options.stores.catalogue.put(key, image));
    this.seenAtSite.set(key, Date.now());
    await this.options.bus?.publish(
      { $case: 'imageSynced', imageSynced: { repository: destination, tag, digest, pullReference: image.pullReference, prepull: policy.prepull, policy: policy.name } },
      destination,
      `synced.${destination}.${tag}.${digest}`,
    );
    return { state: 'promoted', bytes };
  }

  private async checkSignature(
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
        .map(async (layer) => ({ payload: await source.getBlobBytes(repository, layer.digest, layer.size), signature: layer.annotations![SIGNATURE_ANNOTATION]! })),
    );
    return { ...verifySignatures(payloads, digest, repository, keys), artifact: signatures };
  }

  /** Copies the config and layers of one image manifest; the manifest itself is the caller's. */
  private async copyImage(source: RegistryClient, repository: string, destination: string, image: FetchedManifest, signal?: AbortSignal): Promise<{ bytes: number; size: number; platform?: Platform }> {
    if (isIndex(image.mediaType)) throw new SyncFailure('UNSUPPORTED_MANIFEST', `${repository}@${image.digest}: an index inside an index`);
    const config = image.manifest.config;
    if (!config || !image.manifest.layers) throw new SyncFailure('UNSUPPORTED_MANIFEST', `${repository}@${image.digest} (${image.mediaType}) has no config or layers`);
    const blobs = [config, ...image.manifest.layers];
    const copied = await settleAll(blobs.map((blob) => this.copyBlob(source, repository, destination, blob, signal)));
    return { bytes: copied.reduce((a, b) => a + b, 0), size: blobs.reduce((a, b) => a + b.size, 0) };
  }

  /** Bytes moved: 0 when the site had the blob or mounted it from another repository. */
  private async copyBlob(source: RegistryClient, repository: string, destination: string, blob: Descriptor, signal?: AbortSignal): Promise<number> {
    // One transfer per digest at a time: a layer shared by images in flight moves once, then mounts.
    for (let pending = this.inFlight.get(blob.digest); pending; pending = this.inFlight.get(blob.digest)) await pending.catch(() => undefined);
    // Known at the site: mounts go at once, side by side.
    if (this.siteHas.has(blob.digest)) return this.transfer(source, repository, destination, blob, signal);
    const transfer = this.transfer(source, repository, destination, blob, signal);
    this.inFlight.set(blob.digest, transfer);
    try {
      return await transfer;
    } finally {
      if (this.inFlight.get(blob.digest) === transfer) this.inFlight.delete(blob.digest);
    }
  }

  private async transfer(source: RegistryClient, repository: string, destination: string, blob: Descriptor, signal?: AbortSignal): Promise<number> {
    const site = this.options.site;
    const holder = this.siteHas.get(blob.digest);
    if (holder === destination) return 0;
    // One request: mounted from a repository known to hold it (or found in this one: a
    // resumed sync), or an upload opened for it.
    const started = await site.startUpload(destination, { digest: blob.digest, from: holder ?? destination });
    if (started.mounted) {
      this.siteHas.set(blob.digest, destination);
      return 0;
    }
    let upload: string | undefined = started.location;
    return this.blobs.run(async () => {
      const attempts = this.options.copyAttempts ?? 3;
      for (let attempt = 1; ; attempt++) {
        signal?.throwIfAborted();
        try {
          const location = upload;
          upload = undefined; // an upload that failed is cancelled; a retry opens its own
          const body = await source.getBlob(repository, blob.digest, blob.size).catch(async (error: unknown) => {
            if (location) await site.cancelUpload(destination, location);
            throw error;
          });
          await site.pushBlob(destination, blob.digest, blob.size, body, location);
          this.siteHas.set(blob.digest, destination);
          return blob.size;
        } catch (caught) {
          const error = registryCause(caught) ?? caught;
          const final = error instanceof RegistryError && error.reason !== 'UNAVAILABLE';
          if (final || attempt >= attempts || signal?.aborted) throw error;
          this.options.log.warn({ digest: blob.digest, attempt, err: (error as Error).message }, 'blob copy broke off, retrying');
          await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt));
        }
      }
    });
  }
}

/** Like Promise.all, but waits for every promise before failing: no work left running behind. */
async function settleAll<T>(promises: Array<Promise<T>>): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

function toSyncError(tag: string, error: unknown): SyncError {
  if (error instanceof SyncFailure || error instanceof RegistryError) return { tag, reason: error.reason, message: error.message };
  if ((error as Error)?.name === 'AbortError') return { tag, reason: 'CANCELLED', message: 'sync cancelled' };
  return { tag, reason: 'INTERNAL', message: (error as Error)?.message ?? String(error) };
}
