// The leader's watch for lost nodes: a node silent for LAPIS_SCHEDULER_NODE_LOST_MS is lost.
// Its instances follow their restart policy (domain/node-loss.ts: requeued and placed elsewhere,
// or ended), and the node is fenced first: a claimCancelled for each waits in the node's durable
// consumer, so an agent that comes back removes its copies instead of running them beside the
// new ones. The fence is published before the claim moves, so a crash in between leaves the
// claim on the node for the next check, never a moved claim without its fence. A node is dealt
// with once per silence; its next heartbeat makes it a candidate again.
import type { Bucket, EventBus, Logger } from '@lapis/platform';
import type { ClaimRecord } from '../domain/model';
import { afterNodeLost } from '../domain/node-loss';
import type { ClaimCache } from './claim-cache';
import type { Cluster } from './cluster';

export interface NodeLossOptions {
  claims: Bucket<ClaimRecord>;
  cache: ClaimCache;
  cluster: Cluster;
  bus: EventBus;
  log: Logger;
  now: () => number;
  /** A node silent this long is lost (0: never). */
  lostAfterMs: number;
  /** How often to look. */
  everyMs: number;
  /** Asks for a cycle (requeued claims wait for one). */
  trigger: () => void;
}

export class NodeLoss {
  /** Nodes dealt with during their present silence. */
  private readonly handled = new Set<string>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(private readonly o: NodeLossOptions) {}

  /** Looks every `everyMs` while leading. */
  start(): void {
    if (this.o.lostAfterMs <= 0 || this.timer) return;
    this.timer = setInterval(() => {
      this.running ??= this.check()
        .then(() => undefined)
        .catch((err: unknown) => this.o.log.warn({ err }, 'could not move the instances of a lost node'))
        .finally(() => (this.running = undefined));
    }, this.o.everyMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Deals with the nodes lost since the last look; answers how many claims moved. */
  async check(): Promise<number> {
    const now = this.o.now();
    let moved = 0;
    for (const n of this.o.cluster.nodes.values()) {
      if (now - n.lastSeen <= this.o.lostAfterMs) {
        this.handled.delete(n.name);
        continue;
      }
      if (this.handled.has(n.name)) continue;
      moved += await this.moveOff(n.name, now);
      this.handled.add(n.name);
    }
    if (moved > 0) this.o.trigger();
    return moved;
  }

  private async moveOff(node: string, now: number): Promise<number> {
    // Most nodes hold nothing: the per-node sums say so without a look at every claim.
    if (!this.o.cache.sums.nodes.get(node)?.n) return 0;
    const on = [...this.o.cache.entries.values()].map((e) => e.rec).filter((c) => afterNodeLost(c, node, now));
    let moved = 0;
    for (const c of on) {
      await this.o.bus.publish(
        { $case: 'claimCancelled', claimCancelled: { claimId: c.id, project: c.project, node, attempt: c.placements } },
        node,
        `${c.id}.fenced.${c.placements}`,
      );
      const result = await this.o.claims.mutate(c.id, (current) => (current ? afterNodeLost(current, node, now) : undefined));
      if (!result) continue;
      this.o.cache.take(c.id, result.value, result.revision);
      moved++;
    }
    this.o.log.warn(
      { node, moved, silentMs: now - (this.o.cluster.nodes.get(node)?.lastSeen ?? now) },
      'node lost: its instances moved off it, and it is fenced',
    );
    return moved;
  }
}
