// Progress while waiting: a spinner on stderr, only when stderr is a terminal (scripts and
// pipes get nothing, so stdout and stderr stay clean); and the --wait options every command that
// can wait takes.
import { UsageError, type OptionDef } from './cli';

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export class Progress {
  private timer?: NodeJS.Timeout;
  private frame = 0;
  private text = '';
  private readonly tty = Boolean(process.stderr.isTTY);

  start(text: string): this {
    this.text = text;
    if (this.tty && !this.timer) {
      this.timer = setInterval(() => this.draw(), 100);
      this.timer.unref();
      this.draw();
    }
    return this;
  }

  update(text: string): void {
    this.text = text;
    if (this.tty) this.draw();
  }

  /** Clears the line; `last` stays on the terminal when given. */
  stop(last?: string): void {
    if (!this.tty) return;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    process.stderr.write(`\r\x1b[2K${last ? `${last}\n` : ''}`);
  }

  private draw(): void {
    const columns = process.stderr.columns || 80;
    const line = `${FRAMES[this.frame++ % FRAMES.length]} ${this.text}`.slice(0, columns - 1);
    process.stderr.write(`\r\x1b[2K${line}`);
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** --wait (what it waits for) and --wait-timeout. */
export const waitOptions = (description: string): OptionDef[] => [
  { long: 'wait', short: 'w', description },
  { long: 'wait-timeout', value: 'SECONDS', description: 'how long --wait waits', defaultText: '600' },
];

/**
 * Ends the process (exit 1, `error: <what>`) unless the returned function is called within `ms`:
 * a wait on a stream that never brings the awaited news would otherwise hold the process open.
 */
export function giveUpAfter(ms: number, progress: Progress, what: () => string): () => void {
  const timer = setTimeout(() => {
    progress.stop();
    process.stderr.write(`error: ${what()}\n`);
    process.exit(1);
  }, ms);
  return () => clearTimeout(timer);
}

/** --wait-timeout in milliseconds (600 s unless given). */
export function waitMs(options: Record<string, unknown>): number {
  const seconds = Number(options['wait-timeout'] ?? 600);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError('--wait-timeout must be a number of seconds');
  return seconds * 1000;
}
