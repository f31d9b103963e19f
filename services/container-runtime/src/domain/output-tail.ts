// The last bytes of a command's output: what a caller needs to see why it failed, within a
// bound however much the command writes.
export const OUTPUT_TAIL_BYTES = 64 * 1024;

export class OutputTail {
  private chunks: Buffer[] = [];
  private held = 0;
  /** More was written than the tail keeps. */
  truncated = false;

  constructor(private readonly limit = OUTPUT_TAIL_BYTES) {}

  push(data: Buffer): void {
    this.chunks.push(data);
    this.held += data.length;
    while (this.held > this.limit && this.chunks.length) {
      const first = this.chunks[0]!;
      const excess = this.held - this.limit;
      this.truncated = true;
      if (first.length <= excess) {
        this.chunks.shift();
        this.held -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.held -= excess;
      }
    }
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}
