// The interval timer: every tick, the policies whose interval has passed since their last start
// (in this process, or as their statuses record) are synced, unless one is running already.
// Of several replicas, the one holding the scheduler's lease ticks.
import type { KeyLeases, Logger } from '@lapis/platform';
import type { Stores } from '../adapters/store';
import { intervalMs } from '../domain/policy';
import type { Policies } from './policies';
import { lastRun } from './sync-statuses';
import type { SyncRuns } from './sync-runs';

const SCHEDULER_LEASE = 'scheduler';

export class ScheduledSyncs {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly parts: { stores: Stores; policies: Policies; runs: SyncRuns; leases: KeyLeases; log: Logger },
    /** How often it looks for policies that are due. */
    private readonly tickMs: number,
  ) {}

  /** Starts syncs of policies whose interval has passed since their last start. */
  start(): void {
    const { policies, runs, log } = this.parts;
    const tick = async () => {
      if ((await this.parts.leases.take(SCHEDULER_LEASE)) === 'other') return;
      for (const policy of await policies.list()) {
        const every = intervalMs(policy);
        if (every <= 0 || runs.isRunning(policy.name)) continue;
        const last = runs.lastStart.get(policy.name) ?? (await lastRun(this.parts.stores, policy.name));
        if (Date.now() - last >= every) {
          log.info({ policy: policy.name }, 'scheduled sync');
          runs.lastStart.set(policy.name, Date.now());
          void runs
            .run(policy, [], undefined, undefined, true)
            .catch((error: unknown) => log.error({ err: error, policy: policy.name }, 'scheduled sync failed'));
        }
      }
    };
    const loop = () => {
      this.timer = setTimeout(
        () =>
          void tick()
            .catch((error: unknown) => log.warn({ err: error }, 'scheduler tick failed'))
            .finally(() => this.timer && loop()),
        this.tickMs,
      );
    };
    loop();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
