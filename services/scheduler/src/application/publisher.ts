// The events the leader sends once a decision is recorded: claimPlaced to the chosen node
// (event id <claim>.placed.<attempt>) and preemptionNotice to a victim's node. A placement
// recorded but not yet acknowledged as published (a publish failed, or the leader that
// recorded it died) is published again under the same event id, which the stream
// de-duplicates: each placement reaches its node once.
import { context, propagation, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import type { Logger } from '@lapis/platform';
import { ClaimState } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import type { AckedWriter } from '../adapters/acked';
import type { ClaimRecord } from '../domain/model';
import type { ClaimCache } from './claim-cache';
import type { InFlight } from './in-flight';
import { countPlacementFailure } from './metrics';

const tracer = trace.getTracer('@lapis/scheduler');

export class PlacementPublisher {
  /** Placements published since start. */
  published = 0;
  /** Placements recorded and not yet acknowledged as published. */
  private readonly unpublished = new Set<string>();
  private readonly publishing = new Set<string>();

  constructor(
    private readonly writer: AckedWriter,
    private readonly cache: ClaimCache,
    private readonly inFlight: InFlight,
    private readonly log: Logger,
  ) {}

  /** On becoming leader: every PLACED claim may have been recorded and never published. */
  adoptPlaced(): void {
    for (const { rec } of this.cache.entries.values()) if (rec.state === ClaimState.PLACED) this.unpublished.add(rec.id);
  }

  /** Publishes claimPlaced for a recorded placement; a failure leaves it for the next cycle. */
  async placement(c: ClaimRecord): Promise<void> {
    this.unpublished.add(c.id);
    if (this.publishing.has(c.id)) return;
    this.publishing.add(c.id);
    // The placement is part of the submitter's trace (a cycle has no context of its own).
    const parent = c.traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent: c.traceparent }) : ROOT_CONTEXT;
    const span = tracer.startSpan(
      'send lapis.scheduler.claim_placed',
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          'messaging.system': 'nats',
          'messaging.operation.type': 'send',
          'messaging.destination.template': 'lapis.scheduler.claim_placed',
        },
      },
      parent,
    );
    try {
      const ack = await context.with(trace.setSpan(parent, span), () =>
        this.writer.publish(
          {
            $case: 'claimPlaced',
            claimPlaced: {
              claimId: c.id,
              project: c.project,
              user: c.user,
              node: c.node,
              spec: c.spec,
              preemptible: c.preemptible,
              attempt: c.placements,
              requestId: c.requestId,
            },
          },
          c.node,
          `${c.id}.placed.${c.placements}`,
        ),
      );
      this.unpublished.delete(c.id);
      if (!ack.duplicate) this.published++;
    } catch (error) {
      countPlacementFailure('publish');
      this.log.warn({ err: error, claim: c.id }, 'placement not published yet; will retry');
    } finally {
      span.end();
      this.publishing.delete(c.id);
    }
  }

  /** Publishes again what was recorded and not acknowledged (same event id: no duplicates). */
  republish(): void {
    for (const id of [...this.unpublished]) {
      const c = this.cache.claim(id);
      if (!c || c.state !== ClaimState.PLACED) {
        this.unpublished.delete(id);
        continue;
      }
      if (this.publishing.has(id)) continue;
      this.inFlight.track(this.placement(c));
    }
  }

  /** Tells a victim's node to stop it within the grace period, for the claim that preempts it. */
  async preemptionNotice(victim: ClaimRecord, forClaimId: string, graceMs: number): Promise<void> {
    await this.writer.publish(
      {
        $case: 'preemptionNotice',
        preemptionNotice: {
          instanceId: victim.id,
          project: victim.project,
          node: victim.node,
          gracePeriod: { seconds: Math.floor(graceMs / 1000), nanos: (graceMs % 1000) * 1e6 },
          forClaimId,
        },
      },
      victim.node,
      `${victim.id}.preempt.${victim.placements}`,
    );
  }
}
