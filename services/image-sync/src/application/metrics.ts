// image-sync's metrics: each repository sync's duration, result and bytes, its errors by
// reason (signature refusals counted on their own too), and the catalogue's size by policy
// (read from the catalogue mirror when Prometheus scrapes). Labels: the policy (named by the
// site's admin), the result and the error reason (a fixed vocabulary); never a tag or digest.
import { METER_NAME } from '@lapis/platform';
import { type Counter, type Histogram, metrics } from '@opentelemetry/api';
import { type Image, type RepositorySyncStatus, SyncResult } from '@lapis/proto/lapis/images/v1/images';

interface Instruments {
  duration: Histogram;
  syncs: Counter;
  bytes: Counter;
  failures: Counter;
  refusals: Counter;
}

let instruments: Instruments | undefined;

// Made on first use, after telemetry has started (`-r @lapis/platform/register`).
function images(): Instruments {
  if (instruments) return instruments;
  const meter = metrics.getMeter(METER_NAME);
  instruments = {
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
  };
  return instruments;
}

const RESULTS = ['SUCCEEDED', 'PARTIAL', 'FAILED'];

/** One repository sync, once its final status is known. */
export function recordRepositorySync(status: RepositorySyncStatus): void {
  const m = images();
  const policy = status.policy;
  const result = SyncResult[status.result] ?? String(status.result);
  const seconds = status.startTime && status.endTime ? (status.endTime.getTime() - status.startTime.getTime()) / 1000 : 0;
  m.duration.record(seconds, { policy, result });
  // Every result counted from 0, so that a policy's first failure is an increase Prometheus sees.
  for (const each of RESULTS) m.syncs.add(0, { policy, result: each });
  m.syncs.add(1, { policy, result });
  if (status.bytesCopied > 0) m.bytes.add(status.bytesCopied, { policy });
  for (const error of status.errors) {
    m.failures.add(1, { policy, reason: error.reason });
    if (error.reason.startsWith('SIGNATURE_')) m.refusals.add(1, { policy, reason: error.reason });
  }
}

/** Reports the catalogue's images by policy at each collection. */
export function observeCatalogue(catalogue: () => Promise<{ values(): Image[] }>): void {
  metrics
    .getMeter(METER_NAME)
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
