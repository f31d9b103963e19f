// The latest sync status of each repository (GetSyncStatus), and when a policy last ran.
import type { RepositorySyncStatus } from '@lapis/proto/lapis/images/v1/images';
import type { Stores } from '../adapters/store';

/** The statuses of one policy's repositories, or of every policy's (empty name). */
export async function syncStatuses(stores: Stores, policy: string): Promise<RepositorySyncStatus[]> {
  const entries = await stores.statuses.list(policy ? `${policy}.>` : '>');
  return entries.map((e) => e.value).sort((a, b) => `${a.policy}/${a.repository}`.localeCompare(`${b.policy}/${b.repository}`));
}

/** When the policy's last recorded sync started (the earliest of its repositories'); 0 if never. */
export async function lastRun(stores: Stores, policy: string): Promise<number> {
  const times = (await syncStatuses(stores, policy)).map((s) => s.startTime?.getTime() ?? 0);
  return times.length ? Math.min(...times) : 0;
}
