// The writes and publishes the leader has sent and not yet seen acknowledged. A cycle does not
// wait for its writes; it waits, before it starts, until there is room for a cycle's worth, so
// the number in flight stays bounded (maxInFlight).
import type { Logger } from '@lapis/platform';

export class InFlight {
  private readonly pending = new Set<Promise<void>>();
  private roomWaiter?: () => void;

  constructor(private readonly log: Logger) {}

  get size(): number {
    return this.pending.size;
  }

  /** Counts `p` until it settles; a failure is logged (the next cycle decides again). */
  track(p: Promise<void>): void {
    const tracked: Promise<void> = p
      .catch((error) => this.log.error({ err: error }, 'recording a decision failed'))
      .finally(() => {
        this.pending.delete(tracked);
        const wake = this.roomWaiter;
        this.roomWaiter = undefined;
        wake?.();
      });
    this.pending.add(tracked);
  }

  /** Resolves once at most `limit` writes are in flight. */
  async room(limit: number): Promise<void> {
    while (this.pending.size > limit) await new Promise<void>((resolve) => (this.roomWaiter = resolve));
  }

  /** Resolves when every write and publish in flight is done. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}
