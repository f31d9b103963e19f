// The director's view of the Lapis scheduler and its changes to it, over the scheduler's gRPC
// API with the director's service token (an admin: MoveNode is admin-only): partitions and
// their nodes, active and pending claims, MoveNode (which publishes the NodeMoved event).
// Preemption notices go on the event bus, as the scheduler sends them, so the node's runtime
// stops the instance and reports it PREEMPTED (the scheduler then requeues or ends its claim).
import { appendTo, call, createClient, listAll, type EventBus } from '@lapis/platform';
import { ClaimState, PendingReason, type Claim, type MoveNodeResponse, type Partition } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import type { LapisClaimOnNode } from './domain.js';

/** Pending reasons that another node would not cure. */
const NOT_FOR_NODES = new Set([PendingReason.QUOTA_EXCEEDED, PendingReason.PARTITION_FULL]);

export interface LapisView {
  partitions: Partition[];
  partitionOf: Map<string, string>;
  /** Nodes the scheduler has as down (no heartbeat): it places nothing on them. */
  downNodes: Set<string>;
  claimsOn: Map<string, LapisClaimOnNode[]>;
  pendingClaims: number;
}

export class LapisAdapter {
  private readonly client: SchedulerServiceClient;

  constructor(
    address: string,
    token: string,
    private readonly bus?: EventBus,
  ) {
    this.client = createClient(SchedulerServiceClient, address, { token, deadlineMs: 15_000 });
  }

  async partitions(): Promise<Partition[]> {
    return listAll('partitions', (pageToken) => call(this.client.listPartitions.bind(this.client), { pageSize: 500, pageToken }));
  }

  async claims(states: ClaimState[], partition = ''): Promise<Claim[]> {
    return listAll('claims', (pageToken) =>
      call(this.client.listClaims.bind(this.client), {
        pageSize: 1000,
        pageToken,
        project: '',
        states,
        partition,
        node: '',
        orderByPriority: false,
      }),
    );
  }

  /** Partitions, where each node is, what runs on each node, what waits in `cloudPartition`. */
  async view(cloudPartition: string): Promise<LapisView> {
    const [partitions, active, pending] = await Promise.all([
      this.partitions(),
      this.claims([ClaimState.PLACED, ClaimState.RUNNING]),
      this.claims([ClaimState.PENDING, ClaimState.REQUEUED], cloudPartition),
    ]);
    const partitionOf = new Map<string, string>();
    for (const p of partitions) for (const n of p.nodes) partitionOf.set(n, p.name);
    const downNodes = new Set(partitions.flatMap((p) => p.downNodes));
    const claimsOn = new Map<string, LapisClaimOnNode[]>();
    for (const c of active) {
      if (!c.node) continue;
      appendTo(claimsOn, c.node, { id: c.id, project: c.project, preemptible: c.preemptible });
    }
    return {
      partitions,
      partitionOf,
      downNodes,
      claimsOn,
      pendingClaims: pending.filter((c) => !NOT_FOR_NODES.has(c.pendingReason)).length,
    };
  }

  async moveNode(node: string, toPartition: string, drain: boolean, reason: string): Promise<string> {
    const r: MoveNodeResponse = await call(this.client.moveNode.bind(this.client), { node, toPartition, drain, reason });
    return r.fromPartition;
  }

  get canPreempt(): boolean {
    return this.bus !== undefined;
  }

  /** A preemption notice per claim; the event id makes a repeated notice a duplicate the stream drops. */
  async preempt(node: string, claims: LapisClaimOnNode[], graceMs: number): Promise<void> {
    if (!this.bus) throw new Error('preemption needs the event bus (LAPIS_NATS_URL)');
    for (const c of claims) {
      await this.bus.publish(
        {
          $case: 'preemptionNotice',
          preemptionNotice: {
            instanceId: c.id,
            project: c.project,
            node,
            gracePeriod: { seconds: Math.floor(graceMs / 1000), nanos: (graceMs % 1000) * 1e6 },
            forClaimId: '',
          },
        },
        node,
        `${c.id}.director-preempt.${node}`,
      );
    }
  }

  close(): void {
    this.client.close();
  }
}
