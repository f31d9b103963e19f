// Graceful shutdown: on SIGTERM (or SIGINT) the steps run in the order they were added —
// typically the gRPC server (NOT_SERVING, refuse new calls, finish in-flight ones), then
// NATS (stop consumers, drain), then telemetry (flush) — and the process exits 0.
import type { Logger } from './logging';

export class Shutdown {
  private readonly steps: Array<{ name: string; run: () => Promise<void> }> = [];
  private running?: Promise<void>;

  constructor(private readonly log: Logger) {}

  add(name: string, run: () => Promise<void>): this {
    this.steps.push({ name, run });
    return this;
  }

  /** Runs every step once, even if an earlier one failed. */
  run(reason: string): Promise<void> {
    this.running ??= (async () => {
      this.log.info({ reason }, 'shutting down');
      for (const step of this.steps) {
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

  /** Exits 0 after a signal once every step ran; a second signal exits at once. */
  onSignals(exit: (code: number) => void = (code) => process.exit(code)): void {
    let signals = 0;
    const handle = (signal: NodeJS.Signals) => {
      if (++signals > 1) {
        this.log.warn({ signal }, 'second signal: exiting now');
        exit(1);
      }
      void this.run(signal).then(() => exit(0));
    };
    process.on('SIGTERM', handle);
    process.on('SIGINT', handle);
  }
}
