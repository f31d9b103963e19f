// Fair share as SLURM defines it (slurm.schedmd.com/classic_fair_share.html and fair_tree.html):
// an account tree (projects, possibly nested, with users as leaves) carrying raw shares, and
// usage = billing (weighted CPU, memory and GPU seconds) decayed with a half-life.
//
// Classic:   NormShares  S  = (S_raw / S_raw of self+siblings) * S(parent), S(root) = 1
//            NormUsage   UA = U_raw / U_raw(root)
//            EffectvUsage UE = UA                                  for children of root
//                          UE = UA + (UE(parent) - UA) * S_raw / S_raw of self+siblings   below
//            FairShare   F  = 2^(-UE / S)
// Fair Tree: LevelFS = (S_raw / S_raw of self+siblings) / (U_raw / U_raw of self+siblings)
//            (infinite without usage); siblings sorted by LevelFS descending, the tree walked
//            depth first, users ranked in that order from N down; F = rank / N. Users tied on
//            LevelFS share a rank; accounts tied on LevelFS have their children merged.
import type { Res } from './model';

export type Algorithm = 'classic' | 'fair_tree';

export interface AccountDef {
  name: string;
  /** '' for a child of the root. */
  parent: string;
  shares: number;
  userShares: Record<string, number>;
}

export interface BillingWeights {
  /** Per CPU (1000 millis). */
  cpu: number;
  /** Per GiB. */
  memGiB: number;
  gpu: number;
}

/** SLURM's TRESBillingWeights, summed: billing units of one instance per second. */
export function billing(res: Res, weights: BillingWeights): number {
  return (res.cpu / 1000) * weights.cpu + (res.mem / 2 ** 30) * weights.memGiB + res.gpus * weights.gpu;
}

/** The factor usage keeps after `elapsedMs` with half-life `halfLifeMs`: 2^(-t / T½). */
export function decayFactor(elapsedMs: number, halfLifeMs: number): number {
  return halfLifeMs > 0 ? 2 ** (-elapsedMs / halfLifeMs) : 1;
}

export const usageKey = (account: string, user: string) => `${account}/${user}`;

/**
 * Decays every usage by the elapsed time and adds what the running instances used in it
 * (SLURM's _apply_new_usage: usage = usage * decay + new usage). `running` gives
 * (account, user, billing per second).
 */
export function accrueUsage(
  usage: Map<string, number>,
  elapsedMs: number,
  halfLifeMs: number,
  running: Iterable<{ account: string; user: string; rate: number }>,
): void {
  const decay = decayFactor(elapsedMs, halfLifeMs);
  for (const [key, value] of usage) usage.set(key, value * decay);
  for (const r of running) {
    const key = usageKey(r.account, r.user);
    usage.set(key, (usage.get(key) ?? 0) + r.rate * (elapsedMs / 1000));
  }
}

export interface FairShareRow {
  account: string;
  /** '' for an account row. */
  user: string;
  parent: string;
  rawShares: number;
  normShares: number;
  rawUsage: number;
  normUsage: number;
  effectiveUsage: number;
  levelFs: number;
  /** The factor under the algorithm in use (users; accounts carry the classic one). */
  factor: number;
}

interface TreeNode {
  row: FairShareRow;
  children: TreeNode[];
  isUser: boolean;
}

export interface FairShareResult {
  rows: FairShareRow[];
  /** The factor of (account, user); an unknown pair gets the one a new user would get. */
  factorOf(account: string, user: string): number;
}

/**
 * Builds the tree from the accounts (adding, with one share, any project or user seen in
 * `usage` or `extraUsers` that no account names) and computes every row.
 */
export function computeFairShare(
  accounts: readonly AccountDef[],
  usage: ReadonlyMap<string, number>,
  algorithm: Algorithm,
  extraUsers: Iterable<[account: string, user: string]> = [],
): FairShareResult {
  const defs = new Map<string, AccountDef>();
  for (const a of accounts) defs.set(a.name, { ...a, userShares: { ...a.userShares } });
  const ensureUser = (account: string, user: string) => {
    let def = defs.get(account);
    if (!def) defs.set(account, (def = { name: account, parent: '', shares: 1, userShares: {} }));
    if (user && def.userShares[user] === undefined) def.userShares[user] = 1;
  };
  for (const key of usage.keys()) {
    const slash = key.indexOf('/');
    ensureUser(key.slice(0, slash), key.slice(slash + 1));
  }
  for (const [account, user] of extraUsers) ensureUser(account, user);

  const mkRow = (account: string, user: string, parent: string, rawShares: number): FairShareRow => ({
    account,
    user,
    parent,
    rawShares,
    normShares: 0,
    rawUsage: 0,
    normUsage: 0,
    effectiveUsage: 0,
    levelFs: 0,
    factor: 0,
  });
  const root: TreeNode = { row: mkRow('root', '', '', 1), children: [], isUser: false };
  const nodes = new Map<string, TreeNode>();
  for (const def of defs.values()) {
    const node: TreeNode = { row: mkRow(def.name, '', def.parent || 'root', def.shares), children: [], isUser: false };
    for (const [user, shares] of Object.entries(def.userShares).sort(([a], [b]) => (a < b ? -1 : 1))) {
      const leaf = mkRow(def.name, user, def.name, shares);
      leaf.rawUsage = usage.get(usageKey(def.name, user)) ?? 0;
      node.children.push({ row: leaf, children: [], isUser: true });
    }
    nodes.set(def.name, node);
  }
  for (const node of [...nodes.values()].sort((a, b) => (a.row.account < b.row.account ? -1 : 1))) {
    const parent = node.row.parent === 'root' ? root : nodes.get(node.row.parent);
    // A parent that does not exist (or a loop) hangs the account under the root.
    if (!parent || createsLoop(node, nodes)) {
      node.row.parent = 'root';
      root.children.push(node);
    } else parent.children.push(node);
  }
  const sumUsage = (node: TreeNode): number => {
    if (!node.isUser) node.row.rawUsage = node.children.reduce((s, c) => s + sumUsage(c), 0);
    return node.row.rawUsage;
  };
  sumUsage(root);
  const total = root.row.rawUsage;
  root.row.normShares = 1;
  root.row.normUsage = total > 0 ? 1 : 0;
  root.row.effectiveUsage = root.row.normUsage;

  const classic = (node: TreeNode, depth: number) => {
    const siblingShares = node.children.reduce((s, c) => s + c.row.rawShares, 0);
    const siblingUsage = node.children.reduce((s, c) => s + c.row.rawUsage, 0);
    for (const child of node.children) {
      const r = child.row;
      const shareOfLevel = siblingShares > 0 ? r.rawShares / siblingShares : 0;
      r.normShares = shareOfLevel * node.row.normShares;
      r.normUsage = total > 0 ? r.rawUsage / total : 0;
      r.effectiveUsage = depth === 0 ? r.normUsage : r.normUsage + (node.row.effectiveUsage - r.normUsage) * shareOfLevel;
      r.factor = r.normShares > 0 ? 2 ** (-r.effectiveUsage / r.normShares) : 0;
      const usageOfLevel = siblingUsage > 0 ? r.rawUsage / siblingUsage : 0;
      r.levelFs = shareOfLevel === 0 ? 0 : usageOfLevel === 0 ? Infinity : shareOfLevel / usageOfLevel;
      classic(child, depth + 1);
    }
  };
  classic(root, 0);

  const userRows: FairShareRow[] = [];
  const collectUsers = (node: TreeNode) => {
    for (const c of node.children) c.isUser ? userRows.push(c.row) : collectUsers(c);
  };
  collectUsers(root);
  if (algorithm === 'fair_tree') fairTreeRank(root, userRows.length);

  const rows: FairShareRow[] = [];
  const walk = (node: TreeNode) => {
    for (const c of [...node.children].sort(
      (a, b) => Number(a.isUser) - Number(b.isUser) || (a.row.account + a.row.user < b.row.account + b.row.user ? -1 : 1),
    )) {
      rows.push(c.row);
      walk(c);
    }
  };
  walk(root);
  const byKey = new Map(userRows.map((r) => [usageKey(r.account, r.user), r.factor]));
  // A user not in the tree yet: no usage, one share. Under Fair Tree that ranks with the
  // top (infinite LevelFS) in an account with usage; the classic factor of an unused share is
  // at least its account's; both are approximated by the account's best user, else 1.
  const fallback = new Map<string, number>();
  for (const r of userRows) fallback.set(r.account, Math.max(fallback.get(r.account) ?? 0, r.factor));
  return {
    rows,
    factorOf: (account, user) => byKey.get(usageKey(account, user)) ?? fallback.get(account) ?? 1,
  };
}

function createsLoop(node: TreeNode, nodes: Map<string, TreeNode>): boolean {
  const seen = new Set<string>([node.row.account]);
  let parent = node.row.parent;
  while (parent !== 'root') {
    if (seen.has(parent)) return true;
    seen.add(parent);
    parent = nodes.get(parent)?.row.parent ?? 'root';
  }
  return false;
}

/** Fair Tree's ranking: depth first over siblings sorted by LevelFS, users ranked N..1. */
function fairTreeRank(root: TreeNode, userCount: number): void {
  let rank = userCount;
  const visit = (children: TreeNode[]) => {
    const sorted = [...children].sort((a, b) => cmpLevel(b.row.levelFs, a.row.levelFs));
    for (let i = 0; i < sorted.length; ) {
      let j = i + 1;
      while (j < sorted.length && sorted[j]!.row.levelFs === sorted[i]!.row.levelFs) j++;
      const tied = sorted.slice(i, j);
      const users = tied.filter((t) => t.isUser);
      const accounts = tied.filter((t) => !t.isUser);
      // Tied users get the same rank; tied accounts have their children merged and sorted.
      if (users.length > 0) {
        for (const u of users) u.row.factor = userCount > 0 ? rank / userCount : 0;
        rank -= users.length;
      }
      if (accounts.length > 0) visit(accounts.flatMap((a) => a.children));
      i = j;
    }
  };
  visit(root.children);
}

const cmpLevel = (a: number, b: number) => (a === b ? 0 : a < b ? -1 : 1);
