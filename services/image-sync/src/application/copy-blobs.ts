// An image's config and layers into the site registry: one POST per blob that mounts it (from
// a site repository known to hold it, or from the destination itself after an interrupted
// sync), otherwise a stream from upstream through its digest check. A blob shared by images
// in flight moves once, then mounts; broken transfers are retried.
import { type Logger, withRetries } from '@lapis/platform';
import type { Platform } from '@lapis/proto/lapis/images/v1/images';
import type { RegistryClient } from '../adapters/registry/client';
import { RegistryError, registryCause } from '../adapters/registry/errors';
import { isIndex, type Descriptor, type FetchedManifest } from '../adapters/registry/manifest';
import { Semaphore } from '../adapters/registry/semaphore';
import { SyncFailure } from '../domain/sync-failure';

export interface BlobCopierOptions {
  site: RegistryClient;
  log: Logger;
  /** Blob copies at once across the whole sync (default 8). */
  concurrency?: number;
  /** Attempts of one blob copy that broke off (network, 5xx) before the tag fails (default 3). */
  attempts?: number;
}

export class BlobCopier {
  private readonly blobs: Semaphore;
  /** Digest -> a site repository known to hold it (mount source). */
  private readonly siteHas = new Map<string, string>();
  /** Digest -> copy in progress (to some repository), so a shared layer moves once. */
  private readonly inFlight = new Map<string, Promise<unknown>>();

  constructor(private readonly options: BlobCopierOptions) {
    this.blobs = new Semaphore(options.concurrency ?? 8);
  }

  /** Copies the config and layers of one image manifest; the manifest itself is the caller's. */
  async copyImage(
    source: RegistryClient,
    repository: string,
    destination: string,
    image: FetchedManifest,
    signal?: AbortSignal,
  ): Promise<{ bytes: number; size: number; platform?: Platform }> {
    if (isIndex(image.mediaType)) throw new SyncFailure('UNSUPPORTED_MANIFEST', `${repository}@${image.digest}: an index inside an index`);
    const config = image.manifest.config;
    if (!config || !image.manifest.layers)
      throw new SyncFailure('UNSUPPORTED_MANIFEST', `${repository}@${image.digest} (${image.mediaType}) has no config or layers`);
    const blobs = [config, ...image.manifest.layers];
    const copied = await settleAll(blobs.map((blob) => this.copyBlob(source, repository, destination, blob, signal)));
    return { bytes: copied.reduce((a, b) => a + b, 0), size: blobs.reduce((a, b) => a + b.size, 0) };
  }

  /** Bytes moved: 0 when the site had the blob or mounted it from another repository. */
  private async copyBlob(
    source: RegistryClient,
    repository: string,
    destination: string,
    blob: Descriptor,
    signal?: AbortSignal,
  ): Promise<number> {
    // One transfer per digest at a time: a layer shared by images in flight moves once, then mounts.
    for (let pending = this.inFlight.get(blob.digest); pending; pending = this.inFlight.get(blob.digest))
      await pending.catch(() => undefined);
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

  private async transfer(
    source: RegistryClient,
    repository: string,
    destination: string,
    blob: Descriptor,
    signal?: AbortSignal,
  ): Promise<number> {
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
    const copyOnce = async () => {
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
        throw registryCause(caught) ?? caught;
      }
    };
    return this.blobs.run(() =>
      withRetries(copyOnce, {
        attempts: this.options.attempts ?? 3,
        retryIf: (error) => !(error instanceof RegistryError && error.reason !== 'UNAVAILABLE'),
        delayMs: (failed) => 250 * 2 ** failed,
        onRetry: (error, attempt) => this.options.log.warn({ digest: blob.digest, attempt, err: error }, 'blob copy broke off, retrying'),
        signal,
      }),
    );
  }
}

/** Like Promise.all, but waits for every promise before failing: no work left running behind. */
export async function settleAll<T>(promises: Array<Promise<T>>): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}
