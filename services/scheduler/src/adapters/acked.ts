// Pipelined JetStream writes for the placement path. The platform's Bucket.update and
// EventBus.publish are request/reply calls, and nats.js makes (and throws away) an Error with
// a stack for every request it completes; at thousands of placements a second that is the
// largest cost on the client. Here every write is a plain publish whose reply subject is one
// wildcard inbox this class subscribes to once; the JetStream acknowledgement (or its error)
// settles the write. Semantics are the same: a write counts only once the stream has stored
// it, a key write is a compare-and-set on the subject's last sequence, an event is the
// platform's eventMessage, as EventBus.publish sends it (Nats-Msg-Id, trace context).
import { defaultBusName, eventMessage, RevisionConflict, type EventPayload } from '@lapis/platform';
import { createInbox, headers, type MsgHdrs, type NatsConnection, type Subscription } from 'nats';

const decoder = new TextDecoder();
const WRONG_LAST_SEQUENCE = 10071;

export interface Ack {
  stream: string;
  seq: number;
  duplicate?: boolean;
}

interface Waiting {
  resolve: (ack: Ack) => void;
  reject: (error: Error) => void;
  at: number;
  what: string;
}

export class AckedWriter {
  private readonly inbox: string;
  private next = 0;
  private readonly waiting = new Map<number, Waiting>();
  private readonly sub: Subscription;
  private readonly sweeper: NodeJS.Timeout;
  private readonly source: string;

  constructor(
    private readonly nc: NatsConnection,
    service: string,
    private readonly timeoutMs = 10_000,
    // The connection's own inbox prefix: with NATS users, a user may hear only its own replies.
    inboxPrefix?: string,
  ) {
    this.inbox = createInbox(inboxPrefix);
    this.source = defaultBusName(service);
    this.sub = nc.subscribe(`${this.inbox}.*`, {
      callback: (error, msg) => (error ? undefined : this.settle(msg.subject, msg.data, msg.headers)),
    });
    this.sweeper = setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
  }

  /** Compare-and-set of a key-value entry: stored only if the key is still at `revision`. */
  async update(bucket: string, key: string, value: Uint8Array, revision: number): Promise<number> {
    const h = headers();
    h.set('Nats-Expected-Last-Subject-Sequence', String(revision));
    try {
      return (await this.send(`$KV.${bucket}.${key}`, value, h, `${bucket}/${key}`)).seq;
    } catch (error) {
      if ((error as { errCode?: number }).errCode === WRONG_LAST_SEQUENCE)
        throw new RevisionConflict(`${bucket}/${key} was changed by another writer`);
      throw error;
    }
  }

  /** Publishes one event on the stream: the same message as EventBus.publish sends. */
  async publish(payload: EventPayload, key: string, id: string): Promise<{ seq: number; duplicate: boolean }> {
    const message = eventMessage(payload, key, id, this.source);
    const ack = await this.send(message.subject, message.data, message.headers, message.subject);
    return { seq: ack.seq, duplicate: ack.duplicate === true };
  }

  close(): void {
    clearInterval(this.sweeper);
    this.sub.unsubscribe();
    for (const w of this.waiting.values()) w.reject(new Error(`${w.what}: writer closed before the stream answered`));
    this.waiting.clear();
  }

  private send(subject: string, data: Uint8Array, h: MsgHdrs, what: string): Promise<Ack> {
    const id = ++this.next;
    return new Promise<Ack>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, at: Date.now(), what });
      try {
        this.nc.publish(subject, data, { reply: `${this.inbox}.${id}`, headers: h });
      } catch (error) {
        this.waiting.delete(id);
        reject(error as Error);
      }
    });
  }

  private settle(subject: string, data: Uint8Array, h: MsgHdrs | undefined): void {
    const id = Number(subject.slice(this.inbox.length + 1));
    const w = this.waiting.get(id);
    if (!w) return;
    this.waiting.delete(id);
    if (h?.hasError) return w.reject(new Error(`${w.what}: ${h.code} ${h.description || 'no JetStream stream answered'}`));
    let body: Ack & { error?: { code: number; err_code?: number; description?: string } };
    try {
      body = JSON.parse(decoder.decode(data));
    } catch {
      return w.reject(new Error(`${w.what}: unreadable acknowledgement`));
    }
    if (body.error) {
      const error = new Error(`${w.what}: ${body.error.description ?? 'rejected'} (${body.error.err_code ?? body.error.code})`);
      (error as { errCode?: number }).errCode = body.error.err_code;
      return w.reject(error);
    }
    w.resolve(body);
  }

  private sweep(): void {
    const deadline = Date.now() - this.timeoutMs;
    for (const [id, w] of this.waiting) {
      if (w.at > deadline) continue;
      this.waiting.delete(id);
      w.reject(new Error(`${w.what}: no acknowledgement within ${this.timeoutMs} ms`));
    }
  }
}

/**
 * Every KV write and publish is a request; by default nats.js captures a stack trace for each
 * (an Error per request), which costs more than the rest of a placement on the client. The
 * platform's connect takes no options, so the scheduler turns it off on its connection (errors
 * keep their messages, without the caller's async stack).
 */
export function skipAsyncTraces(nc: NatsConnection): void {
  const protocol = (nc as unknown as { protocol?: { options?: { noAsyncTraces?: boolean } } }).protocol;
  if (protocol?.options) protocol.options.noAsyncTraces = true;
}
