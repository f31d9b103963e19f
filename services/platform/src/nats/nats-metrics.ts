// What a service's NATS looks like from the inside, as metrics: whether the connection is up,
// how far behind each durable consumer is (asked of the server in the background, at most every
// second, so a stuck consumer shows its backlog growing and a scrape never waits for NATS), redeliveries, and key-value compare-and-set conflicts.
// Labels are the consumer's durable name and the bucket's name: chosen by the services, not by
// tenants (a node agent's durable carries its node name, bounded by the site's nodes).
import type { Counter } from '@opentelemetry/api';
import type { Consumer, ConsumerInfo } from 'nats';
import { lastKnown, platformMeter } from '../telemetry/metrics';

interface NatsInstruments {
  redeliveries: Counter;
  conflicts: Counter;
}

let instruments: NatsInstruments | undefined;
/** Each consumer's last info from the server (asked again at most every second, never waited for). */
const consumers = new Map<string, { info: () => ConsumerInfo | undefined }>();
const connections = new Set<{ up: boolean }>();

// Made on first use, after telemetry has started (see rpc-metrics.ts).
function natsInstruments(): NatsInstruments {
  if (instruments) return instruments;
  const meter = platformMeter();
  meter
    .createObservableGauge('lapis.nats.connected', { description: '1 while the NATS connection is up, 0 while it is down' })
    .addCallback((result) => {
      for (const connection of connections) result.observe(connection.up ? 1 : 0);
    });
  const pending = meter.createObservableGauge('lapis.nats.consumer.pending', {
    unit: '{message}',
    description: 'messages of a durable consumer not yet delivered',
  });
  const ackPending = meter.createObservableGauge('lapis.nats.consumer.ack_pending', {
    unit: '{message}',
    description: 'messages of a durable consumer delivered and not yet acknowledged',
  });
  meter.addBatchObservableCallback(
    (result) => {
      for (const [durable, watched] of consumers) {
        const info = watched.info();
        if (!info) continue;
        const labels = { 'messaging.consumer.group.name': durable };
        result.observe(pending, info.num_pending, labels);
        result.observe(ackPending, info.num_ack_pending, labels);
      }
    },
    [pending, ackPending],
  );
  instruments = {
    redeliveries: meter.createCounter('lapis.nats.consumer.redeliveries', {
      unit: '{message}',
      description: 'messages handed to a consumer again (a handler failed, asked to retry, or ran past its ack wait)',
    }),
    conflicts: meter.createCounter('lapis.nats.kv.conflicts', {
      unit: '{conflict}',
      description: 'key-value writes refused because another writer changed the entry first (compare-and-set)',
    }),
  };
  return instruments;
}

/** Follows a connection's state until `forget` is called. */
export function watchConnectionMetric(): { set(up: boolean): void; forget(): void } {
  const state = { up: true };
  natsInstruments();
  connections.add(state);
  return {
    set: (up) => {
      state.up = up;
    },
    forget: () => connections.delete(state),
  };
}

/** Reports a durable consumer's backlog until the returned function is called. */
export function watchConsumer(durable: string, consumer: Consumer): () => void {
  natsInstruments();
  consumers.set(durable, { info: lastKnown(() => consumer.info()) });
  return () => consumers.delete(durable);
}

export function countRedelivery(durable: string): void {
  natsInstruments().redeliveries.add(1, { 'messaging.consumer.group.name': durable });
}

export function countConflict(bucket: string): void {
  natsInstruments().conflicts.add(1, { 'lapis.kv.bucket': bucket });
}
