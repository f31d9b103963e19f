// The cluster in memory, following its buckets: the nodes (as their heartbeats left them),
// the partitions nodes were moved to, the accounts, the quotas and the allocation ratios an
// admin set (over the configuration's). Every instance keeps them;
// the leader's heartbeat consumer also writes the nodes (runtime-events.ts).
import { jsonCodec } from '@lapis/platform';
import { follow, ratiosKey, type NodeOverride, type Store } from '../adapters/store';
import type { PartitionDef, QuotaDef } from '../domain/cycle';
import type { AccountDef } from '../domain/fairshare';
import { ZERO, type NodeRecord } from '../domain/model';
import { resolveRatios, withRatios, type AllocationRatios } from '../domain/overcommit';
import type { Settings } from '../config';

export class Cluster {
  readonly nodes = new Map<string, NodeRecord>();
  readonly moves = new Map<string, NodeOverride>();
  readonly accounts = new Map<string, AccountDef>();
  readonly quotas = new Map<string, QuotaDef>();
  /** Admin-set allocation ratios by ratiosKey ("partition.web", "node.node-3"). */
  readonly ratios = new Map<string, AllocationRatios>();
  /** Called when an account changes: priorities are due for recalculation. */
  onAccounts?: () => void;

  constructor(
    private readonly settings: Settings,
    private readonly heartbeatMs: number,
    private readonly now: () => number,
  ) {}

  /** Follows the nodes, node moves, accounts, quotas and allocation ratios buckets, in that order. */
  async follow(store: Store): Promise<Array<{ stop(): void }>> {
    return [
      await follow(store.nodes, jsonCodec<NodeRecord>(), (key, decode) => {
        const value = decode?.();
        if (value) this.nodes.set(key, { ...value, lastSeen: Math.max(value.lastSeen, this.nodes.get(key)?.lastSeen ?? 0) });
        else this.nodes.delete(key);
      }),
      await follow(store.moves, jsonCodec<NodeOverride>(), (key, value) => (value ? this.moves.set(key, value()) : this.moves.delete(key))),
      await follow(store.accounts, jsonCodec<AccountDef>(), (key, value) => {
        if (value) this.accounts.set(key, value());
        else this.accounts.delete(key);
        this.onAccounts?.();
      }),
      await follow(store.quotas, jsonCodec<QuotaDef>(), (key, value) => (value ? this.quotas.set(key, value()) : this.quotas.delete(key))),
      await follow(store.ratios, jsonCodec<AllocationRatios>(), (key, value) =>
        value ? this.ratios.set(key, value()) : this.ratios.delete(key),
      ),
    ];
  }

  /** The partitions the settings declare, and those nodes name without a declaration. */
  partitions(): PartitionDef[] {
    const defs = new Map(this.settings.partitions.map((p) => [p.name, p]));
    for (const n of this.nodes.values()) {
      const name = this.partitionOfNode(n);
      if (!defs.has(name)) {
        defs.set(name, { name, tier: 1, allowPreemptible: true, maxResources: ZERO, batchPartition: '', minNodes: 0, maxNodes: 0 });
      }
    }
    if (!defs.has(this.settings.defaultPartition)) {
      const name = this.settings.defaultPartition;
      defs.set(name, { name, tier: 1, allowPreemptible: true, maxResources: ZERO, batchPartition: '', minNodes: 0, maxNodes: 0 });
    }
    return [...defs.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  partitionOfNode(n: NodeRecord): string {
    return this.moves.get(n.name)?.partition || n.partition || this.settings.defaultPartition;
  }

  /** The nodes as a cycle sees them: a moved node in its new partition, with its allocation ratios applied. */
  nodeViews(): NodeRecord[] {
    const configured = new Map(this.settings.partitions.map((p) => [p.name, p.ratios]));
    // Without any ratio set (the usual case) nothing is worked out per node.
    const anyRatios = this.ratios.size > 0 || this.settings.partitions.some((p) => p.ratios && (p.ratios.cpu || p.ratios.mem));
    return [...this.nodes.values()].map((n) => {
      const view = this.moves.has(n.name) ? { ...n, partition: this.partitionOfNode(n) } : n;
      if (!anyRatios) return view;
      const partition = this.partitionOfNode(n);
      return withRatios(
        view,
        resolveRatios(
          this.ratios.get(ratiosKey('node', n.name)),
          this.ratios.get(ratiosKey('partition', partition)),
          configured.get(partition),
        ),
      );
    });
  }

  /** A partition's allocation ratios in force: an admin's, else the configuration's, else 1. */
  partitionRatios(partition: string): AllocationRatios {
    const configured = this.settings.partitions.find((p) => p.name === partition)?.ratios;
    return resolveRatios(this.ratios.get(ratiosKey('partition', partition)), configured);
  }

  /** A node's allocation ratios in force when it has its own (else undefined: its partition's). */
  nodeRatios(n: NodeRecord): AllocationRatios | undefined {
    const own = this.ratios.get(ratiosKey('node', n.name));
    return own ? resolveRatios(own, this.partitionRatios(this.partitionOfNode(n))) : undefined;
  }

  /** No heartbeat for three intervals, or not ready: the cycle places nothing on it. */
  nodeIsDown(n: NodeRecord, now = this.now()): boolean {
    return !n.ready || now - n.lastSeen > this.downAfterMs;
  }

  get downAfterMs(): number {
    return 3 * this.heartbeatMs;
  }
}
