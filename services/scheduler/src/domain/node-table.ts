// The nodes as scheduling cycles see them, kept from one cycle to the next. Building a view of
// every node and the free-room index of every partition costs O(nodes) allocations: at 50,000
// nodes that was most of a cycle. The table keeps them, and before a cycle (`sync`) redoes only
// the views of nodes whose record, held instances (the sums' `touched`) or last cycle's
// decisions changed; a pass over the records with no allocation finds those and the nodes that
// went down or came up. A node joining, leaving, changing partition or going down rebuilds the
// table. After `sync` every view is what a fresh one would be: a cycle on a kept table decides
// what a cycle on a new one does (tested after random sequences of changes). Pure.
import type { DeviceKind } from '@lapis/proto/lapis/common/v1/common';
import type { NodeRecord, Res } from './model';
import { FreeIndex, type NodeView, type Victim } from './placement';
import type { ClusterSums, NodeUse } from './state';

/** Turns a node's spot instances into victims with this cycle's priorities. */
export interface SpotSource {
  victims(use: NodeUse): Victim[];
}

const NO_GROUPS: ReadonlyMap<string, number> = new Map();
const NO_PORTS: ReadonlyMap<string, number> = new Map();
const NO_VICTIMS: readonly Victim[] = Object.freeze([]);

export const nodePartition = (n: NodeRecord, defaultPartition: string): string => n.partition || defaultPartition;

/**
 * A node during a cycle over sums kept by the caller: what it holds at the start (the larger of
 * what Lapis placed there and what the node reported), the caller's anti-affinity groups
 * (copied before a cycle adds to them), its spot instances as victims on demand. What a cycle
 * changes marks the view, and the next `sync` makes it fresh again.
 */
export class CycleView implements NodeView {
  used!: Res;
  start!: Res;
  devUsed!: Partial<Record<DeviceKind, number>>;
  groups!: Map<string, number>;
  hostPorts!: Map<string, number>;
  held = false;
  /** Ready and heard from recently: a cycle may place here. */
  up = false;
  /** Where the node is in its partition's list and index (-1: in none, it is down). */
  position = -1;
  private use: NodeUse | undefined;
  private victims?: Victim[];
  private copied = false;
  private portsCopied = false;

  constructor(
    public rec: NodeRecord,
    use: NodeUse | undefined,
    private readonly table: NodeTable,
  ) {
    this.reset(use);
  }

  /** As at the start of a cycle, from the node's record and what its instances hold now. */
  reset(use: NodeUse | undefined): void {
    this.use = use;
    const mine = use?.res;
    const r = this.rec.reported;
    // `used` is replaced as the cycle places (takeRoom), never changed in place.
    this.used = this.start = mine
      ? { cpu: Math.max(mine.cpu, r.cpu), mem: Math.max(mine.mem, r.mem), gpus: Math.max(mine.gpus, r.gpus) }
      : r;
    this.devUsed = {};
    this.groups = (use?.groups ?? NO_GROUPS) as Map<string, number>;
    this.hostPorts = (use?.hostPorts ?? NO_PORTS) as Map<string, number>;
    this.held = false;
    this.victims = undefined;
    this.copied = false;
    this.portsCopied = false;
  }

  get spot(): Victim[] {
    if (this.victims) return this.victims;
    if (!this.use || this.use.spot.size === 0) return NO_VICTIMS as Victim[];
    // Victims carry this cycle's priorities: the next cycle works them out again.
    this.table.changed(this);
    return (this.victims = this.table.spots.victims(this.use));
  }

  set spot(value: Victim[]) {
    this.table.changed(this);
    this.victims = value;
  }

  /** Before this cycle counts a group member here: the caller's map stays as it was. */
  ownGroups(): void {
    if (this.copied) return;
    this.groups = new Map(this.groups);
    this.copied = true;
  }

  /** The same for host ports. */
  ownHostPorts(): void {
    if (this.portsCopied) return;
    this.hostPorts = new Map(this.hostPorts);
    this.portsCopied = true;
  }
}

export class NodeTable {
  /** Every node by name, down ones too (a reservation may name one). */
  readonly views = new Map<string, CycleView>();
  /** The nodes that take instances now, by partition, in the records' order. */
  readonly byPartition = new Map<string, CycleView[]>();
  /** CPU of the nodes that take instances now. */
  clusterCpu = 0;
  /** The cycle under way's source of victims. */
  spots: SpotSource = { victims: () => [] };
  private all: CycleView[] = [];
  private readonly indexes = new Map<string, FreeIndex>();
  /** Views the running cycle changed: made fresh by the next sync. */
  private dirty: CycleView[] = [];
  /** Node names whose held instances changed since the last sync (the sums add to it). */
  private readonly touched = new Set<string>();
  /**
   * What the running instances hold per partition: by the node's partition where the node is
   * known (moves included), else by the claims' own partitions; and what each node name adds.
   */
  private readonly heldByPartition = new Map<string, Res>();
  private readonly heldByNode = new Map<string, Array<[partition: string, held: Res]>>();

  /**
   * @param keep false for a table used once: it does not follow the sums' changes (so it leaves
   * them to a kept table).
   */
  constructor(
    private readonly defaultPartition: string,
    private readonly keep = true,
  ) {}

  /** A cycle changed the view (placed there, held it, picked victims there). */
  changed(view: CycleView): void {
    this.dirty.push(view);
  }

  /** The partition's free-room index, made when a cycle first places in it. */
  index(partition: string): FreeIndex | undefined {
    let index = this.indexes.get(partition);
    const nodes = this.byPartition.get(partition);
    if (!index && nodes && nodes.length > 0) this.indexes.set(partition, (index = new FreeIndex(nodes)));
    return index;
  }

  /** What each partition's running instances hold, as of the last sync (a copy for one cycle). */
  partitionUse(): Map<string, Res> {
    return new Map(this.heldByPartition);
  }

  /** Brings every view up to date with the records (in a stable order) and the sums. */
  sync(records: readonly NodeRecord[], sums: ClusterSums, now: number, downAfterMs: number): void {
    if (this.keep && sums.touched !== this.touched) {
      // Sums this table has not followed: everything anew.
      sums.touched = this.touched;
      this.rebuild(records, sums, now, downAfterMs);
      return;
    }
    const all = this.all;
    let rebuild = !this.keep || records.length !== all.length;
    let clusterCpu = 0;
    for (let i = 0; i < records.length && !rebuild; i++) {
      const rec = records[i]!;
      const view = all[i]!;
      if (view.rec !== rec) {
        if (view.rec.name !== rec.name || nodePartition(view.rec, this.defaultPartition) !== nodePartition(rec, this.defaultPartition)) {
          rebuild = true;
          break;
        }
        view.rec = rec;
        this.dirty.push(view);
      }
      const up = rec.ready && now - rec.lastSeen <= downAfterMs;
      if (up !== view.up) rebuild = true;
      else if (up) clusterCpu += rec.capacity.cpu;
    }
    if (rebuild) return this.rebuild(records, sums, now, downAfterMs);
    this.clusterCpu = clusterCpu;
    for (const name of this.touched) {
      const view = this.views.get(name);
      if (view) this.dirty.push(view);
      this.countHeld(name, sums.nodes.get(name));
    }
    this.touched.clear();
    for (const view of this.dirty) {
      view.reset(sums.nodes.get(view.rec.name));
      if (view.position >= 0) this.indexes.get(nodePartition(view.rec, this.defaultPartition))?.update(view);
    }
    this.dirty = [];
  }

  private rebuild(records: readonly NodeRecord[], sums: ClusterSums, now: number, downAfterMs: number): void {
    this.views.clear();
    this.byPartition.clear();
    this.indexes.clear();
    this.touched.clear();
    this.heldByPartition.clear();
    this.heldByNode.clear();
    this.dirty = [];
    this.clusterCpu = 0;
    this.all = records.map((rec) => {
      const view = new CycleView(rec, sums.nodes.get(rec.name), this);
      this.views.set(rec.name, view);
      view.up = rec.ready && now - rec.lastSeen <= downAfterMs;
      if (view.up) {
        this.clusterCpu += rec.capacity.cpu;
        const p = nodePartition(rec, this.defaultPartition);
        let list = this.byPartition.get(p);
        if (!list) this.byPartition.set(p, (list = []));
        view.position = list.length;
        list.push(view);
      }
      return view;
    });
    for (const [name, use] of sums.nodes) this.countHeld(name, use);
  }

  /** Takes what the node name added to its partitions out and puts what `use` holds in. */
  private countHeld(name: string, use: NodeUse | undefined): void {
    for (const [partition, r] of this.heldByNode.get(name) ?? []) this.addHeld(partition, r, -1);
    if (!use) {
      this.heldByNode.delete(name);
      return;
    }
    const view = this.views.get(name);
    const parts: Array<[string, Res]> = view
      ? [[nodePartition(view.rec, this.defaultPartition), { ...use.res }]]
      : [...use.byClaimPartition].map(([partition, r]) => [partition || this.defaultPartition, { ...r }]);
    for (const [partition, r] of parts) this.addHeld(partition, r, 1);
    this.heldByNode.set(name, parts);
  }

  private addHeld(partition: string, r: Res, sign: 1 | -1): void {
    const sum = this.heldByPartition.get(partition);
    // Replaced, not changed in place: a cycle's copy of the map keeps its values.
    this.heldByPartition.set(partition, {
      cpu: (sum?.cpu ?? 0) + sign * r.cpu,
      mem: (sum?.mem ?? 0) + sign * r.mem,
      gpus: (sum?.gpus ?? 0) + sign * r.gpus,
    });
  }
}
