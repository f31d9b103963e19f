// The scheduler, as the gRPC handlers and the wiring see it. Every instance keeps the queue,
// the nodes, the accounts, the quotas and the usage in memory as followers of their key-value
// buckets (so any instance answers reads and takes submissions) and competes for the leader
// lease; while it holds the lease it consumes the runtime's events and runs scheduling cycles
// on events and on a timer. Every decision is recorded by compare-and-set on the claim before
// it is published, so a claim is placed once even when two instances briefly both believe
// they lead.
//
// This class only composes the parts and starts and stops them; read in this order:
//   claim-commands.ts  submit and cancel (a KV create or compare-and-set)
//   claim-cache.ts     the claims in memory, the sums and the pending queue the cycle reads
//   cycle-runner.ts    when cycles run, and one cycle over domain/cycle.ts
//   placement-writer.ts  the compare-and-set writes that record a cycle's decisions
//   publisher.ts       claimPlaced and preemptionNotice, once recorded
//   lease.ts, runtime-events.ts, cluster.ts, usage.ts, admin.ts, in-flight.ts, node-loss.ts
import { randomUUID } from 'node:crypto';
import type { EventBus, HostPortRange, Logger } from '@lapis/platform';
import { jsonCodec, RevisionConflict } from '@lapis/platform';
import type { Flavor } from '@lapis/proto/lapis/common/v1/common';
import type { PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { AckedWriter, skipAsyncTraces } from '../adapters/acked';
import { openStore } from '../adapters/store';
import type { PartitionDef, QuotaDef } from '../domain/cycle';
import type { AccountDef, FairShareResult } from '../domain/fairshare';
import type { ClaimRecord, NodeRecord, Res } from '../domain/model';
import { lostAfter } from '../domain/node-loss';
import type { AllocationRatios } from '../domain/overcommit';
import type { Breakdown } from '../domain/priority';
import type { Settings } from '../config';
import { AdminCommands, type NodeMoveEntry } from './admin';
import { ClaimCache, type Entry } from './claim-cache';
import { ClaimCommands, type NewClaim } from './claim-commands';
import { Cluster } from './cluster';
import { CycleRunner, type CycleStats } from './cycle-runner';
import { InFlight } from './in-flight';
import { LeaderLease } from './lease';
import { NodeLoss } from './node-loss';
import { PlacementWriter } from './placement-writer';
import { PlacementPublisher } from './publisher';
import { RuntimeEvents } from './runtime-events';
import { UsageLedger } from './usage';

export type { CycleStats } from './cycle-runner';
export type { NewClaim } from './claim-commands';
export type { NodeMoveEntry } from './admin';

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
  /** A node silent this long is lost (its instances move, it is fenced); 0 or absent: never. */
  nodeLostMs?: number;
  maxPlacements: number;
  /** Recalculate every priority this often (SLURM's PriorityCalcPeriod); default 5 s. */
  priorityCalcMs?: number;
  /** Most compare-and-set writes in flight; default twice maxPlacements (at least 4096). */
  maxInFlight?: number;
  /** Wait for a cycle's writes before the next cycle (tests of fail-over timing); default false. */
  awaitWrites?: boolean;
  now?: () => number;
}

export class Scheduler {
  readonly instanceId: string;
  readonly claims: Map<string, Entry>;
  readonly nodes: Map<string, NodeRecord>;
  readonly accounts: Map<string, AccountDef>;
  readonly quotas: Map<string, QuotaDef>;
  /** The priority breakdown of a claim, as of the last recalculation (GetPriority, views). */
  readonly priorities = { get: (id: string): Breakdown | undefined => this.cache.breakdown(id) };
  onCycle?: (stats: CycleStats) => void;
  /** Called with the time from a placement's decision to its event's acknowledgement (ms). */
  onPlacementDone?: (ms: number) => void;
  /** Test hooks: after a cycle decided (nothing recorded yet), after its decisions were recorded (nothing published yet). */
  hooks: { decided?: () => Promise<void> | void; recorded?: () => Promise<void> | void } = {};

  private readonly cache: ClaimCache;
  private readonly cluster: Cluster;
  private readonly inFlight: InFlight;
  private readonly now: () => number;
  private readonly flavorByName: Map<string, Flavor>;
  private readonly o: Required<Omit<SchedulerOptions, 'instanceId' | 'now' | 'hostPorts'>> & Pick<SchedulerOptions, 'hostPorts'>;
  private nodeLoss?: NodeLoss;
  // The parts that need the buckets, made by start().
  private writer?: AckedWriter;
  private lease?: LeaderLease;
  private usage!: UsageLedger;
  private publisher?: PlacementPublisher;
  private cycles?: CycleRunner;
  private events!: RuntimeEvents;
  private commands!: ClaimCommands;
  private admin!: AdminCommands;
  private followers: Array<{ stop(): void }> = [];

  constructor(options: SchedulerOptions) {
    const o = options;
    this.o = {
      priorityCalcMs: 5_000,
      nodeLostMs: 0,
      maxInFlight: Math.max(4096, 2 * options.maxPlacements),
      awaitWrites: false,
      ...options,
    };
    this.instanceId = o.instanceId ?? `${randomUUID().slice(0, 8)}@${process.pid}`;
    this.now = o.now ?? Date.now;
    this.flavorByName = new Map(o.flavors.map((f) => [f.name, f]));
    this.cache = new ClaimCache(o.settings.weights, o.settings.defaultPartition);
    this.cache.onPending = () => this.trigger();
    this.cluster = new Cluster(o.settings, o.heartbeatMs, this.now);
    this.cluster.onAccounts = () => this.cycles?.recalculateSoon();
    this.inFlight = new InFlight(o.log);
    this.claims = this.cache.entries;
    this.nodes = this.cluster.nodes;
    this.accounts = this.cluster.accounts;
    this.quotas = this.cluster.quotas;
    skipAsyncTraces(o.bus.nc);
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

  /** Whether this instance leads (holds the leader lease). */
  get leader(): boolean {
    return this.lease?.held ?? false;
  }

  /** Placements published since start. */
  get published(): number {
    return this.publisher?.published ?? 0;
  }

  get lastCycle(): CycleStats | undefined {
    return this.cycles?.lastCycle;
  }

  /** Opens the buckets, seeds accounts and quotas from the settings, follows every bucket. */
  async start(options: { lead?: boolean } = {}): Promise<void> {
    const { bus, log, settings } = this.o;
    const store = await openStore(bus, this.o.bucketPrefix);
    const moveLog = await bus.bucket(`${this.o.bucketPrefix}-node-move-log`, jsonCodec<NodeMoveEntry[]>());
    const writer = (this.writer = new AckedWriter(bus.nc, 'scheduler', undefined, bus.inboxPrefix));
    const lease = (this.lease = new LeaderLease({
      bucket: store.leader,
      instanceId: this.instanceId,
      leaseMs: this.o.leaseMs,
      log,
      now: this.now,
      gained: () => this.becomeLeader(),
      lost: () => this.resign(false),
    }));
    const holdsLease = () => lease.holds();
    this.usage = new UsageLedger(store.usage, settings, this.now);
    const publisher = (this.publisher = new PlacementPublisher(writer, this.cache, this.inFlight, log));
    const placements = new PlacementWriter({
      writer,
      claims: store.claims,
      cache: this.cache,
      inFlight: this.inFlight,
      publisher,
      holdsLease,
      maxInFlight: this.o.maxInFlight,
      preemptGraceMs: settings.preemptGraceMs,
      awaitWrites: this.o.awaitWrites,
      recorded: () => this.hooks.recorded?.(),
      placementDone: (ms) => this.onPlacementDone?.(ms),
    });
    this.cycles = new CycleRunner({
      cache: this.cache,
      cluster: this.cluster,
      usage: this.usage,
      inFlight: this.inFlight,
      writer: placements,
      publisher,
      settings,
      log,
      now: this.now,
      leading: () => lease.held && !lease.stopped,
      holdsLease,
      cycleMs: this.o.cycleMs,
      maxPlacements: this.o.maxPlacements,
      maxInFlight: this.o.maxInFlight,
      priorityCalcMs: this.o.priorityCalcMs,
      decided: () => this.hooks.decided?.(),
      cycled: (stats) => this.onCycle?.(stats),
    });
    const trigger = () => this.trigger();
    this.events = new RuntimeEvents({
      bus,
      consumerPrefix: this.o.consumerPrefix,
      claims: store.claims,
      nodes: store.nodes,
      cache: this.cache,
      cluster: this.cluster,
      heartbeatMs: this.o.heartbeatMs,
      now: this.now,
      trigger,
    });
    this.commands = new ClaimCommands(store.claims, this.cache, bus, this.now);
    this.nodeLoss = new NodeLoss({
      claims: store.claims,
      cache: this.cache,
      cluster: this.cluster,
      bus,
      log,
      now: this.now,
      lostAfterMs: lostAfter(this.o.nodeLostMs, this.cluster.downAfterMs),
      everyMs: this.o.heartbeatMs,
      trigger,
    });
    this.admin = new AdminCommands({ store, moveLog, cluster: this.cluster, bus, log, now: this.now, trigger });

    for (const a of settings.accounts) await store.accounts.create(a.name, a).catch(ignoreConflict);
    for (const q of settings.quotas)
      await store.quotas.create(q.project, { maxInstances: q.maxInstances, maxResources: q.maxResources }).catch(ignoreConflict);
    this.followers.push(
      await this.cache.follow(store.claims),
      ...(await this.cluster.follow(store)),
      await this.usage.follow(() => lease.held),
    );
    if (options.lead !== false) await this.lead();
  }

  /** Starts competing for the leader lease (start does it unless told not to). */
  async lead(): Promise<void> {
    await this.lease!.compete();
  }

  /** Stops leading and following; what was recorded stays in the buckets. */
  async stop(): Promise<void> {
    this.lease?.stop();
    await this.resign();
    for (const f of this.followers.splice(0)) f.stop();
    this.writer?.close();
  }

  /** Stops without giving the lease back (as a crash would): for fail-over tests. */
  async halt(): Promise<void> {
    this.lease?.stop();
    this.cycles?.stopTimer();
    await this.nodeLoss?.stop();
    this.lease?.drop();
    await this.events?.stop();
    for (const f of this.followers.splice(0)) f.stop();
    this.writer?.close();
  }

  private async becomeLeader(): Promise<void> {
    this.o.log.info({ instance: this.instanceId }, 'leading the scheduler');
    await this.usage.takeOver();
    // Nodes heard of by an earlier leader count as seen now: they get three heartbeats to speak.
    for (const n of this.cluster.nodes.values()) n.lastSeen = Math.max(n.lastSeen, this.now());
    // Placements recorded but maybe never published (the last leader died in between): publish
    // again under the same event id, which the stream de-duplicates.
    this.publisher!.adoptPlaced();
    await this.events.start();
    this.cycles!.startTimer();
    this.nodeLoss!.start();
  }

  private async resign(giveBack = true): Promise<void> {
    if (!this.lease?.drop()) return;
    this.cycles!.stopTimer();
    await this.nodeLoss?.stop();
    await this.events.stop();
    await this.cycles!.idle();
    await this.settled();
    if (giveBack) {
      await this.usage.write(true).catch(() => undefined);
      await this.lease.giveBack();
    }
  }

  // ---- commands (claim-commands.ts, admin.ts) ------------------------------------------

  /** Records a new claim; with a request id, the same (project, request id) gives the same claim. */
  submit(input: NewClaim): Promise<ClaimRecord> {
    return this.commands.submit(input);
  }

  /** Ends a pending claim, or a placed one (its node is told to delete the instance). */
  cancel(id: string): Promise<ClaimRecord | undefined> {
    return this.commands.cancel(id);
  }

  setAccount(def: AccountDef): Promise<void> {
    return this.admin.setAccount(def);
  }

  setQuota(project: string, quota: QuotaDef): Promise<void> {
    return this.admin.setQuota(project, quota);
  }

  /** An admin's allocation ratios for a partition or a node (both 0: back to the inherited ones). */
  setRatios(scope: 'partition' | 'node', name: string, ratios: AllocationRatios): Promise<void> {
    return this.admin.setRatios(scope, name, ratios);
  }

  moveNode(node: string, to: string, reason: string, user = ''): Promise<string> {
    return this.admin.moveNode(node, to, reason, user);
  }

  /** The recorded moves, newest first. */
  recentMoves(): Promise<NodeMoveEntry[]> {
    return this.admin.recentMoves();
  }

  // ---- cycles (cycle-runner.ts) ----------------------------------------------------------

  /** Asks for a cycle soon; several asks in a row make one cycle. */
  trigger(): void {
    this.cycles?.trigger();
  }

  /** Runs one cycle now (tests and the benchmark drive it directly). */
  runOnce(): Promise<CycleStats> {
    return this.cycles!.runOnce();
  }

  /** Resolves when every write and publish in flight is done. */
  settled(): Promise<void> {
    return this.inFlight.settled();
  }

  // ---- reads (claim-cache.ts, cluster.ts, usage.ts) --------------------------------------

  claim(id: string): ClaimRecord | undefined {
    return this.cache.claim(id);
  }

  /** A claim with its live pending reason and priority. */
  view(rec: ClaimRecord): ClaimRecord & { priority: number } {
    return this.cache.view(rec);
  }

  flavor(name: string): Flavor | undefined {
    return this.flavorByName.get(name);
  }

  /** Active claims' sum for a project: instances and resources. */
  projectUse(project: string): { n: number; res: Res } {
    const use = this.cache.sums.projectUse(project);
    return { n: use.n, res: { ...use.res } };
  }

  /** How many active claims a node holds. */
  nodeRuns(node: string): number {
    return this.cache.sums.nodes.get(node)?.n ?? 0;
  }

  partitions(): PartitionDef[] {
    return this.cluster.partitions();
  }

  partitionOfNode(n: NodeRecord): string {
    return this.cluster.partitionOfNode(n);
  }

  /** A partition's allocation ratios in force (1: no overcommit). */
  partitionRatios(partition: string): AllocationRatios {
    return this.cluster.partitionRatios(partition);
  }

  /** A node's allocation ratios where it has its own; undefined: its partition's. */
  nodeRatios(n: NodeRecord): AllocationRatios | undefined {
    return this.cluster.nodeRatios(n);
  }

  /** No heartbeat for three intervals, or not ready: the cycle places nothing on it. */
  nodeIsDown(n: NodeRecord, now = this.now()): boolean {
    return this.cluster.nodeIsDown(n, now);
  }

  fairShare(): FairShareResult {
    return this.usage.fairShare(this.cluster.accounts.values(), this.cache.sums);
  }

  /** The leader's fair share as its cycles use it (recalculated every priorityCalcMs); undefined elsewhere. */
  fairShareInUse(): FairShareResult | undefined {
    return this.leader ? this.cycles?.fairShareInUse : undefined;
  }

  /** Why a pending claim still waits, as the leader's last cycles saw it (metrics.ts). */
  pendingReason(id: string): PendingReason | undefined {
    return this.cache.reasons.get(id)?.reason;
  }

  /** Decayed usage per "project/user" (metrics.ts). */
  usageByUser(): ReadonlyMap<string, number> {
    return this.usage?.usage ?? new Map();
  }
}

function ignoreConflict(error: unknown): void {
  if (!(error instanceof RevisionConflict)) throw error;
}
