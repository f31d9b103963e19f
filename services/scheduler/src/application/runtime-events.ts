// What the runtime tells the leader: node heartbeats (room, devices, images; a silent node is
// down) and instance state changes (a placed claim runs, ends, is preempted and maybe
// requeued). Only the leader consumes them, with durable consumers <prefix>-instance-state
// and <prefix>-heartbeat; each event changes the cache and asks for a cycle.
import type { Bucket, EventBus, RunningConsumer } from '@lapis/platform';
import { type DeviceKind, InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Event } from '@lapis/proto/lapis/events/v1/events';
import { NodeState, type Node } from '@lapis/proto/lapis/runtime/v1/runtime';
import { ClaimState, PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { isActive, type ClaimRecord, type NodeRecord, type Res } from '../domain/model';
import type { ClaimCache } from './claim-cache';
import type { Cluster } from './cluster';
import { countPlacementFailure } from './metrics';

export interface RuntimeEventsOptions {
  bus: EventBus;
  consumerPrefix: string;
  claims: Bucket<ClaimRecord>;
  nodes: Bucket<NodeRecord>;
  cache: ClaimCache;
  cluster: Cluster;
  heartbeatMs: number;
  now: () => number;
  /** Asks for a cycle. */
  trigger: () => void;
}

export class RuntimeEvents {
  private consumers: RunningConsumer[] = [];
  /** When each node was last written to the bucket (a heartbeat that changes nothing is written seldom). */
  private readonly nodeWrittenAt = new Map<string, number>();

  constructor(private readonly o: RuntimeEventsOptions) {}

  /** Starts the durable consumers (on becoming leader). */
  async start(): Promise<void> {
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
  }

  async stop(): Promise<void> {
    await Promise.all(this.consumers.splice(0).map((c) => c.stop()));
  }

  private async onHeartbeat(event: Event): Promise<void> {
    if (event.payload?.$case !== 'nodeHeartbeat' || !event.payload.nodeHeartbeat.node) return;
    const { nodes } = this.o.cluster;
    const rec = nodeRecord(event.payload.nodeHeartbeat.node, event.time?.getTime() ?? this.o.now());
    const before = nodes.get(rec.name);
    if (before && before.lastSeen > rec.lastSeen) return;
    nodes.set(rec.name, rec);
    const changed = !before || JSON.stringify({ ...before, lastSeen: 0 }) !== JSON.stringify({ ...rec, lastSeen: 0 });
    const last = this.nodeWrittenAt.get(rec.name) ?? 0;
    if (changed || rec.lastSeen - last > 3 * this.o.heartbeatMs) {
      this.nodeWrittenAt.set(rec.name, rec.lastSeen);
      await this.o.nodes.put(rec.name, rec);
    }
    if (changed) this.o.trigger();
  }

  private async onInstanceEvent(event: Event): Promise<void> {
    if (event.payload?.$case !== 'instanceStateChanged') return;
    const e = event.payload.instanceStateChanged;
    if (!this.o.cache.entries.has(e.instanceId)) {
      // Not one of ours (an instance an admin created directly, or another site's).
      const stored = await this.o.claims.get(e.instanceId);
      if (!stored) return;
    }
    const now = this.o.now();
    // The node could not start what was placed on it (the last try of the mutation decides).
    let failedPlacement = false;
    const result = await this.o.claims.mutate(e.instanceId, (c) => {
      failedPlacement = false;
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
          failedPlacement = e.state === InstanceState.ERROR && c.state === ClaimState.PLACED;
          if (isActive(c)) Object.assign(next, { state: ClaimState.ENDED, endTime: now });
          break;
        case InstanceState.PREEMPTED:
          if (!isActive(c)) break;
          if (c.requeue) {
            Object.assign(next, {
              state: ClaimState.REQUEUED,
              node: '',
              preemptedBy: '',
              reason: PendingReason.PRIORITY,
              detail: 'requeued after preemption',
            });
          } else Object.assign(next, { state: ClaimState.ENDED, endTime: now, preemptedBy: '' });
          break;
        default:
          if (next.instanceState === c.instanceState) return undefined;
      }
      return next;
    });
    if (result) this.o.cache.take(e.instanceId, result.value, result.revision);
    if (result && failedPlacement) countPlacementFailure('instance_error');
    this.o.trigger();
  }
}

/** A heartbeat's node as the scheduler keeps it. */
export function nodeRecord(n: Node, seenAt: number): NodeRecord {
  const free: Partial<Record<DeviceKind, number>> = {};
  const total: Partial<Record<DeviceKind, number>> = {};
  for (const d of n.devices) {
    total[d.kind] = (total[d.kind] ?? 0) + 1;
    if (!d.allocatedTo) free[d.kind] = (free[d.kind] ?? 0) + 1;
  }
  const res = (r: { cpuMillis: number; memoryBytes: number; gpus: number } | undefined): Res => ({
    cpu: Number(r?.cpuMillis ?? 0),
    mem: Number(r?.memoryBytes ?? 0),
    gpus: r?.gpus ?? 0,
  });
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
