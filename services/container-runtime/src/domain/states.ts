// Instance states: what an action needs, and what ends an instance's life.
import { failedPrecondition } from '@lapis/platform/errors';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';

export const stateName = (state: InstanceState) => InstanceState[state] ?? String(state);

/** States after which the instance holds nothing on the node. */
export const TERMINAL = new Set([InstanceState.DELETED, InstanceState.PREEMPTED]);
/** States that hold room on the node (the scheduler counts them). */
export const HOLDS_ROOM = new Set([InstanceState.CREATING, InstanceState.RUNNING, InstanceState.STOPPED, InstanceState.SUSPENDED]);

/**
 * Nothing of the instance is left on the node: deleted, preempted, or failed without a
 * workload. Its id may be taken again by a later attempt, its host ports by other instances.
 */
export const isGone = (instance: { state: InstanceState; backendId: string }) =>
  TERMINAL.has(instance.state) || (instance.state === InstanceState.ERROR && !instance.backendId);

export function requireState(action: string, id: string, state: InstanceState, allowed: InstanceState[]): void {
  if (!allowed.includes(state)) {
    throw failedPrecondition(
      `cannot ${action} instance ${id}: it is ${stateName(state)}; ${action} needs ${allowed.map(stateName).join(' or ')}`,
      'WRONG_STATE',
      { state: stateName(state) },
    );
  }
}
