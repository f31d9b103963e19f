// One loop at a time per deployment: a kick while its loop runs runs it once more after, so no
// change is missed and no two loops step the same deployment.
import type { Logger } from '@lapis/platform';

export class DeploymentLoops {
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private stopping = false;

  constructor(
    private readonly loop: (id: string) => Promise<void>,
    private readonly log: Logger,
  ) {}

  get stopped(): boolean {
    return this.stopping;
  }

  kick(id: string): void {
    if (this.stopping) return;
    if (this.running.has(id)) {
      this.again.add(id);
      return;
    }
    const run = this.loop(id)
      .catch((error) => this.log.error({ err: error, deployment: id }, 'deployment step failed'))
      .finally(() => {
        this.running.delete(id);
        if (this.again.delete(id)) this.kick(id);
      });
    this.running.set(id, run);
  }

  /** Waits until nothing is running for the deployment (tests, shutdown). */
  async idle(id: string): Promise<void> {
    while (this.running.has(id)) await this.running.get(id);
  }

  /** No loop starts any more; waits for those running. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.running.values()]);
  }
}
