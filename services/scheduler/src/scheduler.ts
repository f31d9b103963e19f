// The scheduler engine: keeps the queue, the nodes, the accounts, the quotas and the usage
// in memory as followers of their key-value buckets (every instance does, so any instance
// answers reads and takes submissions), and, while it holds the leader lease, consumes the
// runtime's events and runs scheduling cycles on events and on a timer. Every decision is
// recorded by compare-and-set on the claim before it is published, so a claim is placed once
// even when two instances briefly both believe they lead.
import { createHash, randomUUID } from 'node:crypto';
import { context, propagation, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import type { Bucket, EventBus, HostPortRange, Logger, RunningConsumer } from '@lapis/platform';
import { defaultInstanceName, RevisionConflict } from '@lapis/platform';
import { DeviceKind, InstanceState, type Flavor } from '@lapis/proto/lapis/common/v1/common';
import type { Event } from '@lapis/proto/lapis/events/v1/events';
import { NodeState, type Node } from '@lapis/proto/lapis/runtime/v1/runtime';
import { ClaimState, PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { clusterCpuOf, partitionOf, runCycle, type CycleResult, type Decision, type PartitionDef, type QuotaDef } from './domain/cycle';
import { accrueUsage, billing, computeFairShare, type AccountDef, type FairShareResult } from './domain/fairshare';
import { isActive, isFinal, isPending, ZERO, type ClaimRecord, type NodeRecord, type Res } from './domain/model';
import { PendingQueue } from './domain/queue';
import { ClusterSums } from './domain/state';
import { jobSizeFactor, relative, type Breakdown } from './domain/priority';
import { AckedWriter } from './adapters/acked';
import { claimCodec, follow, jsonCodec, openStore, type Lease, type NodeOverride, type Store, type UsageDoc } from './adapters/store';
import type { Settings } from './config';

export interface SchedulerOptions {
  bus: EventBus;
  log: Logger;
  settings: Settings;
  flavors: Flavor[];
  /** Host ports instances may publish (LAPIS_HOST_PORTS, the nodes' range); undefined: none. */
  hostPorts?: HostPortRange;
  bucketPrefix: string;
  consumerPrefix: string;
  /** Names this instance in the leader lease. */
  instanceId?: string;
  cycleMs: number;
  leaseMs: number;
  heartbeatMs: number;
  maxPlacements: number;
  /** Recalculate every priority this often (SLURM's PriorityCalcPeriod); default 5 s. */
  priorityCalcMs?: number;
  /** Most compare-and-set writes in flight; default twice maxPlacements (at least 4096). */
  maxInFlight?: number;
  /** Wait for a cycle's writes before the next cycle (tests of fail-over timing); default false. */
  awaitWrites?: boolean;
  now?: () => number;
}

interface Entry {
  rec: ClaimRecord;
  rev: number;
}

/** What a submission gives; the scheduler adds the rest of the record. */
export type NewClaim = Pick<ClaimRecord, 'project' | 'user' | 'spec' | 'res' | 'devices' | 'preemptible' | 'requeue' | 'partition' | 'backend' | 'group' | 'qos' | 'requestId'>;

export interface CycleStats {
  /** Time spent deciding (the pure cycle), ms. */
  decideMs: number;
  /** Of which recalculating every priority and sorting the queue anew (0 when not due), ms. */
  recalcMs: number;
  /** Waited before the cycle for writes in flight to drop under the limit (not in `ms`). */
  waitMs: number;
  placed: number;
  preempted: number;
  pending: number;
  ms: number;
}

/** One recorded MoveNode (ListNodeMoves). */
export interface NodeMoveEntry {
  node: string;
  from: string;
  to: string;
  reason: string;
  /** ms since the epoch. */
  time: number;
  user: string;
}

/** How many moves the scheduler keeps, newest first, in one record of <prefix>-node-move-log. */
export const NODE_MOVES_KEPT = 200;
const MOVE_LOG_KEY = 'recent';

const USAGE_KEY = 'usage';
const LEADER_KEY = 'leader';

export class Scheduler {
  readonly claims = new Map<string, Entry>();
  readonly nodes = new Map<string, NodeRecord>();
  readonly moves = new Map<string, NodeOverride>();
  readonly accounts = new Map<string, AccountDef>();
  readonly quotas = new Map<string, QuotaDef>();
  usage = new Map<string, number>();
  usageAt = 0;
  reasons = new Map<string, Decision>();
  /** The priority breakdown of a claim, as of the last recalculation (GetPriority, views). */
  readonly priorities = { get: (id: string): Breakdown | undefined => this.breakdown(id) };
  /** Placements published since start. */
  published = 0;
  leader = false;
  readonly instanceId: string;
  lastCycle?: CycleStats;
  onCycle?: (stats: CycleStats) => void;
  /** Called with the time from a placement's decision to its event's acknowledgement (ms). */
  onPlacementDone?: (ms: number) => void;
  /** Test hooks: after a cycle decided (nothing recorded yet), after its decisions were recorded (nothing published yet). */
  hooks: { decided?: () => Promise<void> | void; recorded?: () => Promise<void> | void } = {};

  private store!: Store;
  private moveLog!: Bucket<NodeMoveEntry[]>;
  private writer!: AckedWriter;
  private followers: Array<{ stop(): void }> = [];
  private consumers: RunningConsumer[] = [];
  private leaseRev = 0;
  private leaseUntil = 0;
  private leaseTimer?: NodeJS.Timeout;
  private cycleTimer?: NodeJS.Timeout;
  private cycleRunning?: Promise<void>;
  private cycleAgain = false;
  private stopped = false;
  private unpublished = new Set<string>();
  private inFlight = new Set<Promise<void>>();
  private publishing = new Set<string>();
  private priorityAt = 0;
  /** What the active claims hold, kept up to date on every claim change. */
  readonly sums = new ClusterSums();
  private readonly queue: PendingQueue;
  /** Bytes of each claim write in flight, so its echo from the bucket costs no decoding. */
  private readonly sent = new Map<string, { bytes: Uint8Array; rec: ClaimRecord }>();
  private roomWaiter?: () => void;
  private usageWriting?: Promise<void>;
  private fsSnapshot?: FairShareResult;
  private nodeWrittenAt = new Map<string, number>();
  private usageWrittenAt = 0;
  private readonly now: () => number;
  private readonly flavorByName: Map<string, Flavor>;

  private readonly o: Required<Omit<SchedulerOptions, 'instanceId' | 'now' | 'hostPorts'>> & Pick<SchedulerOptions, 'hostPorts'>;

  constructor(options: SchedulerOptions) {
    const o = options;
    this.o = { priorityCalcMs: 5_000, maxInFlight: Math.max(4096, 2 * options.maxPlacements), awaitWrites: false, ...options };
    this.instanceId = o.instanceId ?? `${randomUUID().slice(0, 8)}@${process.pid}`;
    this.now = o.now ?? Date.now;
    this.flavorByName = new Map(o.flavors.map((f) => [f.name, f]));
    this.queue = new PendingQueue(o.settings.weights, o.settings.defaultPartition);
    // Every KV write and publish is a request; by default nats.js captures a stack trace for
    // each (an Error per request), which costs more than the rest of a placement on the
    // client. The platform's connect takes no options, so the scheduler turns it off on its
    // connection (errors keep their messages, without the caller's async stack).
    const protocol = (o.bus.nc as unknown as { protocol?: { options?: { noAsyncTraces?: boolean } } }).protocol;
    if (protocol?.options) protocol.options.noAsyncTraces = true;
  }

  get settings(): Settings {
    return this.o.settings;
  }

  get flavors(): Flavor[] {
    return this.o.flavors;
  }

  get hostPorts(): HostPortRange | undefined {
    return this.o.hostPorts;
  }

  /** Opens the buckets, seeds accounts and quotas from the settings, follows every bucket. */
  async start(options: { lead?: boolean } = {}): Promise<void> {
    this.store = await openStore(this.o.bus, this.o.bucketPrefix);
    this.moveLog = await this.o.bus.bucket(`${this.o.bucketPrefix}-node-move-log`, jsonCodec<NodeMoveEntry[]>());
    this.writer = new AckedWriter(this.o.bus.nc, 'scheduler', undefined, this.o.bus.inboxPrefix);
    for (const a of this.o.settings.accounts) await this.store.accounts.create(a.name, a).catch(ignoreConflict);
    for (const q of this.o.settings.quotas) await this.store.quotas.create(q.project, { maxInstances: q.maxInstances, maxResources: q.maxResources }).catch(ignoreConflict);
    this.followers.push(
      await follow(this.store.claims, claimCodec, (key, value, rev, bytes) => {
        const known = this.claims.get(key);
        if (known && known.rev >= rev) return;
        // Our own write coming back: the record is the one sent.
        const mine = this.sent.get(key);
        if (mine && bytes && sameBytes(mine.bytes, bytes)) return this.setEntry(key, { rec: mine.rec, rev });
        this.cacheClaim(key, value?.(), rev);
      }),
      await follow(this.store.nodes, jsonCodec<NodeRecord>(), (key, decode) => {
        const value = decode?.();
        if (value) this.nodes.set(key, { ...value, lastSeen: Math.max(value.lastSeen, this.nodes.get(key)?.lastSeen ?? 0) });
        else this.nodes.delete(key);
      }),
      await follow(this.store.moves, jsonCodec<NodeOverride>(), (key, value) => (value ? this.moves.set(key, value()) : this.moves.delete(key))),
      await follow(this.store.accounts, jsonCodec<AccountDef>(), (key, value) => {
        if (value) this.accounts.set(key, value());
        else this.accounts.delete(key);
        this.priorityAt = 0;
      }),
      await follow(this.store.quotas, jsonCodec<QuotaDef>(), (key, value) => (value ? this.quotas.set(key, value()) : this.quotas.delete(key))),
      await follow(this.store.usage, jsonCodec<UsageDoc>(), (_key, decode) => {
        // The leader owns the usage; the others take what it wrote.
        const value = decode?.();
        if (value && !this.leader) {
          this.usage = new Map(Object.entries(value.usage));
          this.usageAt = value.at;
        }
      }),
    );
    if (options.lead !== false) await this.lead();
  }

  /** Starts competing for the leader lease (start does it unless told not to). */
  async lead(): Promise<void> {
    await this.leaseTick();
    this.leaseTimer ??= setInterval(() => void this.leaseTick(), Math.max(100, Math.floor(this.o.leaseMs / 3)));
  }

  /** Stops leading and following; what was recorded stays in the buckets. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.leaseTimer);
    await this.resign();
    for (const f of this.followers.splice(0)) f.stop();
    this.writer?.close();
  }

  /** Stops without giving the lease back (as a crash would): for fail-over tests. */
  async halt(): Promise<void> {
    this.stopped = true;
    clearInterval(this.leaseTimer);
    clearInterval(this.cycleTimer);
    this.leader = false;
    await Promise.all(this.consumers.splice(0).map((c) => c.stop()));
    for (const f of this.followers.splice(0)) f.stop();
    this.writer?.close();
  }

  // ---- leadership ---------------------------------------------------------------------

  private async leaseTick(): Promise<void> {
    if (this.stopped) return;
    const now = this.now();
    const lease: Lease = { holder: this.instanceId, expires: now + this.o.leaseMs };
    try {
      if (this.leader) {
        this.leaseRev = await this.store.leader.update(LEADER_KEY, lease, this.leaseRev);
        this.leaseUntil = lease.expires;
        return;
      }
      const current = await this.store.leader.get(LEADER_KEY);
      if (current && current.value.holder !== this.instanceId && current.value.expires > now) return;
      this.leaseRev = current ? await this.store.leader.update(LEADER_KEY, lease, current.revision) : await this.store.leader.create(LEADER_KEY, lease);
      this.leaseUntil = lease.expires;
      await this.becomeLeader();
    } catch (error) {
      if (this.leader) {
        this.o.log.warn({ err: error }, 'lost the leader lease');
        await this.resign(false);
      } else if (!(error instanceof RevisionConflict)) {
        this.o.log.warn({ err: error }, 'could not take the leader lease');
      }
    }
  }

  private holdsLease(): boolean {
    return this.leader && this.now() < this.leaseUntil - 200;
  }

  private async becomeLeader(): Promise<void> {
    this.leader = true;
    this.o.log.info({ instance: this.instanceId }, 'leading the scheduler');
    // The usage as the last leader left it.
    const doc = await this.store.usage.get(USAGE_KEY);
    if (doc) {
      this.usage = new Map(Object.entries(doc.value.usage));
      this.usageAt = doc.value.at;
    }
    if (!this.usageAt) this.usageAt = this.now();
    // Nodes heard of by an earlier leader count as seen now: they get three heartbeats to speak.
    for (const n of this.nodes.values()) n.lastSeen = Math.max(n.lastSeen, this.now());
    // Placements recorded but maybe never published (the last leader died in between): publish
    // again under the same event id, which the stream de-duplicates.
    for (const { rec } of this.claims.values()) if (rec.state === ClaimState.PLACED) this.unpublished.add(rec.id);
    const prefix = this.o.consumerPrefix;
    this.consumers.push(
      await this.o.bus.consume({
        durable: `${prefix}-instance-state`,
        subject: 'lapis.runtime.instance_state_changed.>',
        ackWaitMs: 5_000,
        handler: (event) => this.onInstanceEvent(event),
      }),
      await this.o.bus.consume({
        durable: `${prefix}-heartbeat`,
        subject: 'lapis.runtime.node_heartbeat.>',
        ackWaitMs: 5_000,
        deliverNew: true,
        handler: (event) => this.onHeartbeat(event),
      }),
    );
    this.cycleTimer = setInterval(() => this.trigger(), this.o.cycleMs);
    this.trigger();
  }

  private async resign(giveBack = true): Promise<void> {
    if (!this.leader) return;
    this.leader = false;
    clearInterval(this.cycleTimer);
    await Promise.all(this.consumers.splice(0).map((c) => c.stop()));
    await this.cycleRunning;
    await this.settled();
    if (giveBack) {
      await this.writeUsage(true).catch(() => undefined);
      await this.store.leader.delete(LEADER_KEY, this.leaseRev).catch(() => undefined);
    }
  }

  // ---- the cache ----------------------------------------------------------------------

  private cacheClaim(key: string, value: ClaimRecord | undefined, rev: number): void {
    const known = this.claims.get(key);
    if (known && known.rev >= rev) return;
    this.setEntry(key, value && { rec: value, rev });
    if (this.leader && value && isPending(value)) this.trigger();
  }

  /** The one place the cache of claims changes: the sums and the queue follow it. */
  private setEntry(id: string, entry: Entry | undefined): void {
    const before = this.claims.get(id);
    if (entry) this.claims.set(id, entry);
    else this.claims.delete(id);
    this.sums.change(before?.rec, entry?.rec);
    const pending = entry !== undefined && isPending(entry.rec);
    this.queue.change(id, entry?.rec, pending);
    if (!pending && before && isPending(before.rec)) this.reasons.delete(id);
  }

  claim(id: string): ClaimRecord | undefined {
    return this.claims.get(id)?.rec;
  }

  /** A claim with its live pending reason and priority. */
  view(rec: ClaimRecord): ClaimRecord & { priority: number } {
    const reason = isPending(rec) ? this.reasons.get(rec.id) : undefined;
    return {
      ...rec,
      reason: reason?.reason ?? rec.reason,
      detail: reason?.detail ?? rec.detail,
      priority: this.priorities.get(rec.id)?.priority ?? 0,
    };
  }

  private breakdown(id: string): Breakdown | undefined {
    const rec = this.claims.get(id)?.rec;
    return rec && this.queue.breakdown(rec);
  }

  flavor(name: string): Flavor | undefined {
    return this.flavorByName.get(name);
  }

  /** Active claims' sum for a project: instances and resources. */
  projectUse(project: string): { n: number; res: Res } {
    const use = this.sums.projectUse(project);
    return { n: use.n, res: { ...use.res } };
  }

  partitions(): PartitionDef[] {
    const defs = new Map(this.o.settings.partitions.map((p) => [p.name, p]));
    for (const n of this.nodes.values()) {
      const name = this.partitionOfNode(n);
      if (!defs.has(name)) {
        defs.set(name, { name, tier: 1, allowPreemptible: true, maxResources: ZERO, batchPartition: '', minNodes: 0, maxNodes: 0 });
      }
    }
    if (!defs.has(this.o.settings.defaultPartition)) {
      const name = this.o.settings.defaultPartition;
      defs.set(name, { name, tier: 1, allowPreemptible: true, maxResources: ZERO, batchPartition: '', minNodes: 0, maxNodes: 0 });
    }
    return [...defs.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** No heartbeat for three intervals, or not ready: the cycle places nothing on it. */
  nodeIsDown(n: NodeRecord, now = this.now()): boolean {
    return !n.ready || now - n.lastSeen > this.downAfterMs;
  }

  private get downAfterMs(): number {
    return 3 * this.o.heartbeatMs;
  }

  partitionOfNode(n: NodeRecord): string {
    return this.moves.get(n.name)?.partition || n.partition || this.o.settings.defaultPartition;
  }

  fairShare(): FairShareResult {
    const seen: Array<[string, string]> = [];
    for (const key of this.sums.known.keys()) {
      const slash = key.indexOf('/');
      seen.push([key.slice(0, slash), key.slice(slash + 1)]);
    }
    return computeFairShare([...this.accounts.values()], this.usage, this.o.settings.algorithm, seen);
  }

  // ---- commands -----------------------------------------------------------------------

  /** Records a new claim; with a request id, the same (project, request id) gives the same claim. */
  async submit(input: NewClaim): Promise<ClaimRecord> {
    const id = input.requestId ? idFromRequest(input.project, input.requestId) : randomUUID();
    const existing = this.claims.get(id);
    if (existing) return existing.rec;
    const rec: ClaimRecord = {
      id,
      ...input,
      traceparent: currentTraceparent(),
      // Every instance has a hostname; a claim that names none gets one from its id.
      spec: input.spec.name ? input.spec : { ...input.spec, name: defaultInstanceName(id) },
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
      victims: [],
    };
    try {
      const rev = await this.store.claims.create(id, rec);
      this.cacheClaim(id, rec, rev);
      return rec;
    } catch (error) {
      if (!(error instanceof RevisionConflict)) throw error;
      const stored = await this.store.claims.get(id);
      if (!stored) throw error;
      this.cacheClaim(id, stored.value, stored.revision);
      return stored.value;
    }
  }

  /** Ends a pending claim, or a placed one (its node is told to delete the instance). */
  async cancel(id: string): Promise<ClaimRecord | undefined> {
    let wasOn = '';
    const result = await this.store.claims.mutate(id, (c) => {
      if (!c || isFinal(c)) return undefined;
      wasOn = isActive(c) ? c.node : '';
      return { ...c, state: ClaimState.CANCELLED, endTime: this.now(), reservedNode: '', victims: [] };
    });
    if (!result) return undefined;
    this.cacheClaim(id, result.value, result.revision);
    if (wasOn) {
      await this.o.bus.publish({ $case: 'claimCancelled', claimCancelled: { claimId: id, project: result.value.project, node: wasOn } }, wasOn, `${id}.cancelled`);
    }
    return result.value;
  }

  async setAccount(def: AccountDef): Promise<void> {
    await this.store.accounts.put(def.name, def);
    this.accounts.set(def.name, def);
  }

  async setQuota(project: string, quota: QuotaDef): Promise<void> {
    await this.store.quotas.put(project, quota);
    this.quotas.set(project, quota);
    this.trigger();
  }

  async moveNode(node: string, to: string, reason: string, user = ''): Promise<string> {
    const rec = this.nodes.get(node);
    const from = rec ? this.partitionOfNode(rec) : '';
    await this.store.moves.put(node, { partition: to, reason });
    this.moves.set(node, { partition: to, reason });
    await this.o.bus.publish({ $case: 'nodeMoved', nodeMoved: { node, fromPartition: from, toPartition: to, reason } }, node);
    this.trigger();
    // The record of recent moves is a convenience (the event is the move's record): a failed write only warns.
    const entry: NodeMoveEntry = { node, from, to, reason, time: this.now(), user };
    await this.moveLog.mutate(MOVE_LOG_KEY, (list) => [entry, ...(list ?? [])].slice(0, NODE_MOVES_KEPT)).catch((err: unknown) => this.o.log.warn({ err, node }, 'could not record the node move'));
    return from;
  }

  /** The recorded moves, newest first. */
  async recentMoves(): Promise<NodeMoveEntry[]> {
    return (await this.moveLog.get(MOVE_LOG_KEY))?.value ?? [];
  }

  nodeRuns(node: string): number {
    return this.sums.nodes.get(node)?.n ?? 0;
  }

  // ---- events -------------------------------------------------------------------------

  private async onHeartbeat(event: Event): Promise<void> {
    if (event.payload?.$case !== 'nodeHeartbeat' || !event.payload.nodeHeartbeat.node) return;
    const rec = nodeRecord(event.payload.nodeHeartbeat.node, event.time?.getTime() ?? this.now());
    const before = this.nodes.get(rec.name);
    if (before && before.lastSeen > rec.lastSeen) return;
    this.nodes.set(rec.name, rec);
    const changed = !before || JSON.stringify({ ...before, lastSeen: 0 }) !== JSON.stringify({ ...rec, lastSeen: 0 });
    const last = this.nodeWrittenAt.get(rec.name) ?? 0;
    if (changed || rec.lastSeen - last > 3 * this.o.heartbeatMs) {
      this.nodeWrittenAt.set(rec.name, rec.lastSeen);
      await this.store.nodes.put(rec.name, rec);
    }
    if (changed) this.trigger();
  }

  private async onInstanceEvent(event: Event): Promise<void> {
    if (event.payload?.$case !== 'instanceStateChanged') return;
    const e = event.payload.instanceStateChanged;
    if (!this.claims.has(e.instanceId)) {
      // Not one of ours (an instance an admin created directly, or another site's).
      const stored = await this.store.claims.get(e.instanceId);
      if (!stored) return;
    }
    const now = this.now();
    const result = await this.store.claims.mutate(e.instanceId, (c) => {
      if (!c) return undefined;
      // An event about an earlier placement of a requeued claim.
      if (e.node && c.node && e.node !== c.node) return undefined;
      const next: ClaimRecord = { ...c, instanceState: e.state };
      switch (e.state) {
        case InstanceState.RUNNING:
          if (c.state === ClaimState.PLACED) next.state = ClaimState.RUNNING;
          // A failed instance ended its claim, but it runs again (its restart policy, or an
          // admin started it): it holds room and quota again, or it would run uncounted.
          else if (c.state === ClaimState.ENDED && c.instanceState === InstanceState.ERROR && e.node === c.node) {
            Object.assign(next, { state: ClaimState.RUNNING, endTime: 0 });
          }
          break;
        case InstanceState.DELETED:
        case InstanceState.ERROR:
          if (isActive(c)) Object.assign(next, { state: ClaimState.ENDED, endTime: now });
          break;
        case InstanceState.PREEMPTED:
          if (!isActive(c)) break;
          if (c.requeue) {
            Object.assign(next, { state: ClaimState.REQUEUED, node: '', preemptedBy: '', reason: PendingReason.PRIORITY, detail: 'requeued after preemption' });
          } else Object.assign(next, { state: ClaimState.ENDED, endTime: now, preemptedBy: '' });
          break;
        default:
          if (next.instanceState === c.instanceState) return undefined;
      }
      return next;
    });
    if (result) this.cacheClaim(e.instanceId, result.value, result.revision);
    this.trigger();
  }

  // ---- cycles -------------------------------------------------------------------------

  /** Asks for a cycle soon; several asks in a row make one cycle. */
  trigger(): void {
    if (!this.leader || this.stopped) return;
    if (this.cycleRunning) {
      this.cycleAgain = true;
      return;
    }
    this.cycleRunning = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.cycle())
      .then(() => undefined)
      .catch((error) => this.o.log.error({ err: error }, 'scheduling cycle failed'))
      .finally(() => {
        this.cycleRunning = undefined;
        // A cycle that stopped at its placement limit leaves work: go on at once.
        if (this.cycleAgain || (this.lastCycle?.placed ?? 0) >= this.o.maxPlacements) {
          this.cycleAgain = false;
          this.trigger();
        }
      });
  }

  /** Runs one cycle now (tests and the benchmark drive it directly). */
  async runOnce(): Promise<CycleStats> {
    while (this.cycleRunning) await this.cycleRunning;
    return this.cycle();
  }

  /**
   * One scheduling cycle: charge usage, recalculate priorities when due, walk the queue from
   * the head deciding at most maxPlacements claims, and send (not await) the writes recording
   * them. A cycle first waits, outside its own time, until a full cycle's writes fit under
   * maxInFlight, so a cycle never blocks on acknowledgements midway.
   */
  private async cycle(): Promise<CycleStats> {
    const stats: CycleStats = { decideMs: 0, recalcMs: 0, waitMs: 0, placed: 0, preempted: 0, pending: 0, ms: 0 };
    const waitFrom = performance.now();
    await this.room(Math.max(0, this.o.maxInFlight - this.o.maxPlacements));
    stats.waitMs = performance.now() - waitFrom;
    const started = performance.now();
    const now = this.now();
    if (!this.holdsLease()) return stats;
    // Placements recorded but not yet published (a publish failed, or a new leader took over).
    this.publishPlacements();
    // Usage: decay, and charge the instances that ran since the last cycle (per user, summed
    // as claims change).
    const rates: Array<{ account: string; user: string; rate: number }> = [];
    for (const u of this.sums.users.values()) rates.push({ account: u.account, user: u.user, rate: billing(u.res, this.o.settings.billing) });
    accrueUsage(this.usage, Math.max(0, now - this.usageAt), this.o.settings.halfLifeMs, rates);
    this.usageAt = now;
    const nodes = [...this.nodes.values()].map((n) => (this.moves.has(n.name) ? { ...n, partition: this.partitionOfNode(n) } : n));
    const downAfterMs = this.downAfterMs;
    // Priorities are recalculated every priorityCalcMs (SLURM's PriorityCalcPeriod), and the
    // queue sorted anew; claims that arrived since get theirs from the same fair-share
    // snapshot and are merged in.
    const recalc = now - this.priorityAt >= this.o.priorityCalcMs || !this.fsSnapshot;
    const partitions = new Map(this.partitions().map((p) => [p.name, p]));
    const base = {
      now,
      partitions,
      defaultPartition: this.o.settings.defaultPartition,
      qos: this.o.settings.qos,
      weights: this.o.settings.weights,
      fairShare: (project: string, user: string) => this.fsSnapshot!.factorOf(project, user),
    };
    if (recalc) {
      const t = performance.now();
      const fs = (this.fsSnapshot = this.fairShare());
      this.priorityAt = now;
      const clusterCpu = clusterCpuOf(nodes, now, downAfterMs);
      const maxTier = Math.max(0, ...[...partitions.values()].map((p) => p.tier));
      const { weights, defaultPartition, qos } = this.o.settings;
      const maxQos = Math.max(0, ...qos.values());
      this.queue.recalculate(now, (c) => ({
        fairShare: fs.factorOf(c.project, c.user),
        jobSize: jobSizeFactor(c.res.cpu, clusterCpu, weights.favorSmall),
        partition: relative(partitions.get(partitionOf(c, defaultPartition))?.tier ?? 0, maxTier),
        qos: relative(qos.get(c.qos) ?? 0, maxQos),
      }));
      stats.recalcMs = performance.now() - t;
    }
    const result = runCycle({
      ...base,
      claims: [],
      split: { pending: this.queue.walk(), active: [] },
      sums: this.sums,
      lookup: (id) => this.claims.get(id)?.rec,
      nodes,
      quotas: this.quotas,
      placement: this.o.settings.placement,
      downAfterMs,
      maxPlacements: this.o.maxPlacements,
      seed: Math.floor(Math.random() * 1e9),
      // Priorities of spot instances, when the cycle looks at preempting them.
      priorityCache: new Map(),
      ordered: true,
    });
    // Claims the cycle did not reach keep their earlier reasons.
    for (const [id, d] of result.pending) this.reasons.set(id, d);
    for (const p of result.placements) this.reasons.delete(p.claim.id);
    stats.decideMs = performance.now() - started;
    await this.hooks.decided?.();
    await this.apply(result, now);
    // The usage document is written every few seconds in the background: the cycle does not
    // wait for its acknowledgement behind the placements' writes.
    if (!this.usageWriting) {
      const writing = this.writeUsage(false).finally(() => (this.usageWriting = undefined));
      this.usageWriting = writing;
      this.track(writing);
    }
    stats.placed = result.placements.length;
    stats.preempted = result.preemptions.length;
    stats.pending = this.queue.size;
    stats.ms = performance.now() - started;
    this.lastCycle = stats;
    this.onCycle?.(stats);
    return stats;
  }

  /** Resolves once at most `limit` writes are in flight. */
  private async room(limit: number): Promise<void> {
    while (this.inFlight.size > limit) await new Promise<void>((resolve) => (this.roomWaiter = resolve));
  }

  /**
   * Records each decision by compare-and-set, then publishes the ones recorded. The writes
   * are pipelined: the cache shows a decision at once (so the next cycle counts its room)
   * while its write is in flight; a write that loses its compare-and-set puts back what the
   * bucket holds. At most maxInFlight writes wait at a time.
   */
  private async apply(result: CycleResult, now: number): Promise<void> {
    if (!this.holdsLease()) return;
    const decidedAt = performance.now();
    for (const { claim, node } of result.placements) {
      const entry = this.claims.get(claim.id);
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
      this.track(
        this.record(entry, next, async () => {
          await this.publishPlacement(next);
          this.onPlacementDone?.(performance.now() - decidedAt);
        }),
      );
      if (this.inFlight.size >= this.o.maxInFlight) await this.room(this.o.maxInFlight - 1);
    }
    const grace = this.o.settings.preemptGraceMs;
    for (const p of result.preemptions) {
      const entry = this.claims.get(p.claim.id);
      // A claim already holding its reservation only has victims told again.
      if (entry && entry.rec.reservedNode !== p.node) {
        this.track(this.record(entry, { ...entry.rec, reservedNode: p.node, victims: p.victims, reason: PendingReason.PREEMPTION }));
      }
      for (const v of p.victims) {
        const ve = this.claims.get(v);
        if (!ve) continue;
        const victim = { ...ve.rec, preemptedBy: p.claim.id };
        this.track(
          this.record(ve, victim, async () => {
            await this.writer.publish(
              {
                $case: 'preemptionNotice',
                preemptionNotice: {
                  instanceId: victim.id,
                  project: victim.project,
                  node: victim.node,
                  gracePeriod: { seconds: Math.floor(grace / 1000), nanos: (grace % 1000) * 1e6 },
                  forClaimId: p.claim.id,
                },
              },
              victim.node,
              `${victim.id}.preempt.${victim.placements}`,
            );
          }),
        );
      }
    }
    if (this.o.awaitWrites) await this.settled();
  }

  /** Resolves when every write and publish in flight is done. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private track(p: Promise<void>): void {
    const tracked: Promise<void> = p
      .catch((error) => this.o.log.error({ err: error }, 'recording a decision failed'))
      .finally(() => {
        this.inFlight.delete(tracked);
        const wake = this.roomWaiter;
        this.roomWaiter = undefined;
        wake?.();
      });
    this.inFlight.add(tracked);
  }

  /** Compare-and-set from the entry's revision; then `after` (a publish) if it held. */
  private async record(entry: Entry, next: ClaimRecord, after?: () => Promise<void>): Promise<void> {
    this.setEntry(next.id, { rec: next, rev: entry.rev });
    const bytes = claimCodec.encode(next).finish();
    this.sent.set(next.id, { bytes, rec: next });
    let rev: number;
    try {
      rev = await this.writer.update(this.store.claims.name, next.id, bytes, entry.rev);
    } catch (error) {
      if (this.sent.get(next.id)?.rec === next) this.sent.delete(next.id);
      // Someone else changed it (a cancel, another leader), or the write failed: take what
      // the bucket holds; the next cycle decides again.
      const stored = await this.store.claims.get(next.id).catch(() => undefined);
      if (stored) this.setEntry(next.id, { rec: stored.value, rev: stored.revision });
      else if (this.claims.get(next.id)?.rev === entry.rev) this.setEntry(next.id, entry);
      if (!(error instanceof RevisionConflict)) throw error;
      return;
    }
    if (this.sent.get(next.id)?.rec === next) this.sent.delete(next.id);
    const current = this.claims.get(next.id);
    if (!current || current.rev < rev) this.setEntry(next.id, { rec: next, rev });
    await this.hooks.recorded?.();
    await after?.();
  }

  private async publishPlacement(c: ClaimRecord): Promise<void> {
    this.unpublished.add(c.id);
    if (this.publishing.has(c.id)) return;
    this.publishing.add(c.id);
    // The placement is part of the submitter's trace (a cycle has no context of its own).
    const parent = c.traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent: c.traceparent }) : ROOT_CONTEXT;
    const span = tracer.startSpan(
      'send lapis.scheduler.claim_placed',
      { kind: SpanKind.PRODUCER, attributes: { 'messaging.system': 'nats', 'messaging.operation.type': 'send', 'messaging.destination.template': 'lapis.scheduler.claim_placed' } },
      parent,
    );
    try {
      const ack = await context.with(trace.setSpan(parent, span), () =>
        this.writer.publish(
          {
            $case: 'claimPlaced',
            claimPlaced: { claimId: c.id, project: c.project, user: c.user, node: c.node, spec: c.spec, preemptible: c.preemptible, attempt: c.placements, requestId: c.requestId },
          },
          c.node,
          `${c.id}.placed.${c.placements}`,
        ),
      );
      this.unpublished.delete(c.id);
      if (!ack.duplicate) this.published++;
    } catch (error) {
      this.o.log.warn({ err: error, claim: c.id }, 'placement not published yet; will retry');
    } finally {
      span.end();
      this.publishing.delete(c.id);
    }
  }

  /** Publishes again what was recorded and not acknowledged (same event id: no duplicates). */
  private publishPlacements(): void {
    for (const id of [...this.unpublished]) {
      const c = this.claims.get(id)?.rec;
      if (!c || c.state !== ClaimState.PLACED) {
        this.unpublished.delete(id);
        continue;
      }
      if (this.publishing.has(id)) continue;
      this.track(this.publishPlacement(c));
    }
  }

  private async writeUsage(force: boolean): Promise<void> {
    const now = this.now();
    if (!force && now - this.usageWrittenAt < 5_000) return;
    this.usageWrittenAt = now;
    await this.store.usage.put(USAGE_KEY, { at: this.usageAt, usage: Object.fromEntries(this.usage) });
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function ignoreConflict(error: unknown): void {
  if (!(error instanceof RevisionConflict)) throw error;
}

/** The claim id of a (project, request id): a retry anywhere finds the same key. */
export function idFromRequest(project: string, requestId: string): string {
  const h = createHash('sha256').update(`${project}\n${requestId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A heartbeat's node as the scheduler keeps it. */
export function nodeRecord(n: Node, seenAt: number): NodeRecord {
  const free: Partial<Record<DeviceKind, number>> = {};
  const total: Partial<Record<DeviceKind, number>> = {};
  for (const d of n.devices) {
    total[d.kind] = (total[d.kind] ?? 0) + 1;
    if (!d.allocatedTo) free[d.kind] = (free[d.kind] ?? 0) + 1;
  }
  const res = (r: { cpuMillis: number; memoryBytes: number; gpus: number } | undefined): Res => ({ cpu: Number(r?.cpuMillis ?? 0), mem: Number(r?.memoryBytes ?? 0), gpus: r?.gpus ?? 0 });
  return {
    name: n.name,
    backend: n.backend,
    partition: n.partition,
    ready: n.state === NodeState.READY || n.state === NodeState.UNSPECIFIED,
    capacity: res(n.capacity),
    reported: res(n.allocated),
    freeDevices: free,
    totalDevices: total,
    images: n.cachedImages,
    lastSeen: seenAt,
  };
}

const tracer = trace.getTracer('@lapis/scheduler');

/** The active trace context as a traceparent header value, if there is one. */
function currentTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}
