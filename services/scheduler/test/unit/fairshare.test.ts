// The fair-share factors against examples worked by hand from SLURM's definitions
// (classic_fair_share.html, fair_tree.html); the arithmetic is in the comments.
import { strict as assert } from 'node:assert';
import { accrueUsage, billing, computeFairShare, decayFactor, type AccountDef } from '../../src/domain/fairshare';
import { cpus } from './helpers';

const close = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) < 1e-4, `${what}: ${actual} != ${expected}`);

// root ─ A (30 shares) ─ a1 (1), a2 (1)
//      └ B (70 shares) ─ b1 (1)
// raw usage: a1 = 30, a2 = 10, b1 = 60 (total 100)
const accounts: AccountDef[] = [
  { name: 'A', parent: '', shares: 30, userShares: { a1: 1, a2: 1 } },
  { name: 'B', parent: '', shares: 70, userShares: { b1: 1 } },
];
const usage = new Map([
  ['A/a1', 30],
  ['A/a2', 10],
  ['B/b1', 60],
]);

describe('fair share: classic', () => {
  const result = computeFairShare(accounts, usage, 'classic');
  const row = (account: string, user = '') => result.rows.find((r) => r.account === account && r.user === user)!;

  it('normalizes shares down the tree', () => {
    // S(A) = 30/100 = 0.3; S(B) = 0.7; S(a1) = 1/2 * 0.3 = 0.15; S(a2) = 0.15; S(b1) = 1/1 * 0.7 = 0.7
    close(row('A').normShares, 0.3, 'A');
    close(row('B').normShares, 0.7, 'B');
    close(row('A', 'a1').normShares, 0.15, 'a1');
    close(row('B', 'b1').normShares, 0.7, 'b1');
  });

  it('propagates effective usage from the parent (UE = UA + (UE_parent - UA) * S_raw / S_raw_siblings)', () => {
    // UA(A) = 40/100 = 0.4 -> UE(A) = 0.4 (child of root); UE(B) = 0.6
    close(row('A').effectiveUsage, 0.4, 'A');
    close(row('B').effectiveUsage, 0.6, 'B');
    // UE(a1) = 0.3 + (0.4 - 0.3) * 1/2 = 0.35; UE(a2) = 0.1 + (0.4 - 0.1) * 1/2 = 0.25
    close(row('A', 'a1').effectiveUsage, 0.35, 'a1');
    close(row('A', 'a2').effectiveUsage, 0.25, 'a2');
    // UE(b1) = 0.6 + (0.6 - 0.6) * 1 = 0.6
    close(row('B', 'b1').effectiveUsage, 0.6, 'b1');
  });

  it('computes F = 2^(-UE/S)', () => {
    // a1: 2^(-0.35/0.15) = 2^(-2.3333) = 0.198425; a2: 2^(-0.25/0.15) = 2^(-1.6667) = 0.314980
    // b1: 2^(-0.6/0.7) = 2^(-0.857143) = 0.552045
    close(result.factorOf('A', 'a1'), 0.198425, 'a1');
    close(result.factorOf('A', 'a2'), 0.31498, 'a2');
    close(result.factorOf('B', 'b1'), 0.552045, 'b1');
  });

  it('gives an unused tree factor 1 and adds unknown projects with one share', () => {
    const empty = computeFairShare([], new Map(), 'classic', [['new', 'x']]);
    // S = 1/1, UE = 0 -> 2^0 = 1
    close(empty.factorOf('new', 'x'), 1, 'new/x');
  });
});

describe('fair share: Fair Tree', () => {
  const result = computeFairShare(accounts, usage, 'fair_tree');
  const row = (account: string, user = '') => result.rows.find((r) => r.account === account && r.user === user)!;

  it('computes Level FS = S / U among siblings', () => {
    // A: (30/100) / (40/100) = 0.75; B: (70/100) / (60/100) = 1.166667
    close(row('A').levelFs, 0.75, 'A');
    close(row('B').levelFs, 7 / 6, 'B');
    // a1: (1/2) / (30/40) = 0.666667; a2: (1/2) / (10/40) = 2
    close(row('A', 'a1').levelFs, 2 / 3, 'a1');
    close(row('A', 'a2').levelFs, 2, 'a2');
  });

  it('ranks users depth first by Level FS: F = rank / users', () => {
    // order: B (1.1667) before A (0.75); under B: b1 -> rank 3; under A: a2 (2) then a1 (0.667)
    // b1 = 3/3 = 1, a2 = 2/3, a1 = 1/3: every child of B ranks above every child of A
    close(result.factorOf('B', 'b1'), 1, 'b1');
    close(result.factorOf('A', 'a2'), 2 / 3, 'a2');
    close(result.factorOf('A', 'a1'), 1 / 3, 'a1');
  });

  it('gives tied users the same rank (no usage: Level FS infinite)', () => {
    const r = computeFairShare(
      [{ name: 'A', parent: '', shares: 1, userShares: { x: 1, y: 1, z: 1 } }],
      new Map([['A/z', 5]]),
      'fair_tree',
    );
    // x and y tie at infinity -> both rank 3 (3/3 = 1); z has usage -> rank 1 (1/3)
    close(r.factorOf('A', 'x'), 1, 'x');
    close(r.factorOf('A', 'y'), 1, 'y');
    close(r.factorOf('A', 'z'), 1 / 3, 'z');
  });

  it('merges the children of tied accounts', () => {
    // A and B tie (no usage anywhere: Level FS infinite), so their users are merged and
    // sorted together; all four tie as well (infinite), so all share the top rank.
    const r = computeFairShare(
      [
        { name: 'A', parent: '', shares: 1, userShares: { a1: 1, a2: 1 } },
        { name: 'B', parent: '', shares: 1, userShares: { b1: 1, b2: 1 } },
      ],
      new Map(),
      'fair_tree',
    );
    // Every user ties (infinite Level FS): all rank 4 of 4 -> 1.0
    for (const [a, u] of [
      ['A', 'a1'],
      ['A', 'a2'],
      ['B', 'b1'],
      ['B', 'b2'],
    ] as const)
      close(r.factorOf(a, u), 1, `${a}/${u}`);
  });

  it('follows nested accounts', () => {
    // root ─ P (1) ─ P1 (1) ─ u (1);  root ─ Q (1) ─ v (1); usage u = 10, v = 30
    // root level: P: (1/2)/(10/40) = 2; Q: (1/2)/(30/40) = 0.6667 -> u ranks above v
    const r = computeFairShare(
      [
        { name: 'P', parent: '', shares: 1, userShares: {} },
        { name: 'P1', parent: 'P', shares: 1, userShares: { u: 1 } },
        { name: 'Q', parent: '', shares: 1, userShares: { v: 1 } },
      ],
      new Map([
        ['P1/u', 10],
        ['Q/v', 30],
      ]),
      'fair_tree',
    );
    close(r.factorOf('P1', 'u'), 1, 'u');
    close(r.factorOf('Q', 'v'), 0.5, 'v');
  });
});

describe('usage', () => {
  it('decays with the half-life and adds billing', () => {
    // 4 CPUs, 8 GiB, 1 GPU with weights cpu 1, mem 0.25/GiB, gpu 10: 4 + 2 + 10 = 16 per second
    assert.equal(billing(cpus(4, 8, 1), { cpu: 1, memGiB: 0.25, gpu: 10 }), 16);
    close(decayFactor(3600_000, 3600_000), 0.5, 'one half-life');
    const u = new Map([['A/a', 100]]);
    // one half-life later: 100 * 0.5 + 16/s * 3600 s = 50 + 57600
    accrueUsage(u, 3600_000, 3600_000, [{ account: 'A', user: 'a', rate: 16 }]);
    close(u.get('A/a')!, 57650, 'usage');
  });
});
