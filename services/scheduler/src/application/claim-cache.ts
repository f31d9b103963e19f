// The claims in memory, following the <prefix>-claims bucket: every instance keeps them, so
// any instance answers reads. Beside each record, what the cycle needs without summing every
// claim: the sums active claims hold (ClusterSums), the pending queue in priority order
// (PendingQueue) and the pending reasons of the last cycle. All three change in one place,
// `set`, one claim change at a time.
import type { Bucket } from '@lapis/platform';
import type { Decision } from '../domain/cycle';
import { isPending, type ClaimRecord } from '../domain/model';
import type { Breakdown, Weights } from '../domain/priority';
import { PendingQueue } from '../domain/queue';
import { ClusterSums } from '../domain/state';
import { claimCodec, follow } from '../adapters/store';

/** A claim as the bucket holds it: the record and its revision (for compare-and-set). */
export interface Entry {
  rec: ClaimRecord;
  rev: number;
}

export class ClaimCache {
  readonly entries = new Map<string, Entry>();
  /** What the active claims hold, kept up to date on every claim change. */
  readonly sums = new ClusterSums();
  readonly queue: PendingQueue;
  /** Why each pending claim the last cycles looked at still waits (the leader's memory). */
  readonly reasons = new Map<string, Decision>();
  /** Called when a pending claim arrives or changes: a cycle may place it. */
  onPending?: () => void;
  /** Bytes of each claim write in flight, so its echo from the bucket costs no decoding. */
  private readonly sent = new Map<string, { bytes: Uint8Array; rec: ClaimRecord }>();

  constructor(weights: Weights, defaultPartition: string) {
    this.queue = new PendingQueue(weights, defaultPartition);
  }

  /** Follows the claims bucket; resolves once the current claims are in. */
  follow(bucket: Bucket<ClaimRecord>): Promise<{ stop(): void }> {
    return follow(bucket, claimCodec, (key, value, rev, bytes) => {
      const known = this.entries.get(key);
      if (known && known.rev >= rev) return;
      // Our own write coming back: the record is the one sent.
      const mine = this.sent.get(key);
      if (mine && bytes && sameBytes(mine.bytes, bytes)) return this.set(key, { rec: mine.rec, rev });
      this.take(key, value?.(), rev);
    });
  }

  get(id: string): Entry | undefined {
    return this.entries.get(id);
  }

  claim(id: string): ClaimRecord | undefined {
    return this.entries.get(id)?.rec;
  }

  /** A record read from the bucket (or just written to it), unless the cache has a newer one. */
  take(key: string, value: ClaimRecord | undefined, rev: number): void {
    const known = this.entries.get(key);
    if (known && known.rev >= rev) return;
    this.set(key, value && { rec: value, rev });
    if (value && isPending(value)) this.onPending?.();
  }

  /** The one place the cache of claims changes: the sums and the queue follow it. */
  set(id: string, entry: Entry | undefined): void {
    const before = this.entries.get(id);
    if (entry) this.entries.set(id, entry);
    else this.entries.delete(id);
    this.sums.change(before?.rec, entry?.rec);
    const pending = entry !== undefined && isPending(entry.rec);
    this.queue.change(id, entry?.rec, pending);
    if (!pending && before && isPending(before.rec)) this.reasons.delete(id);
  }

  /** Remembers the bytes of a write in flight, to know its echo. */
  sending(rec: ClaimRecord, bytes: Uint8Array): void {
    this.sent.set(rec.id, { bytes, rec });
  }

  /** The write of `rec` was answered: its echo is no longer expected to be ours. */
  answered(rec: ClaimRecord): void {
    if (this.sent.get(rec.id)?.rec === rec) this.sent.delete(rec.id);
  }

  /** A claim with its live pending reason and priority. */
  view(rec: ClaimRecord): ClaimRecord & { priority: number } {
    const reason = isPending(rec) ? this.reasons.get(rec.id) : undefined;
    return {
      ...rec,
      reason: reason?.reason ?? rec.reason,
      detail: reason?.detail ?? rec.detail,
      priority: this.breakdown(rec.id)?.priority ?? 0,
    };
  }

  /** The priority breakdown of a claim, as of the last recalculation. */
  breakdown(id: string): Breakdown | undefined {
    const rec = this.entries.get(id)?.rec;
    return rec && this.queue.breakdown(rec);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}
