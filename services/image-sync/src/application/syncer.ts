// The sync of one policy: upstream tags chosen by the policy are checked (pins, signatures),
// copied into the site registry (blobs first, verified while they stream; child manifests by
// digest; the tag last) and recorded in the catalogue. What is already there is not copied
// again; a repository whose tags are all unchanged costs only HEAD requests and a tag list
// (no tag list when the policy names its tags exactly). This class holds what syncs share
// (the catalogue, the upstream clients, the blob copier); the steps are their own files:
// sync-repository.ts, sync-tag.ts, copy-blobs.ts, remove-image.ts.
import { appendTo, BucketMirror } from '@lapis/platform';
import { Image, type RepositorySyncStatus, type SyncPolicy } from '@lapis/proto/lapis/images/v1/images';
import type { RegistryClient } from '../adapters/registry/client';
import { destinationOf } from '../domain/policy';
import type { SyncFailure } from '../domain/sync-failure';
import { BlobCopier } from './copy-blobs';
import { removeImage } from './remove-image';
import type { SyncContext, SyncerOptions } from './sync-context';
import { syncRepository } from './sync-repository';
import { Upstreams } from './upstreams';

export type { SyncerOptions } from './sync-context';

export class Syncer {
  /** The catalogue, followed through a watch of its bucket: every instance's writes show. */
  private readonly mirror: BucketMirror<Image>;
  private mirrorStarted: Promise<void> | undefined;
  private readonly upstreams: Upstreams;
  private readonly ctx: SyncContext;

  constructor(options: SyncerOptions) {
    this.mirror = new BucketMirror(options.stores.catalogue, (bytes) => Image.decode(bytes));
    this.upstreams = new Upstreams(options.upstream);
    this.ctx = {
      options,
      catalogue: () => this.catalogue(),
      seenAtSite: new Map(),
      blobs: new BlobCopier({ site: options.site, log: options.log, concurrency: options.blobConcurrency, attempts: options.copyAttempts }),
    };
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
    this.upstreams.close();
  }

  /** Syncs the policy's repositories (or the given ones) at once; one status each. */
  async syncPolicy(
    policy: SyncPolicy,
    only: readonly string[] = [],
    signal?: AbortSignal,
    onDone?: (status: RepositorySyncStatus) => void,
  ): Promise<RepositorySyncStatus[]> {
    const repositories =
      only.length > 0
        ? policy.repositories.filter((r) => only.includes(r) || only.includes(destinationOf(policy, r)))
        : policy.repositories;
    let source: RegistryClient | undefined;
    let sourceError: SyncFailure | undefined;
    try {
      source = this.upstreams.clientFor(policy);
    } catch (error) {
      sourceError = error as SyncFailure;
    }
    const catalogue = await this.catalogue();
    const byRepository = new Map<string, Image[]>();
    for (const image of catalogue.values()) appendTo(byRepository, image.repository, image);
    return Promise.all(
      repositories.map(async (repository) => {
        const status = await syncRepository(
          this.ctx,
          policy,
          repository,
          source,
          sourceError,
          byRepository.get(destinationOf(policy, repository)) ?? [],
          signal,
        );
        onDone?.(status);
        return status;
      }),
    );
  }

  /** Removes a tag from the catalogue and, when no other catalogued tag shares its digest, the manifest from the site. */
  removeImage(image: Image, others: readonly Image[]): Promise<void> {
    return removeImage(this.ctx, image, others);
  }
}
