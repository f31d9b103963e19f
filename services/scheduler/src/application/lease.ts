// The leader lease: one record in <prefix>-leader, taken and renewed by compare-and-set every
// lease/3. Only the holder consumes the runtime's events and runs cycles; a standby takes the
// lease over once the holder stopped renewing it for a whole lease.
import { RevisionConflict, type Bucket, type Lease, type Logger } from '@lapis/platform';

const LEADER_KEY = 'leader';

export interface LeaseOptions {
  bucket: Bucket<Lease>;
  /** Names this instance in the lease. */
  instanceId: string;
  leaseMs: number;
  log: Logger;
  now: () => number;
  /** Taking the lease: begin leading (consume events, run cycles). */
  gained: () => Promise<void>;
  /** The lease was lost (a renewal failed): stop leading, without giving it back. */
  lost: () => Promise<void>;
}

export class LeaderLease {
  /** True from taking the lease until losing it or resigning. */
  held = false;
  /** Set once this instance stops for good: it competes no more. */
  stopped = false;
  private rev = 0;
  private until = 0;
  private timer?: NodeJS.Timeout;

  constructor(private readonly o: LeaseOptions) {}

  /** Tries for the lease now, then renews or tries again every lease/3. */
  async compete(): Promise<void> {
    await this.tick();
    this.timer ??= setInterval(() => void this.tick(), Math.max(100, Math.floor(this.o.leaseMs / 3)));
  }

  /** Competes no more (the lease, if held, runs out or is given back). */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** Held, with a margin: a leader about to lose its lease records nothing more. */
  holds(): boolean {
    return this.held && this.o.now() < this.until - 200;
  }

  /** Stops counting as leader; false when it did not. */
  drop(): boolean {
    if (!this.held) return false;
    this.held = false;
    return true;
  }

  /** Deletes the lease record (at the revision this instance wrote), so a standby need not wait. */
  async giveBack(): Promise<void> {
    await this.o.bucket.delete(LEADER_KEY, this.rev).catch(() => undefined);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const now = this.o.now();
    const lease: Lease = { holder: this.o.instanceId, expires: now + this.o.leaseMs };
    try {
      if (this.held) {
        this.rev = await this.o.bucket.update(LEADER_KEY, lease, this.rev);
        this.until = lease.expires;
        return;
      }
      const current = await this.o.bucket.get(LEADER_KEY);
      if (current && current.value.holder !== this.o.instanceId && current.value.expires > now) return;
      this.rev = current ? await this.o.bucket.update(LEADER_KEY, lease, current.revision) : await this.o.bucket.create(LEADER_KEY, lease);
      this.until = lease.expires;
      this.held = true;
      await this.o.gained();
    } catch (error) {
      if (this.held) {
        this.o.log.warn({ err: error }, 'lost the leader lease');
        await this.o.lost();
      } else if (!(error instanceof RevisionConflict)) {
        this.o.log.warn({ err: error }, 'could not take the leader lease');
      }
    }
  }
}
