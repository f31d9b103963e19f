// A lost node's instances: what becomes of the claims placed or running on a node that stopped
// sending heartbeats. Each follows its restart policy: one that restarts on failure is queued
// again (placed elsewhere under the next attempt number, which lets that node take the instance
// over), any other ends, lost with its node. Pure.
import { ClaimState, PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { isActive, type ClaimRecord } from './model';

/** A node silent this long is lost, never sooner than it is down (three heartbeats). */
export const lostAfter = (configuredMs: number, downAfterMs: number) => (configuredMs > 0 ? Math.max(configuredMs, downAfterMs) : 0);

/** The claim once its node `node` is lost, or undefined when the loss does not concern it. */
export function afterNodeLost(c: ClaimRecord, node: string, now: number): ClaimRecord | undefined {
  if (!isActive(c) || c.node !== node) return undefined;
  if (c.spec.restartOnFailure) {
    return {
      ...c,
      state: ClaimState.REQUEUED,
      node: '',
      preemptedBy: '',
      reservedNode: '',
      victims: [],
      reason: PendingReason.PRIORITY,
      detail: `requeued: node ${node} was lost`,
    };
  }
  return { ...c, state: ClaimState.ENDED, endTime: now, preemptedBy: '', detail: `ended: lost with node ${node}` };
}
