// Work the agent starts without a caller waiting for it (engine events, heartbeats): failures
// are logged, and stopping the agent waits until what is under way has settled.
import type { Logger } from '@lapis/platform';

export class Background {
  private readonly running = new Set<Promise<unknown>>();

  constructor(private readonly log: Logger) {}

  track(promise: Promise<unknown>): void {
    const p = promise.catch((error) => this.log.error({ err: error }, 'background work failed'));
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  async settled(): Promise<void> {
    await Promise.all([...this.running].map((p) => p.catch(() => undefined)));
  }
}
