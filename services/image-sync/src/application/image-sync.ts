// image-sync's use cases, what the gRPC handlers and the wiring use: the catalogue reads,
// policies, sync statuses, SyncNow operations and the interval scheduler, composed over the
// Syncer (syncer.ts). Each use case is its own file; this class builds them and starts and
// stops what runs in the background.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { KeyLeases, type Logger } from '@lapis/platform';
import type { Operation } from '@lapis/proto/lapis/common/v1/common';
import type { Image, Platform, RepositorySyncStatus, SyncPolicy } from '@lapis/proto/lapis/images/v1/images';
import type { Stores } from '../adapters/store';
import { CatalogueReads, type Resolved } from './catalogue-reads';
import { deletePolicy } from './delete-policy';
import { Policies } from './policies';
import { ScheduledSyncs } from './scheduled-syncs';
import { SyncOperations } from './sync-operations';
import { SyncRuns } from './sync-runs';
import { syncStatuses } from './sync-statuses';
import type { Syncer } from './syncer';

export interface ImageSyncOptions {
  stores: Stores;
  syncer: Syncer;
  log: Logger;
  /** host:port of the site registry (ResolveImage trusts no other). */
  siteHost: string;
  /** How often the scheduler looks for policies that are due (default 1 s). */
  tickMs?: number;
  /** How long a crashed replica's syncs and scheduler wait before another replica takes them (default 3 s). */
  leaseMs?: number;
}

export class ImageSync {
  private readonly policies: Policies;
  private readonly runs: SyncRuns;
  private readonly operations: SyncOperations;
  private readonly schedule: ScheduledSyncs;
  private readonly catalogue: CatalogueReads;
  private readonly leases: KeyLeases;

  constructor(private readonly options: ImageSyncOptions) {
    const { stores, syncer, log } = options;
    this.policies = new Policies(stores, log);
    this.leases = new KeyLeases({
      bucket: stores.leases,
      holder: `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
      leaseMs: options.leaseMs ?? 3_000,
      log,
    });
    this.runs = new SyncRuns(syncer, this.leases);
    const parts = { stores, policies: this.policies, runs: this.runs, leases: this.leases, log };
    this.operations = new SyncOperations(parts);
    this.schedule = new ScheduledSyncs(parts, options.tickMs ?? 1_000);
    this.catalogue = new CatalogueReads(syncer, this.policies, options.siteHost);
  }

  // ---- the catalogue ----
  listImages(repositoryPrefix: string, policy: string): Promise<Image[]> {
    return this.catalogue.list(repositoryPrefix, policy);
  }
  getImage(repository: string, tag: string): Promise<Image> {
    return this.catalogue.get(repository, tag);
  }
  resolveImage(reference: string, platform: Platform | undefined): Promise<Resolved> {
    return this.catalogue.resolve(reference, platform);
  }

  // ---- policies ----
  loadPolicies(policies: SyncPolicy[], file: string): Promise<SyncPolicy[]> {
    return this.policies.load(policies, file);
  }
  createPolicy(policy: SyncPolicy): Promise<SyncPolicy> {
    return this.policies.create(policy);
  }
  updatePolicy(policy: SyncPolicy): Promise<SyncPolicy> {
    return this.policies.update(policy);
  }
  getPolicy(name: string): Promise<SyncPolicy> {
    return this.policies.get(name);
  }
  listPolicies(): Promise<SyncPolicy[]> {
    return this.policies.list();
  }
  deletePolicy(name: string, pruneImages: boolean): Promise<void> {
    return deletePolicy(
      { stores: this.options.stores, policies: this.policies, runs: this.runs, syncer: this.options.syncer },
      name,
      pruneImages,
    );
  }

  // ---- syncs ----
  statuses(policy: string): Promise<RepositorySyncStatus[]> {
    return syncStatuses(this.options.stores, policy);
  }
  startOperation(policy: string, repositories: readonly string[], requestId: string): Promise<Operation> {
    return this.operations.start(policy, repositories, requestId);
  }
  getOperation(name: string): Promise<Operation> {
    return this.operations.get(name);
  }
  cancelOperation(name: string): Promise<Operation> {
    return this.operations.cancel(name);
  }
  listOperations(): Promise<Operation[]> {
    return this.operations.list();
  }

  /** Starts the interval scheduler (it ticks on the replica holding its lease). */
  startScheduler(): void {
    this.schedule.start();
  }

  /** Stops scheduling, cancels running syncs and waits for them; hands the scheduler's lease over. */
  async stop(): Promise<void> {
    this.schedule.stop();
    await this.runs.stop();
    await this.leases.stop();
  }
}
