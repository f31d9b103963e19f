// Graceful shutdown: on SIGTERM (or SIGINT) the steps run in the order they were added —
// typically the gRPC server (NOT_SERVING, refuse new calls, finish in-flight ones), then
// NATS (stop consumers, drain), then telemetry (flush) — and the process exits 0. A step that
// hangs (a drain that never ends, work that ignores its signal) cannot keep the process past
// its deadline: it exits 1 then, naming the step, so an orchestrator never has to guess.
import type { Logger } from './logging';

export class Shutdown {
  private readonly steps: Array<{ name: string; run: () => Promise<void> }> = [];
  private running?: Promise<void>;
  private current?: string;

  constructor(private readonly log: Logger) {}

  /** Whether shutting down has begun (servers still serving through their delay ask this). */
  get started(): boolean {
    return this.running !== undefined;
  }

  add(name: string, run: () => Promise<void>): this {
    this.steps.push({ name, run });
    return this;
  }

  /** Runs every step once, even if an earlier one failed. */
  run(reason: string): Promise<void> {
    this.running ??= (async () => {
      this.log.info({ reason }, 'shutting down');
      for (const step of this.steps) {
        this.current = step.name;
        try {
          await step.run();
          this.log.info({ step: step.name }, 'stopped');
        } catch (error) {
          this.log.error({ step: step.name, err: error }, 'step failed during shutdown');
        }
      }
    })();
    return this.running;
  }

  /**
   * Exits 0 after a signal once every step ran; exits 1 if that takes longer than
   * `deadlineMs`, or at once on a second signal.
   */
  onSignals(exit: (code: number) => void = (code) => process.exit(code), deadlineMs = 30_000): void {
    let signals = 0;
    const handle = (signal: NodeJS.Signals) => {
      if (++signals > 1) {
        this.log.warn({ signal }, 'second signal: exiting now');
        exit(1);
      }
      const timer = setTimeout(() => {
        this.log.error({ step: this.current, deadlineMs }, 'shutdown passed its deadline: exiting now');
        exit(1);
      }, deadlineMs);
      timer.unref();
      void this.run(signal).then(() => {
        clearTimeout(timer);
        exit(0);
      });
    };
    process.on('SIGTERM', handle);
    process.on('SIGINT', handle);
  }
}
