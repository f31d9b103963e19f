// Leases on pieces of work shared by replicas of a service (a deployment, a sync): one record
// per key in a key-value bucket, {holder, expires}, taken and renewed by compare-and-set. The
// replica that holds a key's lease is the only one that works on it; one that stops renewing
// (it crashed, or lost NATS) loses it once it expires, and another takes it over.
import type { Logger } from '../logging';
import { RevisionConflict, type Bucket } from './kv';

export interface Lease {
  holder: string;
  /** Epoch ms; a lease past it is free to take. */
  expires: number;
}

export interface KeyLeasesOptions {
  bucket: Bucket<Lease>;
  /** Names this replica in the leases it holds. */
  holder: string;
  leaseMs: number;
  log: Logger;
}

/** held: this replica had it already; taken: it was free (never held, expired, or handed over); other: another replica holds it. */
export type TakeResult = 'held' | 'taken' | 'other';

export class KeyLeases {
  private readonly held = new Map<string, { revision: number; expires: number }>();
  private timer?: NodeJS.Timeout;

  constructor(private readonly o: KeyLeasesOptions) {}

  /** Holds the key's lease, with a margin for the time a renewal takes. */
  holds(key: string): boolean {
    const lease = this.held.get(key);
    return !!lease && Date.now() < lease.expires - Math.min(500, this.o.leaseMs / 6);
  }

  /** Takes the key's lease if it is free; conflicts with another taker count as 'other'. */
  async take(key: string): Promise<TakeResult> {
    if (this.holds(key)) return 'held';
    const now = Date.now();
    const lease: Lease = { holder: this.o.holder, expires: now + this.o.leaseMs };
    try {
      const current = await this.o.bucket.get(key);
      if (current && current.value.holder !== this.o.holder && current.value.expires > now) return 'other';
      const revision = current ? await this.o.bucket.update(key, lease, current.revision) : await this.o.bucket.create(key, lease);
      this.held.set(key, { revision, expires: lease.expires });
      // Held leases are renewed every lease/3, while there are any.
      this.timer ??= setInterval(() => void this.renewAll(), Math.max(100, Math.floor(this.o.leaseMs / 3)));
      return 'taken';
    } catch (error) {
      if (error instanceof RevisionConflict) return 'other';
      throw error;
    }
  }

  /** Gives the lease up for good (the work is done): the record goes. */
  async release(key: string): Promise<void> {
    const lease = this.held.get(key);
    if (!lease) return;
    this.held.delete(key);
    try {
      await this.o.bucket.delete(key, lease.revision);
    } catch (error) {
      if (!(error instanceof RevisionConflict)) throw error;
      // A renewal landed meanwhile: delete what it wrote, unless another replica's lease is there.
      const current = await this.o.bucket.get(key);
      if (current?.value.holder === this.o.holder) await this.o.bucket.delete(key, current.revision).catch(() => undefined);
    }
  }

  /**
   * Renews no more and hands every held lease over: each is written as already expired, so
   * another replica takes the work over at once instead of after a whole lease.
   */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    const held = [...this.held];
    this.held.clear();
    await Promise.all(
      held.map(([key, { revision }]) => this.o.bucket.update(key, { holder: this.o.holder, expires: 0 }, revision).catch(() => undefined)),
    );
  }

  private async renewAll(): Promise<void> {
    if (this.held.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    await Promise.all(
      [...this.held].map(async ([key, lease]) => {
        const expires = Date.now() + this.o.leaseMs;
        try {
          lease.revision = await this.o.bucket.update(key, { holder: this.o.holder, expires }, lease.revision);
          lease.expires = expires;
        } catch (error) {
          if (this.held.get(key) !== lease) return; // released meanwhile
          // Left to run out unless a later renewal lands; once it has, the key is lost (holds()
          // says so, and the work on it stops).
          if (error instanceof RevisionConflict || Date.now() >= lease.expires) {
            this.held.delete(key);
            this.o.log.warn({ err: error, key }, 'lost a work lease');
          }
        }
      }),
    );
  }
}
