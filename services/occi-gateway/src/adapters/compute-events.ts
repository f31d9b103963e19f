// Claims and instances announce their changes; the gateway drops what it keeps of the computes
// they are about. A plain subscription is enough: a restarted gateway starts with nothing kept.
// One subscription per kind of event it hears: its NATS user may subscribe to no other.
import { decodeEvent, eventSubjects, occiListens, type EventBus } from '@lapis/platform';
import type { Event } from '@lapis/proto/lapis/events/v1/events';

/** The compute an event is about, if it is about one. */
export function changedCompute(event: Event): string | undefined {
  const payload = event.payload;
  switch (payload?.$case) {
    case 'instanceStateChanged':
      return payload.instanceStateChanged.instanceId;
    case 'claimPlaced':
      return payload.claimPlaced.claimId;
    case 'claimCancelled':
      return payload.claimCancelled.claimId;
    case 'preemptionNotice':
      return payload.preemptionNotice.instanceId;
    case 'volumeStateChanged':
      return payload.volumeStateChanged.instanceId || undefined;
    default:
      return undefined;
  }
}

/** Calls `changed` with the id of every compute an event says changed; returns the unsubscribe. */
export function followComputeChanges(bus: EventBus, changed: (id: string) => void): () => void {
  const subscriptions = occiListens.map((kind) =>
    bus.nc.subscribe(`${eventSubjects[kind]}.*`, {
      callback: (error, message) => {
        if (error) return;
        try {
          const id = changedCompute(decodeEvent(message.data));
          if (id) changed(id);
        } catch {
          // not an event: nothing to drop
        }
      },
    }),
  );
  return () => {
    for (const s of subscriptions) s.unsubscribe();
  };
}
