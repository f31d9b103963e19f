// Progress while waiting: a spinner on stderr, only when stderr is a terminal (scripts and
// pipes get nothing, so stdout and stderr stay clean).
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
    process.stderr.write('\r\x1b[2K' + (last ? `${last}\n` : ''));
  }

  private draw(): void {
    const columns = process.stderr.columns || 80;
    const line = `${FRAMES[this.frame++ % FRAMES.length]} ${this.text}`.slice(0, columns - 1);
    process.stderr.write(`\r\x1b[2K${line}`);
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
