// What the sync use cases share: the Syncer's options (site registry, stores, bus), the
// catalogue it follows, what it saw at the site, and the blob copier. The Syncer (syncer.ts)
// builds it; syncing a repository, a tag and removing an image are functions of it.
import type { BucketMirror, EventBus, Logger } from '@lapis/platform';
import type { Image } from '@lapis/proto/lapis/images/v1/images';
import type { RegistryClient, RegistryClientOptions } from '../adapters/registry/client';
import type { Stores } from '../adapters/store';
import type { BlobCopier } from './copy-blobs';

export interface SyncerOptions {
  site: RegistryClient;
  stores: Stores;
  bus?: EventBus;
  log: Logger;
  /** Blob copies at once across the whole sync (default 8). */
  blobConcurrency?: number;
  /** Options for the upstream clients (tests count requests with onResponse, short backoffs). */
  upstream?: {
    onResponse?: RegistryClientOptions['onResponse'];
    attempts?: number;
    backoffMs?: number;
    chunkSize?: number;
    concurrency?: number;
  };
  /** How long a tag seen at the site is trusted to be there without a HEAD (default 1 h; 0 checks every sync). */
  siteCheckMs?: number;
  /** A repository's RUNNING status is recorded when its sync takes longer than this (default 250 ms). */
  runningAfterMs?: number;
  /** Attempts of one blob copy that broke off (network, 5xx) before the tag fails (default 3). */
  copyAttempts?: number;
}

export interface SyncContext {
  readonly options: SyncerOptions;
  /** The catalogue by key, followed through a watch of its bucket. */
  catalogue(): Promise<BucketMirror<Image>>;
  /** Catalogue key -> when the site was last seen holding that tag at its digest. */
  readonly seenAtSite: Map<string, number>;
  readonly blobs: BlobCopier;
}
