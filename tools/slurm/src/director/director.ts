// The director's round: look at both systems, decide (domain.ts), act, log. Rounds run one
// after another every interval; stop() waits for the round in progress.
import type { Logger } from '@lapis/platform';
import type { Partition } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { decide, type Action, type Decision, type Policy } from './domain.js';
import type { LapisAdapter } from './lapis.js';
import type { SlurmAdapter } from './slurm.js';

export interface DirectorOptions {
  slurm: SlurmAdapter;
  lapis: LapisAdapter;
  log: Logger;
  /** Empty: the one partition with batch_partition set. */
  cloudPartition: string;
  /** Empty: slurm-<batch partition>. */
  slurmSidePartition: string;
  slurmMin: number;
  slurmMax: number;
  maxInTransit: number;
  preempt: boolean;
  preemptGraceMs: number;
}

export interface RoundResult {
  decision?: Decision;
  done: Action[];
  failed: Array<{ action: Action; error: string }>;
  /** Why the round decided nothing (no cloud partition, ...). */
  skipped?: string;
}

export class Director {
  private timer?: NodeJS.Timeout;
  private current?: Promise<unknown>;
  private stopped = false;
  private lastNotes = '';

  constructor(private readonly o: DirectorOptions) {}

  private cloudOf(partitions: Partition[]): Partition | string {
    if (this.o.cloudPartition)
      return partitions.find((p) => p.name === this.o.cloudPartition) ?? `the scheduler has no partition ${this.o.cloudPartition}`;
    const shared = partitions.filter((p) => p.batchPartition);
    if (shared.length === 1) return shared[0]!;
    return shared.length === 0
      ? 'no scheduler partition has batch_partition set (or set LAPIS_DIRECTOR_CLOUD_PARTITION)'
      : `several partitions have batch_partition set (${shared.map((p) => p.name).join(', ')}): set LAPIS_DIRECTOR_CLOUD_PARTITION`;
  }

  /** One round: look, decide, act. Errors of one action do not stop the others. */
  async round(): Promise<RoundResult> {
    const { log } = this.o;
    const partitions = await this.o.lapis.partitions();
    const cloud = this.cloudOf(partitions);
    if (typeof cloud === 'string') return this.skip(cloud);
    if (!cloud.batchPartition) return this.skip(`partition ${cloud.name} has no batch_partition: nothing to share with Slurm`);
    const policy: Policy = {
      cloudPartition: cloud.name,
      slurmSidePartition: this.o.slurmSidePartition || `slurm-${cloud.batchPartition}`,
      batchPartition: cloud.batchPartition,
      slurmMin: this.o.slurmMin,
      slurmMax: this.o.slurmMax,
      maxInTransit: this.o.maxInTransit,
      preempt: this.o.preempt && this.o.lapis.canPreempt,
    };
    const [lapis, nodes, pendingJobNodes] = await Promise.all([
      this.o.lapis.view(cloud.name),
      this.o.slurm.nodes(),
      this.o.slurm.pendingJobNodes(cloud.batchPartition),
    ]);
    const decision = decide(
      {
        slurm: { nodes, pendingJobNodes },
        lapis: {
          partitionOf: lapis.partitionOf,
          downNodes: lapis.downNodes,
          claimsOn: lapis.claimsOn,
          pendingClaims: lapis.pendingClaims,
          cloudMin: cloud.minNodes,
          cloudMax: cloud.maxNodes,
        },
      },
      policy,
    );
    const notes = decision.notes.join('\n');
    if (notes !== this.lastNotes) for (const note of decision.notes) log.info({ want: decision.want, why: decision.why }, note);
    this.lastNotes = notes;
    log.debug(
      {
        want: decision.want,
        why: decision.why,
        cloud: decision.cloudSize,
        slurm: decision.slurmSize,
        nodes: decision.shared.map((n) => `${n.name}:${n.side}`),
        actions: decision.actions.length,
      },
      'round',
    );
    const done: Action[] = [];
    const failed: RoundResult['failed'] = [];
    for (const action of decision.actions) {
      try {
        await this.act(action, policy);
        done.push(action);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        failed.push({ action, error: message });
        log.warn({ action: action.kind, node: action.node, err: error }, 'action failed; the next round looks again');
      }
    }
    return { decision, done, failed };
  }

  private skip(why: string): RoundResult {
    if (why !== this.lastNotes) this.o.log.warn(why);
    this.lastNotes = why;
    return { done: [], failed: [], skipped: why };
  }

  private async act(action: Action, policy: Policy): Promise<void> {
    const { log, slurm, lapis } = this.o;
    switch (action.kind) {
      case 'drain':
        await slurm.drain(action.node, action.reason);
        log.info(
          { node: action.node, reason: action.reason, repair: action.repair ?? false },
          action.repair ? 'drained in Slurm (it is in the cloud partition)' : 'draining in Slurm for Lapis',
        );
        return;
      case 'to-cloud': {
        const from = await lapis.moveNode(action.node, policy.cloudPartition, false, action.reason);
        log.info({ node: action.node, from, to: policy.cloudPartition, reason: action.reason }, 'node moved to the cloud partition');
        return;
      }
      case 'to-slurm': {
        // Without drain the scheduler refuses a node an instance was placed on meanwhile (NODE_BUSY).
        const from = await lapis.moveNode(action.node, policy.slurmSidePartition, action.drain, action.reason);
        log.info(
          { node: action.node, from, to: policy.slurmSidePartition, drain: action.drain, reason: action.reason },
          'node moved out of the cloud partition',
        );
        if (!action.drain) {
          await slurm.resume(action.node);
          log.info({ node: action.node }, 'resumed in Slurm');
        }
        return;
      }
      case 'resume':
        await slurm.resume(action.node);
        log.info({ node: action.node, reason: action.reason }, 'resumed in Slurm');
        return;
      case 'preempt':
        if (!policy.preempt) return;
        await lapis.preempt(action.node, action.claims, this.o.preemptGraceMs);
        log.info({ node: action.node, claims: action.claims.map((c) => c.id) }, 'preemption notices sent');
        return;
    }
  }

  /** Runs a round now and then every intervalMs (after the previous one ends). */
  start(intervalMs: number): void {
    const loop = async (): Promise<void> => {
      if (this.stopped) return;
      this.current = this.round().catch((error: unknown) => this.o.log.warn({ err: error }, 'round failed; trying again next interval'));
      await this.current;
      if (!this.stopped) this.timer = setTimeout(() => void loop(), intervalMs);
    };
    void loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.current;
  }
}
