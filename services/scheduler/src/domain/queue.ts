// The pending queue in priority order, kept between cycles, without sorting every claim.
//
// A claim's multifactor priority is the age factor plus factors that depend only on its class
// (project, user, CPUs, partition, QOS: fair share, job size, partition, QOS). Priorities are
// recalculated every PriorityCalcPeriod (as SLURM does) at one instant, the snapshot; within a
// class the claim submitted first is the oldest, so it has the highest age factor: each class
// is a list in submit order that never needs sorting again, and the queue is the k-way merge
// of the classes by (priority, submit time, id), exactly the order a full sort of every claim
// by its recalculated priority gives. A recalculation recomputes one set of factors per class
// (O(classes), not O(claims)); a walk costs O(classes + claims looked at * log classes).
// Claims that leave the queue are dropped lazily, when a walk passes them at a class's head.
// Claims holding a reservation (waiting for spot instances to leave) go first. Pure: the caller
// says which claims are pending and how a class's factors are computed.
import { partitionOf } from './cycle';
import type { ClaimRecord } from './model';
import { ageFactor, priorityOf, weigh, type Breakdown, type Factors, type Weights } from './priority';

/** The factors a claim's class decides (all but age). */
export type ClassFactors = Omit<Factors, 'age'>;

interface Entry {
  id: string;
  /** Submit time. */
  t: number;
  /** The claim while it is pending; undefined once it left (the entry waits to be dropped). */
  rec: ClaimRecord | undefined;
}

interface Klass {
  /** Computed at a recalculation, or when the class first shows in a walk after one. */
  f?: ClassFactors;
  /** A claim of the class (what the factors are computed from: the class fields never change). */
  sample: ClaimRecord;
  /** In (submit time, id) order; [head, length) may still be pending. */
  entries: Entry[];
  head: number;
  /** Entries of claims that left, passed by the last walk behind a pending head. */
  stale: number;
}

interface Cursor {
  k: Klass;
  i: number;
  p: number;
  e: Entry;
}

const entryBefore = (a: Entry, b: Entry) => a.t < b.t || (a.t === b.t && a.id < b.id);
const cursorBefore = (a: Cursor, b: Cursor) => a.p > b.p || (a.p === b.p && entryBefore(a.e, b.e));

export const classKey = (c: ClaimRecord, defaultPartition: string) =>
  `${c.project}\n${c.user}\n${c.res.cpu}\n${partitionOf(c, defaultPartition)}\n${c.qos}`;

export class PendingQueue {
  /** Every pending claim, as last seen. */
  readonly pending = new Map<string, ClaimRecord>();
  private readonly reserved = new Set<string>();
  private readonly classes = new Map<string, Klass>();
  /** The class and entry of each filed claim (the entry may be stale: the claim left the queue). */
  private readonly filed = new Map<string, { k: Klass; e: Entry }>();
  private snapshotAt = 0;
  private factorsOf?: (c: ClaimRecord) => ClassFactors;

  constructor(
    private readonly weights: Weights,
    private readonly defaultPartition: string,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  /** A claim changed (undefined: it went away); the queue keeps the pending ones. */
  change(id: string, rec: ClaimRecord | undefined, isPending: boolean): void {
    const f = this.filed.get(id);
    if (!rec || !isPending) {
      this.pending.delete(id);
      this.reserved.delete(id);
      if (f) f.e.rec = undefined;
      return;
    }
    this.pending.set(id, rec);
    if (rec.reservedNode) this.reserved.add(id);
    else this.reserved.delete(id);
    // A claim back in the queue (requeued) whose old entry is still filed keeps that entry:
    // same id, class and submit time.
    if (f) f.e.rec = rec;
    else this.file(rec);
  }

  /**
   * Recalculates the priorities as of `at`: every class's factors anew (`factorsOf` reads the
   * fair-share snapshot, the cluster size, partitions and QOS).
   */
  recalculate(at: number, factorsOf: (c: ClaimRecord) => ClassFactors): void {
    this.snapshotAt = at;
    this.factorsOf = factorsOf;
    // O(classes): entries of claims that left are dropped as walks pass them, and a class is
    // dropped once a walk found it empty.
    for (const k of this.classes.values()) k.f = factorsOf(k.sample);
  }

  /** The priority of a claim (pending or not) as of the last recalculation. */
  breakdown(c: ClaimRecord): Breakdown | undefined {
    const f = this.filed.get(c.id)?.k.f ?? this.classes.get(classKey(c, this.defaultPartition))?.f ?? this.factorsOf?.(c);
    return f && weigh({ ...f, age: ageFactor(this.snapshotAt - c.submitTime, this.weights.maxAgeMs) }, this.weights);
  }

  /**
   * The pending claims in queue order: reservations first, then by priority, submit time and
   * id. Lazy: the caller stops when its cycle is full. Needs a recalculation first.
   */
  *walk(): Generator<ClaimRecord> {
    const factorsOf = this.factorsOf;
    if (!factorsOf) throw new Error('the queue is walked before any recalculation');
    const priority = (k: Klass, e: Entry) => {
      k.f ??= factorsOf(k.sample);
      return priorityOf(ageFactor(this.snapshotAt - e.t, this.weights.maxAgeMs), k.f, this.weights);
    };
    if (this.reserved.size > 0) {
      const first: Cursor[] = [];
      for (const id of this.reserved) {
        const k = this.filed.get(id)?.k;
        const c = this.pending.get(id)!;
        const e = { id, t: c.submitTime, rec: c };
        first.push({ k: k!, i: 0, e, p: k ? priority(k, e) : 0 });
      }
      first.sort((a, b) => (cursorBefore(a, b) ? -1 : cursorBefore(b, a) ? 1 : 0));
      for (const cur of first) yield this.pending.get(cur.e.id)!;
    }
    const heap: Cursor[] = [];
    for (const [key, k] of this.classes) {
      this.compactClass(k);
      const e = k.entries[k.head];
      if (e) heapPush(heap, { k, i: k.head, e, p: priority(k, e) });
      else this.classes.delete(key);
    }
    while (heap.length > 0) {
      const cur = heap[0]!;
      const c = cur.e.rec;
      if (!c && cur.i === cur.k.head) {
        // Gone from the queue and first in its class: drop it for good.
        this.filed.delete(cur.e.id);
        cur.k.head++;
      } else if (!c) cur.k.stale++;
      const next = cur.k.entries[cur.i + 1];
      if (next) {
        cur.i++;
        cur.e = next;
        cur.p = priority(cur.k, next);
        heapDown(heap, 0);
      } else heapPop(heap);
      if (c && !c.reservedNode) yield c;
    }
  }

  /** Pending ids in queue order (tests). */
  order(): string[] {
    return [...this.walk()].map((c) => c.id);
  }

  private file(c: ClaimRecord): void {
    const key = classKey(c, this.defaultPartition);
    let k = this.classes.get(key);
    if (!k) this.classes.set(key, (k = { entries: [], head: 0, stale: 0, sample: c }));
    const e: Entry = { id: c.id, t: c.submitTime, rec: c };
    // New claims come last in their class as a rule; a requeued one goes back in its place.
    const last = k.entries[k.entries.length - 1];
    if (!last || entryBefore(last, e)) k.entries.push(e);
    else {
      let lo: number = k.head;
      let hi: number = k.entries.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (entryBefore(k.entries[mid]!, e)) lo = mid + 1;
        else hi = mid;
      }
      k.entries.splice(lo, 0, e);
    }
    this.filed.set(c.id, { k, e });
  }

  /**
   * Drops the consumed head of a class's list once it is most of it, and the entries of
   * claims that left behind a head that stays (one that does not fit) once they are many.
   */
  private compactClass(k: Klass): void {
    const stale = k.stale;
    k.stale = 0;
    if (stale > 64 && stale * 2 > k.entries.length - k.head) {
      const keep: Entry[] = [];
      for (let i = k.head; i < k.entries.length; i++) {
        const e = k.entries[i]!;
        if (e.rec) keep.push(e);
        else this.filed.delete(e.id);
      }
      k.entries = keep;
      k.head = 0;
    } else if (k.head > 1024 && k.head * 2 > k.entries.length) {
      k.entries = k.entries.slice(k.head);
      k.head = 0;
    } else if (k.head === k.entries.length && k.head > 0) {
      k.entries = [];
      k.head = 0;
    }
  }
}

function heapPush(heap: Cursor[], c: Cursor): void {
  heap.push(c);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const child = heap[i]!;
    const up = heap[parent]!;
    if (!cursorBefore(child, up)) break;
    heap[i] = up;
    heap[parent] = child;
    i = parent;
  }
}

function heapDown(heap: Cursor[], i: number): void {
  const n = heap.length;
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let best = i;
    if (l < n && cursorBefore(heap[l]!, heap[best]!)) best = l;
    if (r < n && cursorBefore(heap[r]!, heap[best]!)) best = r;
    if (best === i) return;
    const top = heap[i]!;
    heap[i] = heap[best]!;
    heap[best] = top;
    i = best;
  }
}

function heapPop(heap: Cursor[]): void {
  const last = heap.pop()!;
  if (heap.length === 0) return;
  heap[0] = last;
  heapDown(heap, 0);
}
