// What the active claims hold, kept up to date one claim change at a time instead of summed
// from every claim each cycle: per project (instances and resources, for quotas), per node
// (resources, anti-affinity groups, host ports, spot instances), per (project, user) (for usage
// accrual). `change(before, after)` takes a claim's contribution out and puts the new one in;
// every sum is of integers (CPU millis, bytes, GPUs), so the running sums stay exact and equal
// to what `ClusterSums.of(claims)` recomputes (tested after random sequences of changes).
import { claimHostPorts, isActive, isFinal, type ClaimRecord, type Res } from './model';

export interface Use {
  n: number;
  res: Res;
}

/** What the active claims of one node name hold (the node may be unknown). */
export interface NodeUse extends Use {
  /** Anti-affinity groups with how many instances of each. */
  groups: Map<string, number>;
  /** Host ports ("8080/tcp") held, with how many instances (one, unless placed behind Lapis's back). */
  hostPorts: Map<string, number>;
  /** Preemptible instances not yet told to leave, by id. */
  spot: Map<string, ClaimRecord>;
  /** The same resources by the claims' own partitions (for a node no heartbeat describes). */
  byClaimPartition: Map<string, Res>;
}

/** A user's running instances: what usage accrual charges. */
export interface UserUse extends Use {
  account: string;
  user: string;
}

const addTo = (sum: Res, r: Res, sign: number) => {
  sum.cpu += sign * r.cpu;
  sum.mem += sign * r.mem;
  sum.gpus += sign * r.gpus;
};

const isZero = (r: Res) => r.cpu === 0 && r.mem === 0 && r.gpus === 0;

export class ClusterSums {
  readonly projects = new Map<string, Use>();
  readonly nodes = new Map<string, NodeUse>();
  readonly users = new Map<string, UserUse>();
  /** Claims not final (pending or active) per `project/user`: who the fair-share tree shows. */
  readonly known = new Map<string, number>();
  active = 0;
  /**
   * Where set (by the NodeTable that keeps the leader's node views), the names of the nodes
   * whose held instances changed are added to it.
   */
  touched?: Set<string>;

  static of(claims: Iterable<ClaimRecord>): ClusterSums {
    const s = new ClusterSums();
    for (const c of claims) s.change(undefined, c);
    return s;
  }

  /** A claim went from `before` to `after` (either undefined: it appeared or went away). */
  change(before: ClaimRecord | undefined, after: ClaimRecord | undefined): void {
    if (before === after) return;
    if (before) this.account(before, -1);
    if (after) this.account(after, 1);
  }

  projectUse(project: string): Use {
    return this.projects.get(project) ?? { n: 0, res: { cpu: 0, mem: 0, gpus: 0 } };
  }

  private account(c: ClaimRecord, sign: 1 | -1): void {
    const ukey = `${c.project}/${c.user}`;
    if (!isFinal(c)) {
      const key = ukey;
      const k = (this.known.get(key) ?? 0) + sign;
      if (k === 0) this.known.delete(key);
      else this.known.set(key, k);
    }
    if (!isActive(c)) return;
    this.touched?.add(c.node);
    this.active += sign;
    let p = this.projects.get(c.project);
    if (!p) this.projects.set(c.project, (p = { n: 0, res: { cpu: 0, mem: 0, gpus: 0 } }));
    p.n += sign;
    addTo(p.res, c.res, sign);
    if (p.n === 0) this.projects.delete(c.project);

    let u = this.users.get(ukey);
    if (!u) this.users.set(ukey, (u = { account: c.project, user: c.user, n: 0, res: { cpu: 0, mem: 0, gpus: 0 } }));
    u.n += sign;
    addTo(u.res, c.res, sign);
    if (u.n === 0) this.users.delete(ukey);

    let n = this.nodes.get(c.node);
    if (!n)
      this.nodes.set(
        c.node,
        (n = {
          n: 0,
          res: { cpu: 0, mem: 0, gpus: 0 },
          groups: new Map(),
          hostPorts: new Map(),
          spot: new Map(),
          byClaimPartition: new Map(),
        }),
      );
    n.n += sign;
    addTo(n.res, c.res, sign);
    if (c.group) {
      const g = (n.groups.get(c.group) ?? 0) + sign;
      if (g === 0) n.groups.delete(c.group);
      else n.groups.set(c.group, g);
    }
    for (const port of claimHostPorts(c)) {
      const held = (n.hostPorts.get(port) ?? 0) + sign;
      if (held === 0) n.hostPorts.delete(port);
      else n.hostPorts.set(port, held);
    }
    if (c.preemptible && !c.preemptedBy) {
      if (sign > 0) n.spot.set(c.id, c);
      else n.spot.delete(c.id);
    }
    let part = n.byClaimPartition.get(c.partition);
    if (!part) n.byClaimPartition.set(c.partition, (part = { cpu: 0, mem: 0, gpus: 0 }));
    addTo(part, c.res, sign);
    if (isZero(part)) n.byClaimPartition.delete(c.partition);
    if (n.n === 0) this.nodes.delete(c.node);
  }
}
