// image-sync's state in JetStream key-value buckets: the catalogue of trusted images, the
// policies, the latest sync status per repository, the SyncNow operations, and the leases that
// let replicas run each sync once.
import { type EventBus, type Bucket, jsonCodec, type Lease } from '@lapis/platform';
import { Operation } from '@lapis/proto/lapis/common/v1/common';
import { Image, RepositorySyncStatus, SyncPolicy } from '@lapis/proto/lapis/images/v1/images';

const b64 = (text: string) => Buffer.from(text).toString('base64url');
const unb64 = (text: string) => Buffer.from(text, 'base64url').toString();

/** Catalogue keys are `<repository>.<tag>` in base64url, so a repository's tags share a prefix. */
export const imageKey = (repository: string, tag: string) => `${b64(repository)}.${b64(tag)}`;
export const repositoryFilter = (repository: string) => `${b64(repository)}.>`;
export const statusKey = (policy: string, repository: string) => `${policy}.${b64(repository)}`;
export const decodeImageKey = (key: string) => {
  const [repository = '', tag = ''] = key.split('.').map(unb64);
  return { repository, tag };
};

export interface Stores {
  catalogue: Bucket<Image>;
  policies: Bucket<SyncPolicy>;
  statuses: Bucket<RepositorySyncStatus>;
  operations: Bucket<Operation>;
  /** Replicas' leases: one per policy being synced, one for the interval scheduler. */
  leases: Bucket<Lease>;
}

/** `prefix` keeps the buckets of one test apart from another's on a shared NATS. */
export async function openStores(bus: EventBus, prefix = ''): Promise<Stores> {
  const [catalogue, policies, statuses, operations, leases] = await Promise.all([
    bus.bucket(`${prefix}images-catalogue`, Image),
    bus.bucket(`${prefix}images-policies`, SyncPolicy),
    bus.bucket(`${prefix}images-sync-status`, RepositorySyncStatus),
    bus.bucket(`${prefix}images-operations`, Operation, { ttl: 7 * 24 * 3600_000 }),
    bus.bucket(`${prefix}images-leases`, jsonCodec<Lease>()),
  ]);
  return { catalogue, policies, statuses, operations, leases };
}
