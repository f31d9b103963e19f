// Seeded random sequences of claim changes, for the tests that check what is kept incrementally
// (sums, queue, node views) against what is recomputed from every claim.
import { ClaimState } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import type { ClaimRecord } from '../../src/domain/model';
import { claim, cpus } from './helpers';

/** mulberry32: a small seeded generator, so a failure can be replayed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STATES = [ClaimState.PENDING, ClaimState.PLACED, ClaimState.RUNNING, ClaimState.REQUEUED, ClaimState.ENDED, ClaimState.CANCELLED];

/** A random claim change: a new claim, a state change, a preemption notice, or a delete. */
export function randomStep(
  random: () => number,
  claims: Map<string, ClaimRecord>,
  n: number,
): { id: string; after: ClaimRecord | undefined } {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
  const ids = [...claims.keys()];
  const r = random();
  if (ids.length === 0 || r < 0.3) {
    const id = `c${n}`;
    return {
      id,
      after: claim(id, {
        project: pick(['a', 'b', 'c']),
        user: pick(['u', 'v']),
        res: cpus(pick([1, 2, 4]), pick([1, 3])),
        preemptible: random() < 0.3,
        group: pick(['', '', 'g1', 'g2']),
        partition: pick(['', 'gpu']),
        submitTime: Math.floor(random() * 1000),
        qos: pick(['', 'high']),
      }),
    };
  }
  const id = pick(ids);
  const before = claims.get(id)!;
  if (r < 0.35) return { id, after: undefined };
  if (r < 0.45) return { id, after: { ...before, preemptedBy: before.preemptedBy ? '' : 'x' } };
  if (r < 0.5) return { id, after: { ...before, reservedNode: before.reservedNode ? '' : 'n1' } };
  const state = pick(STATES);
  return {
    id,
    after: {
      ...before,
      state,
      node: state === ClaimState.PLACED || state === ClaimState.RUNNING ? pick(['n1', 'n2', 'n3', 'gone']) : before.node,
    },
  };
}
