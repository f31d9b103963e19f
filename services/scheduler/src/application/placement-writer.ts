// Records a cycle's decisions in <prefix>-claims, then publishes the ones recorded. Each
// decision is a compare-and-set from the revision the cycle saw, so a claim is placed once
// even when two instances briefly both believe they lead. The writes are pipelined: the cache
// shows a decision at once (so the next cycle counts its room) while its write is in flight;
// a write that loses its compare-and-set puts back what the bucket holds, and the next cycle
// decides again.
import { RevisionConflict, type Bucket } from '@lapis/platform';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { ClaimState, PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import type { AckedWriter } from '../adapters/acked';
import { claimCodec } from '../adapters/store';
import type { CycleResult } from '../domain/cycle';
import type { ClaimRecord } from '../domain/model';
import type { ClaimCache, Entry } from './claim-cache';
import type { InFlight } from './in-flight';
import { countPlacement, countPreemption } from './metrics';
import type { PlacementPublisher } from './publisher';

export interface PlacementWriterOptions {
  writer: AckedWriter;
  claims: Bucket<ClaimRecord>;
  cache: ClaimCache;
  inFlight: InFlight;
  publisher: PlacementPublisher;
  /** Whether this instance still holds the leader lease (with its margin). */
  holdsLease: () => boolean;
  /** Most writes in flight; past it, recording waits for room. */
  maxInFlight: number;
  preemptGraceMs: number;
  /** Wait for a cycle's writes before returning (tests of fail-over timing). */
  awaitWrites: boolean;
  /** Test hook: after a decision was recorded, before it is published. */
  recorded: () => Promise<void> | void;
  /** Called with the time from a placement's decision to its event's acknowledgement (ms). */
  placementDone: (ms: number) => void;
}

export class PlacementWriter {
  constructor(private readonly o: PlacementWriterOptions) {}

  /**
   * Records each decision by compare-and-set, then publishes the ones recorded. Sends the
   * writes without waiting for them; at most maxInFlight wait at a time.
   */
  async apply(result: CycleResult, now: number): Promise<void> {
    if (!this.o.holdsLease()) return;
    const { cache, inFlight, publisher } = this.o;
    const decidedAt = performance.now();
    for (const { claim, node } of result.placements) {
      const entry = cache.get(claim.id);
      if (!entry) continue;
      const next: ClaimRecord = {
        ...entry.rec,
        state: ClaimState.PLACED,
        node,
        placeTime: now,
        placements: entry.rec.placements + 1,
        reason: PendingReason.UNSPECIFIED,
        detail: '',
        instanceState: InstanceState.SCHEDULED,
        reservedNode: '',
        victims: [],
      };
      inFlight.track(
        this.record(entry, next, async () => {
          await publisher.placement(next);
          countPlacement(next.project);
          this.o.placementDone(performance.now() - decidedAt);
        }),
      );
      if (inFlight.size >= this.o.maxInFlight) await inFlight.room(this.o.maxInFlight - 1);
    }
    const grace = this.o.preemptGraceMs;
    for (const p of result.preemptions) {
      const entry = cache.get(p.claim.id);
      // A claim already holding its reservation only has victims told again.
      if (entry && entry.rec.reservedNode !== p.node) {
        inFlight.track(this.record(entry, { ...entry.rec, reservedNode: p.node, victims: p.victims, reason: PendingReason.PREEMPTION }));
      }
      for (const v of p.victims) {
        const ve = cache.get(v);
        if (!ve) continue;
        const victim = { ...ve.rec, preemptedBy: p.claim.id };
        inFlight.track(
          this.record(ve, victim, async () => {
            await publisher.preemptionNotice(victim, p.claim.id, grace);
            countPreemption(victim.project);
          }),
        );
      }
    }
    if (this.o.awaitWrites) await inFlight.settled();
  }

  /** Compare-and-set from the entry's revision; then `after` (a publish) if it held. */
  private async record(entry: Entry, next: ClaimRecord, after?: () => Promise<void>): Promise<void> {
    const { cache } = this.o;
    cache.set(next.id, { rec: next, rev: entry.rev });
    const bytes = claimCodec.encode(next).finish();
    cache.sending(next, bytes);
    let rev: number;
    try {
      rev = await this.o.writer.update(this.o.claims.name, next.id, bytes, entry.rev);
    } catch (error) {
      cache.answered(next);
      // Someone else changed it (a cancel, another leader), or the write failed: take what
      // the bucket holds; the next cycle decides again.
      const stored = await this.o.claims.get(next.id).catch(() => undefined);
      if (stored) cache.set(next.id, { rec: stored.value, rev: stored.revision });
      else if (cache.get(next.id)?.rev === entry.rev) cache.set(next.id, entry);
      if (!(error instanceof RevisionConflict)) throw error;
      return;
    }
    cache.answered(next);
    const current = cache.get(next.id);
    if (!current || current.rev < rev) cache.set(next.id, { rec: next, rev });
    await this.o.recorded();
    await after?.();
  }
}
