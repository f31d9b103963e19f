// The administrators' commands: accounts (fair-share tree), project quotas, allocation ratios
// of a partition or a node, and moving a node to another partition (with a short record of
// recent moves for ListNodeMoves). Each writes its
// bucket and updates this instance's cache at once; the other instances follow the bucket.
import type { Bucket, EventBus, Logger } from '@lapis/platform';
import { ratiosKey, type Store } from '../adapters/store';
import type { QuotaDef } from '../domain/cycle';
import type { AccountDef } from '../domain/fairshare';
import type { AllocationRatios } from '../domain/overcommit';
import type { Cluster } from './cluster';

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

export interface AdminOptions {
  store: Store;
  moveLog: Bucket<NodeMoveEntry[]>;
  cluster: Cluster;
  bus: EventBus;
  log: Logger;
  now: () => number;
  /** Asks for a cycle (a quota or a partition changed). */
  trigger: () => void;
}

export class AdminCommands {
  constructor(private readonly o: AdminOptions) {}

  async setAccount(def: AccountDef): Promise<void> {
    await this.o.store.accounts.put(def.name, def);
    this.o.cluster.accounts.set(def.name, def);
  }

  async setQuota(project: string, quota: QuotaDef): Promise<void> {
    await this.o.store.quotas.put(project, quota);
    this.o.cluster.quotas.set(project, quota);
    this.o.trigger();
  }

  /**
   * Sets a partition's or a node's allocation ratios (validated by the caller); 0 leaves that
   * resource to what it inherits, and both 0 removes the admin's setting.
   */
  async setRatios(scope: 'partition' | 'node', name: string, ratios: AllocationRatios): Promise<void> {
    const key = ratiosKey(scope, name);
    if (ratios.cpu === 0 && ratios.mem === 0) {
      await this.o.store.ratios.delete(key);
      this.o.cluster.ratios.delete(key);
    } else {
      await this.o.store.ratios.put(key, { cpu: ratios.cpu, mem: ratios.mem });
      this.o.cluster.ratios.set(key, { cpu: ratios.cpu, mem: ratios.mem });
    }
    this.o.trigger();
  }

  /** Moves a node to another partition; returns the partition it was in. */
  async moveNode(node: string, to: string, reason: string, user = ''): Promise<string> {
    const { cluster } = this.o;
    const rec = cluster.nodes.get(node);
    const from = rec ? cluster.partitionOfNode(rec) : '';
    await this.o.store.moves.put(node, { partition: to, reason });
    cluster.moves.set(node, { partition: to, reason });
    await this.o.bus.publish({ $case: 'nodeMoved', nodeMoved: { node, fromPartition: from, toPartition: to, reason } }, node);
    this.o.trigger();
    // The record of recent moves is a convenience (the event is the move's record): a failed write only warns.
    const entry: NodeMoveEntry = { node, from, to, reason, time: this.o.now(), user };
    await this.o.moveLog
      .mutate(MOVE_LOG_KEY, (list) => [entry, ...(list ?? [])].slice(0, NODE_MOVES_KEPT))
      .catch((err: unknown) => this.o.log.warn({ err, node }, 'could not record the node move'));
    return from;
  }

  /** The recorded moves, newest first. */
  async recentMoves(): Promise<NodeMoveEntry[]> {
    return (await this.o.moveLog.get(MOVE_LOG_KEY))?.value ?? [];
  }
}
