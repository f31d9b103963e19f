// An event as it goes on the stream, made in one place for both ways of sending it (the
// bus's publish, and the scheduler's pipelined writer on its placement path): its subject,
// the encoded lapis.events.v1.Event, and the headers: Nats-Msg-Id (the stream drops a copy
// of a fact it has) and the trace context of the active span.
import { context, propagation, type TextMapSetter } from '@opentelemetry/api';
import { Event } from '@lapis/proto/lapis/events/v1/events';
import { headers, type MsgHdrs } from 'nats';
import { Code, LapisError } from '../errors';
import { subjectFor, type EventKind, type EventPayload } from './events';

const MAX_SUBJECT_LENGTH = 1024;
const headerSetter: TextMapSetter<MsgHdrs> = { set: (carrier, key, value) => carrier.set(key, value) };

export interface EventMessage {
  subject: string;
  data: Uint8Array;
  headers: MsgHdrs;
}

/** The subject of an event of `kind` under `key`; a key too long for one is refused. */
export function eventSubject(kind: EventKind, key: string): string {
  const subject = subjectFor(kind, key);
  // Far below the 4 KiB control line over which NATS drops the whole connection.
  if (subject.length > MAX_SUBJECT_LENGTH) {
    throw new LapisError(
      Code.INVALID_ARGUMENT,
      `the event key ${JSON.stringify(`${key.slice(0, 64)}…`)} is too long for a subject (at most ${MAX_SUBJECT_LENGTH} characters)`,
      'INVALID_SUBJECT',
    );
  }
  return subject;
}

/** The event `id` (naming the fact) with `payload`, from `source`, under `key`. */
export function eventMessage(payload: EventPayload, key: string, id: string, source: string): EventMessage {
  const subject = eventSubject(payload.$case, key);
  const hdrs = headers();
  hdrs.set('Nats-Msg-Id', id);
  propagation.inject(context.active(), hdrs, headerSetter);
  const event: Event = { id, time: new Date(), source, payload };
  return { subject, data: Event.encode(event).finish(), headers: hdrs };
}
