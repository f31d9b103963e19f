// The scheduler's decisions for this node, from its durable consumers: a placement creates
// the instance (create-instance.ts, as a direct CreateInstance would), a cancellation deletes
// it, a preemption notice stops it within its grace period and records PREEMPTED. A placement
// that cannot run is recorded ERROR, so the scheduler frees its room. Placements and
// cancellations come on consumers of their own, so a claim's cancellation may be handled
// before its placement: it leaves a mark (in runtime-requests, 24 h) with the attempt it ends,
// which a placement of that attempt or an earlier one finds, before it creates anything and
// again after. (A lost node's fence ends only its own attempt: a later one may come back.)
import { Code, LapisError, RetryLater, runtimeConsumers, type RunningConsumer } from '@lapis/platform';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Event } from '@lapis/proto/lapis/events/v1/events';
import { adminScope } from '../domain/door';
import { type CreateInstanceInput, newInstance } from '../domain/instance';
import { TERMINAL } from '../domain/states';
import type { CreateInstance } from './create-instance';
import type { InstanceRecords } from './instance-records';
import type { Instances } from './instances';
import type { AgentContext } from './settings';

/** Placements, cancellations and preemptions handled at once by one node agent. */
const PARALLEL_EVENTS = 8;

/** The mark a claim's cancellation leaves for its placement (claim ids are plain KV tokens). */
const cancelledKey = (claimId: string) => `ClaimCancelled.${claimId}`;

export class Placements {
  private consumers: RunningConsumer[] = [];

  constructor(
    private readonly ctx: AgentContext,
    private readonly records: InstanceRecords,
    private readonly createInstance: CreateInstance,
    private readonly instances: Instances,
  ) {}

  async start(): Promise<void> {
    const { bus } = this.ctx.deps;
    // The names NATS permissions are made from (platform nats/access.ts).
    const own = runtimeConsumers(this.ctx.settings.node);
    // Instances are made and removed side by side (a slow image pull or a grace period holds up
    // no other instance); the events of one instance stay in order.
    const byInstance = (e: Event) => {
      const p = e.payload;
      return p?.$case === 'claimPlaced'
        ? p.claimPlaced.claimId
        : p?.$case === 'claimCancelled'
          ? p.claimCancelled.claimId
          : p?.$case === 'preemptionNotice'
            ? p.preemptionNotice.instanceId
            : '';
    };
    const parallel = { limit: PARALLEL_EVENTS, key: byInstance };
    this.consumers.push(
      await bus.consume({ ...own.placed, handler: (e) => this.onPlaced(e), ackWaitMs: 120_000, parallel }),
      await bus.consume({ ...own.cancelled, handler: (e) => this.onCancelled(e), parallel }),
      await bus.consume({ ...own.preempt, handler: (e, d) => this.onPreempt(e, d.working), ackWaitMs: 60_000, parallel }),
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.consumers.map((c) => c.stop()));
    this.consumers = [];
  }

  private async onPlaced(event: Event): Promise<void> {
    if (event.payload?.$case !== 'claimPlaced') return;
    const placed = event.payload.claimPlaced;
    const input: CreateInstanceInput = {
      id: placed.claimId,
      project: placed.project,
      user: placed.user,
      spec: placed.spec,
      preemptible: placed.preemptible,
      // Each attempt is its own create: a later one (after a preemption, or its node was lost)
      // must not be answered with the instance the first one made.
      requestId:
        placed.attempt > 1
          ? `${placed.requestId || placed.claimId}.${placed.attempt}`
          : placed.requestId || `${placed.claimId}.${placed.attempt}`,
      attempt: placed.attempt || 1,
    };
    if (await this.wasCancelled(placed.claimId, input.attempt)) {
      await this.recordEnded(input, InstanceState.DELETED, 'the claim was cancelled before its placement came');
      return;
    }
    try {
      await this.createInstance.run(input, { user: placed.user, project: placed.project, admin: true });
      // Cancelled while it was being made, before the cancellation could see it: removed now.
      if (await this.wasCancelled(placed.claimId, input.attempt)) await this.deleteIfLive(placed.claimId);
    } catch (error) {
      if (!(error instanceof LapisError)) throw new RetryLater(`placement ${placed.claimId}: ${(error as Error).message}`, 2_000);
      if (error.code === Code.UNAVAILABLE) throw new RetryLater(error.message, 2_000);
      // A placement that cannot run: the instance is recorded as ERROR so the scheduler frees its room.
      await this.recordEnded(input, InstanceState.ERROR, error.message);
    }
  }

  private async wasCancelled(claimId: string, attempt: number): Promise<boolean> {
    const mark = (await this.ctx.deps.store.requests.get(cancelledKey(claimId)))?.value;
    if (mark === undefined) return false;
    const upTo = Number(mark);
    return upTo === 0 || attempt <= upTo;
  }

  private async deleteIfLive(id: string): Promise<boolean> {
    if (!(await this.liveHere(id))) return false;
    await this.instances.delete(id, this.ctx.settings.stopTimeoutS, '', adminScope);
    return true;
  }

  private async onCancelled(event: Event): Promise<void> {
    if (event.payload?.$case !== 'claimCancelled') return;
    const { claimId, attempt } = event.payload.claimCancelled;
    // The mark first: a placement not handled yet, or whose create is past its last look at
    // the mark, is then seen live below.
    await this.ctx.deps.store.requests.put(cancelledKey(claimId), String(attempt));
    // A create of this instance still under way (its placement came first, on another consumer)
    // finishes first: cancelled meanwhile, it would otherwise be left running with no claim.
    await this.ctx.locks.with([`i:${claimId}`], async () => {});
    if (await this.deleteIfLive(claimId)) return;
    await this.removeFencedCopy(claimId);
  }

  /**
   * The scheduler fenced this node (it was lost) and the instance now lives on another node,
   * whose record it is: a copy still here is removed, its record left alone, so the instance
   * never runs twice.
   */
  private async removeFencedCopy(id: string): Promise<void> {
    const { backend, host, log } = this.ctx.deps;
    await this.ctx.locks.with([`i:${id}`], async () => {
      const record = (await this.records.get(id))?.value;
      if (record && record.node === this.ctx.settings.node) return;
      for (const copy of (await backend.list()).filter((w) => w.instanceId === id)) {
        await backend.remove(copy.backendId);
        log.warn({ instance: id, movedTo: record?.node ?? '' }, 'removed the copy of an instance that moved while this node was lost');
      }
      // Its directories and mounts here too (the last instance's also take the instances mount).
      await host.releaseInstance(id);
    });
  }

  private async onPreempt(event: Event, working: () => void): Promise<void> {
    if (event.payload?.$case !== 'preemptionNotice') return;
    const notice = event.payload.preemptionNotice;
    if (!(await this.liveHere(notice.instanceId))) return;
    const graceS = Math.max(0, (notice.gracePeriod?.seconds ?? 0) + Math.round((notice.gracePeriod?.nanos ?? 0) / 1e9));
    // A long grace period must not look like a stuck consumer to NATS.
    const ticker = setInterval(working, 10_000);
    try {
      await this.instances.teardown(notice.instanceId, graceS, InstanceState.PREEMPTED, `preempted for claim ${notice.forClaimId}`);
    } finally {
      clearInterval(ticker);
    }
  }

  /** The instance exists on this node and has not ended. */
  private async liveHere(id: string): Promise<boolean> {
    const current = await this.records.get(id);
    return !!current && current.value.node === this.ctx.settings.node && !TERMINAL.has(current.value.state);
  }

  /** Records a placement that made nothing: ERROR (it cannot run) or DELETED (its claim was cancelled). */
  private async recordEnded(input: CreateInstanceInput, state: InstanceState, reason: string): Promise<void> {
    const existing = await this.records.get(input.id);
    if (existing && !TERMINAL.has(existing.value.state) && existing.value.state !== InstanceState.ERROR) return;
    if (existing?.value.state === state && existing.value.stateReason === reason) return; // said already (a redelivery)
    const instance = newInstance(input, this.ctx.settings.node, this.ctx.deps.backend.kind, '', {
      cpuMillis: 0,
      memoryBytes: 0,
      gpus: 0,
      pids: 0,
      diskBytes: 0,
    });
    instance.state = state;
    instance.stateReason = reason;
    instance.generation = (existing?.value.generation ?? 0) + 1;
    await this.records.write(instance, existing?.revision);
    await this.records.announce(instance, existing?.value.state ?? InstanceState.SCHEDULED);
  }
}
