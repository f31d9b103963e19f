// Submitting and cancelling claims. Any instance takes them, leader or not: a submission is a
// create in <prefix>-claims (the leader's follower sees it and runs a cycle), a cancel a
// compare-and-set on the claim (its node, if it had one, is told to delete the instance).
import { createHash, randomUUID } from 'node:crypto';
import { context, propagation } from '@opentelemetry/api';
import { defaultInstanceName, RevisionConflict, type Bucket, type EventBus } from '@lapis/platform';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { ClaimState, PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { compactRes, compactSpec, noneOf } from '../domain/claim-memory';
import { isActive, isFinal, type ClaimRecord } from '../domain/model';
import type { ClaimCache } from './claim-cache';

/** What a submission gives; the scheduler adds the rest of the record. */
export type NewClaim = Pick<
  ClaimRecord,
  'project' | 'user' | 'spec' | 'res' | 'devices' | 'preemptible' | 'requeue' | 'partition' | 'backend' | 'group' | 'qos' | 'requestId'
>;

export class ClaimCommands {
  constructor(
    private readonly claims: Bucket<ClaimRecord>,
    private readonly cache: ClaimCache,
    private readonly bus: EventBus,
    private readonly now: () => number,
  ) {}

  /** Records a new claim; with a request id, the same (project, request id) gives the same claim. */
  async submit(input: NewClaim): Promise<ClaimRecord> {
    const id = input.requestId ? idFromRequest(input.project, input.requestId) : randomUUID();
    const existing = this.cache.get(id);
    if (existing) return existing.rec;
    // Every field in one literal (no spread): the record keeps its fields in the object
    // itself, and the parts most claims leave empty are shared (claim-memory.ts).
    const rec: ClaimRecord = {
      id,
      project: input.project,
      user: input.user,
      // Every instance has a hostname; a claim that names none gets one from its id.
      spec: compactSpec(input.spec.name ? input.spec : { ...input.spec, name: defaultInstanceName(id) }),
      res: compactRes(input.res),
      devices: input.devices.length > 0 ? input.devices : noneOf(),
      preemptible: input.preemptible,
      requeue: input.requeue,
      partition: input.partition,
      backend: input.backend,
      group: input.group,
      requestId: input.requestId,
      qos: input.qos,
      state: ClaimState.PENDING,
      reason: PendingReason.NEW,
      detail: 'not yet looked at by a scheduling cycle',
      node: '',
      instanceState: InstanceState.PENDING,
      submitTime: this.now(),
      placeTime: 0,
      endTime: 0,
      placements: 0,
      preemptedBy: '',
      reservedNode: '',
      victims: noneOf(),
      traceparent: currentTraceparent(),
    };
    try {
      const rev = await this.claims.create(id, rec);
      this.cache.take(id, rec, rev);
      return rec;
    } catch (error) {
      if (!(error instanceof RevisionConflict)) throw error;
      const stored = await this.claims.get(id);
      if (!stored) throw error;
      this.cache.take(id, stored.value, stored.revision);
      return stored.value;
    }
  }

  /** Ends a pending claim, or a placed one (its node is told to delete the instance). */
  async cancel(id: string): Promise<ClaimRecord | undefined> {
    let wasOn = '';
    const result = await this.claims.mutate(id, (c) => {
      if (!c || isFinal(c)) return undefined;
      wasOn = isActive(c) ? c.node : '';
      return { ...c, state: ClaimState.CANCELLED, endTime: this.now(), reservedNode: '', victims: [] };
    });
    if (!result) return undefined;
    this.cache.take(id, result.value, result.revision);
    if (wasOn) {
      await this.bus.publish(
        {
          $case: 'claimCancelled',
          claimCancelled: { claimId: id, project: result.value.project, node: wasOn, attempt: result.value.placements },
        },
        wasOn,
        `${id}.cancelled`,
      );
    }
    return result.value;
  }
}

/** The claim id of a (project, request id): a retry anywhere finds the same key. */
export function idFromRequest(project: string, requestId: string): string {
  const h = createHash('sha256').update(`${project}\n${requestId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The active trace context as a traceparent header value, if there is one. */
function currentTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}
