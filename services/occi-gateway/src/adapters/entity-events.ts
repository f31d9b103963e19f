// Claims, instances, volumes and networks announce their changes; the gateway marks what it
// keeps of the entities they are about as changed (application/entity-views.ts). A plain
// subscription is enough: a restarted gateway starts with no view at all. One subscription per
// kind of event it hears: its NATS user may subscribe to no other.
import { decodeEvent, eventSubjects, occiListens, type EventBus } from '@lapis/platform';
import type { Event } from '@lapis/proto/lapis/events/v1/events';
import type { EntityKind } from '../domain/model';

/** One changed entity of a project's, or (without `id`) a whole collection that may have changed. */
export interface EntityChange {
  project: string;
  kind: EntityKind;
  id?: string;
}

/** What an event says changed. */
export function changedEntities(event: Event): EntityChange[] {
  const payload = event.payload;
  switch (payload?.$case) {
    case 'instanceStateChanged': {
      const { instanceId, project } = payload.instanceStateChanged;
      // Networks and network interfaces are read from the instances' addresses.
      return [
        { project, kind: 'compute', id: instanceId },
        { project, kind: 'network' },
        { project, kind: 'networkinterface' },
      ];
    }
    case 'claimPlaced':
      return [{ project: payload.claimPlaced.project, kind: 'compute', id: payload.claimPlaced.claimId }];
    case 'claimCancelled':
      return [{ project: payload.claimCancelled.project, kind: 'compute', id: payload.claimCancelled.claimId }];
    case 'preemptionNotice':
      return [{ project: payload.preemptionNotice.project, kind: 'compute', id: payload.preemptionNotice.instanceId }];
    case 'volumeStateChanged': {
      const { volumeId, project, instanceId } = payload.volumeStateChanged;
      const changes: EntityChange[] = [
        { project, kind: 'storage', id: volumeId },
        { project, kind: 'storagelink' },
      ];
      // A compute shows its storage links.
      if (instanceId) changes.push({ project, kind: 'compute', id: instanceId });
      return changes;
    }
    case 'networkStateChanged': {
      const { project, instanceId } = payload.networkStateChanged;
      // A network made, deleted, or a compute connected or disconnected: its interfaces show on the compute.
      const changes: EntityChange[] = [
        { project, kind: 'network' },
        { project, kind: 'networkinterface' },
      ];
      if (instanceId) changes.push({ project, kind: 'compute', id: instanceId });
      return changes;
    }
    default:
      return [];
  }
}

/** Calls `changed` for every change an event announces; returns the unsubscribe. */
export function followEntityChanges(bus: EventBus, changed: (change: EntityChange) => void): () => void {
  const subscriptions = occiListens.map((kind) =>
    bus.nc.subscribe(`${eventSubjects[kind]}.*`, {
      callback: (error, message) => {
        if (error) return;
        let changes: EntityChange[];
        try {
          changes = changedEntities(decodeEvent(message.data));
        } catch {
          return; // not an event: nothing changed
        }
        for (const change of changes) changed(change);
      },
    }),
  );
  return () => {
    for (const s of subscriptions) s.unsubscribe();
  };
}
