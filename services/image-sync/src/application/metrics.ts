// image-sync's metrics: each repository sync's duration, result and bytes, its errors by
// reason (signature refusals counted on their own too), the repositories whose last sync
// failed, and the catalogue's size by policy (read from the catalogue mirror when Prometheus
// scrapes). Labels: the policy (named by the site's admin), the result and the error reason
// (a fixed vocabulary); never a tag or digest.
import { instrumentsOnFirstUse, platformMeter } from '@lapis/platform';
import type { Counter, Histogram } from '@opentelemetry/api';
import { type Image, type RepositorySyncStatus, SyncResult } from '@lapis/proto/lapis/images/v1/images';

interface Instruments {
  duration: Histogram;
  syncs: Counter;
  bytes: Counter;
  failures: Counter;
  refusals: Counter;
}

const images = instrumentsOnFirstUse(
  (meter): Instruments => ({
    duration: meter.createHistogram('lapis.images.sync.duration', {
      unit: 's',
      description: 'time of one repository sync, by policy and result',
    }),
    syncs: meter.createCounter('lapis.images.syncs', {
      unit: '{sync}',
      description: 'repository syncs, by policy and result (SUCCEEDED, PARTIAL, FAILED)',
    }),
    bytes: meter.createCounter('lapis.images.sync.bytes', { unit: 'By', description: 'bytes copied into the site registry, by policy' }),
    failures: meter.createCounter('lapis.images.sync.failures', {
      unit: '{error}',
      description: 'tags (or whole repositories) a sync could not bring over, by policy and reason',
    }),
    refusals: meter.createCounter('lapis.images.signature.refusals', {
      unit: '{image}',
      description: 'images not promoted (or removed) because their signature was missing or did not verify, by policy and reason',
    }),
  }),
);

/** The last result of each repository of each policy: policy -> repository -> failed. */
const lastFailed = new Map<string, Map<string, boolean>>();

function noteResult(status: RepositorySyncStatus): void {
  if (status.result === SyncResult.RUNNING) return;
  const repositories = lastFailed.get(status.policy) ?? new Map<string, boolean>();
  lastFailed.set(status.policy, repositories);
  repositories.set(status.repository, status.result === SyncResult.FAILED || status.result === SyncResult.PARTIAL);
}

/** One repository sync, once its final status is known. */
export function recordRepositorySync(status: RepositorySyncStatus): void {
  const m = images();
  const policy = status.policy;
  const result = SyncResult[status.result] ?? String(status.result);
  const seconds = status.startTime && status.endTime ? (status.endTime.getTime() - status.startTime.getTime()) / 1000 : 0;
  m.duration.record(seconds, { policy, result });
  m.syncs.add(1, { policy, result });
  noteResult(status);
  if (status.bytesCopied > 0) m.bytes.add(status.bytesCopied, { policy });
  for (const error of status.errors) {
    m.failures.add(1, { policy, reason: error.reason });
    if (error.reason.startsWith('SIGNATURE_')) m.refusals.add(1, { policy, reason: error.reason });
  }
}

/** A deleted policy's repositories are no longer reported. */
export function forgetPolicy(policy: string): void {
  lastFailed.delete(policy);
}

/**
 * Reports how many repositories of each policy failed their last sync (FAILED or PARTIAL), at
 * each collection: the alert's figure, a state that clears when a later sync succeeds. Seeded
 * from the recorded statuses, so a restarted image-sync still reports a failing repository.
 */
export function observeSyncResults(recorded: () => Promise<RepositorySyncStatus[]>): void {
  void recorded().then(
    (statuses) => {
      for (const status of statuses) if (!lastFailed.get(status.policy)?.has(status.repository)) noteResult(status);
    },
    () => undefined,
  );
  platformMeter()
    .createObservableGauge('lapis.images.repositories.failing', {
      unit: '{repository}',
      description: 'repositories of each policy whose last sync failed (FAILED or PARTIAL)',
    })
    .addCallback((result) => {
      for (const [policy, repositories] of lastFailed) {
        let failing = 0;
        for (const failed of repositories.values()) if (failed) failing++;
        result.observe(failing, { policy });
      }
    });
}

/** Reports the catalogue's images by policy at each collection. */
export function observeCatalogue(catalogue: () => Promise<{ values(): Image[] }>): void {
  platformMeter()
    .createObservableGauge('lapis.images.catalogue.size', {
      unit: '{image}',
      description: 'images (tags) in the trusted catalogue, by policy',
    })
    .addCallback(async (result) => {
      const counts = new Map<string, number>();
      for (const image of (await catalogue()).values()) counts.set(image.policy, (counts.get(image.policy) ?? 0) + 1);
      for (const [policy, n] of counts) result.observe(n, { policy });
    });
}
