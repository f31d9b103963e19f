// The event catalogue: where each kind of event is published. The subject of an event is
// lapis.<service>.<event>.<key>; the key (a node, an instance id...) lets a consumer filter
// what is its own, for example a node's agent takes only lapis.scheduler.claim_placed.<node>.
import type { Event } from '@lapis/proto/lapis/events/v1/events';

export type EventPayload = NonNullable<Event['payload']>;
export type EventKind = EventPayload['$case'];

/** Subject templates, one per event kind. TypeScript insists every kind is here. */
export const eventSubjects: Readonly<Record<EventKind, string>> = {
  claimPlaced: 'lapis.scheduler.claim_placed',
  claimCancelled: 'lapis.scheduler.claim_cancelled',
  preemptionNotice: 'lapis.scheduler.preemption_notice',
  nodeMoved: 'lapis.scheduler.node_moved',
  instanceStateChanged: 'lapis.runtime.instance_state_changed',
  volumeStateChanged: 'lapis.runtime.volume_state_changed',
  networkStateChanged: 'lapis.runtime.network_state_changed',
  nodeHeartbeat: 'lapis.runtime.node_heartbeat',
  imageSynced: 'lapis.images.image_synced',
  imageRemoved: 'lapis.images.image_removed',
  deploymentStateChanged: 'lapis.tosca.deployment_state_changed',
};

/** The services that talk over NATS (their NATS users are named after them). */
export type NatsServiceName = 'container-runtime' | 'image-sync' | 'scheduler' | 'tosca-orchestrator' | 'occi-gateway';

/**
 * The one service that publishes each kind of event. NATS permissions are made from this
 * (nats/access.ts): only the scheduler may publish a placement.
 */
export const eventPublisher: Readonly<Record<EventKind, NatsServiceName>> = {
  claimPlaced: 'scheduler',
  claimCancelled: 'scheduler',
  preemptionNotice: 'scheduler',
  nodeMoved: 'scheduler',
  instanceStateChanged: 'container-runtime',
  volumeStateChanged: 'container-runtime',
  networkStateChanged: 'container-runtime',
  nodeHeartbeat: 'container-runtime',
  imageSynced: 'image-sync',
  imageRemoved: 'image-sync',
  deploymentStateChanged: 'tosca-orchestrator',
};

/** A key as one subject token: the characters NATS gives meaning to are escaped. */
export function subjectToken(key: string): string {
  if (key === '') throw new Error('an event key must not be empty');
  return encodeURIComponent(key).replace(/[.*]/g, (c) => (c === '.' ? '%2E' : '%2A'));
}

export function subjectFor(kind: EventKind, key: string): string {
  return `${eventSubjects[kind]}.${subjectToken(key)}`;
}

/** The template of a subject (its key dropped), for span names and logs. */
export function subjectTemplate(subject: string): string {
  return subject.split('.').slice(0, 3).join('.');
}
