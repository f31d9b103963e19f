// One sync at a time per policy, across replicas: a sync asked for while one runs (here, or on
// another replica: it holds the policy's lease) waits for it and runs after it. Each run can be
// aborted (a cancelled operation, a deleted policy, shutdown).
import type { KeyLeases } from '@lapis/platform';
import type { RepositorySyncStatus, SyncPolicy } from '@lapis/proto/lapis/images/v1/images';
import type { Syncer } from './syncer';

const policyLease = (policy: string) => `policy.${policy}`;
/** How often a sync waiting for another replica's looks again. */
const WAIT_FOR_OTHER_MS = 250;

export class SyncRuns {
  private readonly running = new Map<string, Promise<RepositorySyncStatus[]>>();
  private readonly controllers = new Map<string, AbortController>();
  /** Policy -> when its latest run started (in this process). */
  readonly lastStart = new Map<string, number>();

  constructor(
    private readonly syncer: Syncer,
    private readonly leases: KeyLeases,
  ) {}

  isRunning(policy: string): boolean {
    return this.running.has(policy);
  }

  /**
   * Syncs one policy now, or waits for the sync already running (one at a time per policy).
   * `unlessRunningElsewhere`: a scheduled sync, skipped (answering []) when another replica's runs.
   */
  run(
    policy: SyncPolicy,
    repositories: readonly string[] = [],
    onDone?: (status: RepositorySyncStatus) => void,
    cancel?: AbortSignal,
    unlessRunningElsewhere = false,
  ): Promise<RepositorySyncStatus[]> {
    const previous = this.running.get(policy.name) ?? Promise.resolve([]);
    const next = previous
      .catch(() => [])
      .then(async () => {
        const controller = new AbortController();
        if (cancel?.aborted) controller.abort();
        cancel?.addEventListener('abort', () => controller.abort(), { once: true });
        this.controllers.set(policy.name, controller);
        const key = policyLease(policy.name);
        while ((await this.leases.take(key)) === 'other') {
          if (unlessRunningElsewhere || controller.signal.aborted) return [];
          await new Promise((resolve) => setTimeout(resolve, WAIT_FOR_OTHER_MS));
        }
        try {
          this.lastStart.set(policy.name, Date.now());
          return await this.syncer.syncPolicy(policy, repositories, controller.signal, onDone);
        } finally {
          await this.leases.release(key).catch(() => undefined); // else it runs out
        }
      });
    this.running.set(policy.name, next);
    void next
      .finally(() => {
        if (this.running.get(policy.name) === next) this.running.delete(policy.name);
      })
      .catch(() => undefined);
    return next;
  }

  /** Aborts the policy's running sync and waits until it is over. */
  async abort(policy: string): Promise<void> {
    this.controllers.get(policy)?.abort();
    await this.running.get(policy)?.catch(() => undefined);
  }

  /** Aborts every running sync and waits for them. */
  async stop(): Promise<void> {
    for (const controller of this.controllers.values()) controller.abort();
    await Promise.all([...this.running.values()].map((p) => p.catch(() => undefined)));
  }
}
