// NATS for a Lapis service: one connection (reconnecting forever), the JetStream stream that
// holds every event, typed publish with de-duplication and trace context, durable consumers
// with explicit acks, and key-value buckets.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type TextMapGetter } from '@opentelemetry/api';
import { Event } from '@lapis/proto/lapis/events/v1/events';
import {
  AckPolicy,
  connect,
  ErrorCode,
  DeliverPolicy,
  nanos,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type KvOptions,
  type MsgHdrs,
  type NatsConnection,
  type NatsError,
} from 'nats';
import { KeyedLocks } from '../keyed-locks';
import type { Logger } from '../logging';
import { inboxPrefixOf } from './access';
import { isNatsTransient, throughFailover, watchJetStream } from './availability';
import { eventMessage, eventSubject } from './event-message';
import { subjectTemplate, type EventPayload } from './events';
import { Bucket, type Codec } from './kv';
import { countRedelivery, watchConnectionMetric, watchConsumer } from './nats-metrics';

const tracer = trace.getTracer('@lapis/platform');
const JETSTREAM_TIMEOUT_MS = 3_000;

const headerGetter: TextMapGetter<MsgHdrs | undefined> = {
  get: (carrier, key) => carrier?.get(key) || undefined,
  keys: (carrier) => carrier?.keys() ?? [],
};

/** Thrown by a handler: try this message again after `delayMs`. */
export class RetryLater extends Error {
  override name = 'RetryLater';
  constructor(
    message: string,
    readonly delayMs = 1_000,
  ) {
    super(message);
  }
}

/** Thrown by a handler: this message can never succeed; terminate it. */
export class PoisonMessage extends Error {
  override name = 'PoisonMessage';
}

export interface Delivery {
  subject: string;
  streamSequence: number;
  /** 1 on the first delivery. */
  deliveryCount: number;
  /** Tells the server the handler is still working, so the ack deadline moves on. */
  working(): void;
}

export interface ConsumerOptions {
  /** Durable name: a restarted service takes up where this consumer stopped. */
  durable: string;
  /** Filter subject, wildcards allowed (for example lapis.scheduler.claim_placed.node-1). */
  subject: string;
  handler: (event: Event, delivery: Delivery) => Promise<void>;
  /** Time a handler has before the message is delivered again (default 30 s). */
  ackWaitMs?: number;
  /** Deliveries before a failing message is terminated (default 10). */
  maxDeliver?: number;
  /** A new consumer starts at new messages instead of the whole stream. */
  deliverNew?: boolean;
  /**
   * Handles up to `limit` messages at once (default: one at a time). Messages whose `key` is
   * the same (for example one instance's events) are still handled one after the other, in
   * order; a message that waits for its key counts against the limit.
   */
  parallel?: { limit: number; key: (event: Event) => string };
}

export interface RunningConsumer {
  /** Stops taking messages; resolves when the one in hand is done. */
  stop(): Promise<void>;
}

export interface BusOptions {
  /** One server's URL, or a cluster's separated by commas. */
  url: string;
  /** Connection name, shown by the server: "<service>@<host>". */
  name: string;
  stream: string;
  log: Logger;
  /** Called when the connection goes down or comes back (health follows it). */
  onConnectionChange?: (up: boolean) => void;
  /** Called when JetStream stops or starts answering (a cluster without quorum is connected, yet takes no write). */
  onJetStreamChange?: (up: boolean) => void;
  /** Between two probes of JetStream, and how long one may take (default 2 s). */
  jetStreamProbeMs?: number;
  /**
   * Copies JetStream keeps of the event stream and of every bucket (3 on a three-server
   * cluster). Left out: 1 for what this connection creates; what exists keeps its own.
   */
  replicas?: number;
  /** This service's NATS user and password (nats/access.ts says what the user may do). */
  credentials?: { user: string; password: string };
  /** CA certificate file of the server's TLS certificate: TLS is required when set. */
  caFile?: string;
}

export class EventBus {
  private readonly consumers = new Set<RunningConsumer>();
  private readonly connectionMetric = watchConnectionMetric();
  private jetStreamWatch?: { stop(): void };

  /** Where replies to this connection go: per user, so that no other user can hear them. */
  readonly inboxPrefix: string;

  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    private readonly options: BusOptions,
  ) {
    this.inboxPrefix = options.credentials ? inboxPrefixOf(options.credentials.user) : '_INBOX';
  }

  static async connect(options: BusOptions): Promise<EventBus> {
    const nc = await connect({
      servers: options.url.split(',').map((u) => u.trim()),
      name: options.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      waitOnFirstConnect: true,
      ...(options.credentials
        ? { user: options.credentials.user, pass: options.credentials.password, inboxPrefix: inboxPrefixOf(options.credentials.user) }
        : {}),
      ...(options.caFile ? { tls: { caFile: options.caFile } } : {}),
    });
    // A request to a leader that is gone times out after 3 s, so that throughFailover has time
    // for another try at the one elected meanwhile.
    const bus = new EventBus(nc, nc.jetstream({ timeout: JETSTREAM_TIMEOUT_MS }), await nc.jetstreamManager(), options);
    void bus.watchConnection();
    await bus.ensureStream();
    options.onConnectionChange?.(true);
    if (options.onJetStreamChange) {
      const probeMs = options.jetStreamProbeMs ?? 2_000;
      const probe = await nc.jetstreamManager({ timeout: probeMs, checkAPI: false });
      bus.jetStreamWatch = watchJetStream(probe, { stream: options.stream, intervalMs: probeMs, onChange: options.onJetStreamChange });
    }
    return bus;
  }

  /**
   * Creates the event stream, or brings its settings up to date. A user without the right to
   * change them (a node agent) leaves a differing stream as it is for a service that has it.
   */
  async ensureStream(): Promise<void> {
    const config = {
      name: this.options.stream,
      subjects: ['lapis.>'],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: this.options.replicas ?? 1,
      // Publishers retrying the same fact within this window are de-duplicated by id.
      duplicate_window: nanos(2 * 60_000),
      max_age: nanos(7 * 24 * 3600_000),
    };
    const existing = await this.jsm.streams.info(config.name).catch(() => undefined);
    // Without `replicas` (a tool, a test) the stream keeps the copies the services gave it.
    if (existing && this.options.replicas === undefined) config.num_replicas = existing.config.num_replicas;
    if (!existing) {
      await this.jsm.streams.add(config);
      return;
    }
    const have = existing.config;
    const same =
      (have.subjects ?? []).join() === config.subjects.join() &&
      have.retention === config.retention &&
      have.storage === config.storage &&
      have.num_replicas === config.num_replicas &&
      have.duplicate_window === config.duplicate_window &&
      have.max_age === config.max_age;
    if (same) return;
    try {
      await this.jsm.streams.update(config.name, config);
    } catch (error) {
      if ((error as NatsError).code !== ErrorCode.PermissionsViolation) throw error;
      this.options.log.warn({ stream: config.name }, 'the event stream has other settings, and this user may not change them');
    }
  }

  /**
   * Publishes one event. `id` must name the fact (the same fact retried keeps its id, so the
   * stream drops the copy); a new random one is made when it is left out.
   */
  async publish(payload: EventPayload, key: string, id: string = randomUUID()): Promise<{ seq: number; duplicate: boolean }> {
    const subject = eventSubject(payload.$case, key);
    const template = subjectTemplate(subject);
    return tracer.startActiveSpan(
      `send ${template}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          'messaging.system': 'nats',
          'messaging.operation.type': 'send',
          'messaging.destination.name': subject,
          'messaging.destination.template': template,
          'messaging.message.id': id,
        },
      },
      async (span) => {
        try {
          const message = eventMessage(payload, key, id, this.options.name);
          // The stream drops a second copy by its id: retried while a leader is elected.
          const ack = await throughFailover(
            () => this.js.publish(message.subject, message.data, { headers: message.headers }),
            isNatsTransient,
          );
          if (ack.duplicate) this.options.log.debug({ subject, id }, 'duplicate event dropped by the stream');
          return { seq: ack.seq, duplicate: ack.duplicate };
        } catch (error) {
          span.recordException(error as Error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
          throw error;
        } finally {
          span.end();
        }
      },
    );
  }

  /** Runs a durable consumer until stopped: one message at a time, in order, unless `parallel` says otherwise. */
  async consume(options: ConsumerOptions): Promise<RunningConsumer> {
    const stream = this.options.stream;
    const config = {
      durable_name: options.durable,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(options.ackWaitMs ?? 30_000),
      max_deliver: options.maxDeliver ?? 10,
      filter_subject: options.subject,
      deliver_policy: options.deliverNew ? DeliverPolicy.New : DeliverPolicy.All,
    };
    const existing = await this.jsm.consumers.info(stream, options.durable).catch(() => undefined);
    if (!existing) await this.jsm.consumers.add(stream, config);
    else if (existing.config.filter_subject !== options.subject) {
      throw new Error(`consumer ${options.durable} exists with subject ${existing.config.filter_subject}, not ${options.subject}`);
    } else {
      await this.jsm.consumers.update(stream, options.durable, { ack_wait: config.ack_wait, max_deliver: config.max_deliver });
    }
    const consumer = await this.js.consumers.get(stream, options.durable);
    // Pulls that expire after 5 s (heartbeats every 2.5 s): when a cluster server goes away with
    // the consumer's leader, missed heartbeats make the client pull again within seconds.
    const messages: ConsumerMessages = await consumer.consume({ max_messages: 64, expires: 5_000 });
    const unwatch = watchConsumer(options.durable, consumer);
    const log = this.options.log.child({ consumer: options.durable });
    const loop = (
      options.parallel ? this.handleInParallel(messages, options, options.parallel, log) : this.handleInOrder(messages, options, log)
    ).catch((error) => log.error({ err: error }, 'consumer stopped on an error'));
    const running: RunningConsumer = {
      stop: async () => {
        this.consumers.delete(running);
        unwatch();
        messages.stop();
        await loop;
      },
    };
    this.consumers.add(running);
    return running;
  }

  private async handleInOrder(messages: ConsumerMessages, options: ConsumerOptions, log: Logger): Promise<void> {
    for await (const message of messages) await this.handle(message, options, log);
  }

  private async handleInParallel(
    messages: ConsumerMessages,
    options: ConsumerOptions,
    parallel: NonNullable<ConsumerOptions['parallel']>,
    log: Logger,
  ): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    // A message waits for the ones of its key taken before it.
    const keys = new KeyedLocks();
    for await (const message of messages) {
      while (inFlight.size >= parallel.limit) await Promise.race(inFlight);
      let key: string;
      try {
        key = parallel.key(decodeEvent(message.data));
      } catch {
        key = message.subject; // undecodable: handle() terminates it, in its subject's order
      }
      const run = keys
        .with([key], () => this.handle(message, options, log))
        .catch((error) => log.error({ err: error, subject: message.subject }, 'message handling failed'));
      inFlight.add(run);
      void run.finally(() => inFlight.delete(run));
    }
    await Promise.all(inFlight);
  }

  private async handle(message: JsMsg, options: ConsumerOptions, log: Logger): Promise<void> {
    const template = subjectTemplate(message.subject);
    const parent = propagation.extract(ROOT_CONTEXT, message.headers, headerGetter);
    const producer = trace.getSpanContext(parent);
    const span = tracer.startSpan(
      `process ${template}`,
      {
        kind: SpanKind.CONSUMER,
        links: producer ? [{ context: producer }] : [],
        attributes: {
          'messaging.system': 'nats',
          'messaging.operation.type': 'process',
          'messaging.destination.name': message.subject,
          'messaging.destination.template': template,
          'messaging.consumer.group.name': options.durable,
          'messaging.message.id': message.headers?.get('Nats-Msg-Id') ?? '',
        },
      },
      parent,
    );
    await context.with(trace.setSpan(parent, span), async () => {
      const delivery: Delivery = {
        subject: message.subject,
        streamSequence: message.seq,
        deliveryCount: message.info.redeliveryCount,
        working: () => message.working(),
      };
      const maxDeliver = options.maxDeliver ?? 10;
      if (delivery.deliveryCount > 1) countRedelivery(options.durable);
      try {
        const event = decodeEvent(message.data);
        if (!event.payload) {
          // A kind of event newer than this service: not for it.
          log.warn({ subject: message.subject, id: event.id }, 'event of an unknown kind skipped');
        } else {
          await options.handler(event, delivery);
        }
        message.ack();
      } catch (error) {
        span.recordException(error as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
        const fields = { subject: message.subject, seq: message.seq, delivery: delivery.deliveryCount, err: error };
        if (error instanceof PoisonMessage) {
          log.error(fields, 'poison message terminated');
          // No reason on the wire: servers before 2.10 ignore a "+TERM <reason>" they cannot parse.
          message.term();
        } else if (delivery.deliveryCount >= maxDeliver) {
          log.error(fields, `message failed ${maxDeliver} times, terminated`);
          message.term();
        } else {
          const delayMs = error instanceof RetryLater ? error.delayMs : Math.min(30_000, 250 * 2 ** delivery.deliveryCount);
          log.warn({ ...fields, delayMs }, 'message will be retried');
          message.nak(delayMs);
        }
      } finally {
        span.end();
      }
    });
  }

  /** Opens (creating when needed) a key-value bucket of one message type. */
  async bucket<T>(name: string, codec: Codec<T>, options: Partial<KvOptions> = {}): Promise<Bucket<T>> {
    const replicas = options.replicas ?? this.options.replicas;
    const kv = await this.js.views.kv(name, { history: 1, ...options, replicas: replicas ?? 1 });
    if (replicas !== undefined) await this.keepReplicas(`KV_${name}`, replicas);
    return new Bucket(name, kv, codec);
  }

  /** A bucket made before the site had a cluster gets the copies asked for now. */
  private async keepReplicas(stream: string, replicas: number): Promise<void> {
    const info = await this.jsm.streams.info(stream);
    if (info.config.num_replicas === replicas) return;
    try {
      await this.jsm.streams.update(stream, { ...info.config, num_replicas: replicas });
      this.options.log.info({ stream, replicas }, 'bucket replicas changed');
    } catch (error) {
      if ((error as NatsError).code !== ErrorCode.PermissionsViolation) throw error;
      this.options.log.warn({ stream, replicas }, 'the bucket has other replicas, and this user may not change them');
    }
  }

  /** Stops the consumers, lets pending publishes finish and closes the connection. */
  async drain(): Promise<void> {
    this.jetStreamWatch?.stop();
    await Promise.all([...this.consumers].map((c) => c.stop()));
    if (!this.nc.isClosed()) await this.nc.drain();
    this.connectionMetric.forget();
  }

  private async watchConnection(): Promise<void> {
    for await (const change of this.nc.status()) {
      if (change.type !== 'disconnect' && change.type !== 'reconnect') continue;
      const up = change.type === 'reconnect';
      this.connectionMetric.set(up);
      this.options.onConnectionChange?.(up);
    }
  }
}

/** Bytes that do not decode to an event with an id are poison: no retry can fix them. */
export function decodeEvent(data: Uint8Array): Event {
  let event: Event;
  try {
    event = Event.decode(data);
  } catch (error) {
    throw new PoisonMessage(`not a lapis.events.v1.Event: ${(error as Error).message}`);
  }
  if (!event.id) throw new PoisonMessage('event without an id');
  return event;
}

export function defaultBusName(service: string): string {
  return `${service}@${hostname()}`;
}
