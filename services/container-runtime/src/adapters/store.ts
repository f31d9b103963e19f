// The agent's state in JetStream key-value buckets, changed with compare-and-set.
import type { Bucket, EventBus } from '@lapis/platform';
import { Instance, Node, Volume } from '@lapis/proto/lapis/runtime/v1/runtime';

const text = {
  encode: (value: string) => ({ finish: () => Buffer.from(value) }),
  decode: (bytes: Uint8Array) => Buffer.from(bytes).toString(),
};

export interface Store {
  instances: Bucket<Instance>;
  volumes: Bucket<Volume>;
  nodes: Bucket<Node>;
  /** Idempotency keys of mutations: "<method>.<project>.<request id hash>" -> the resource id. */
  requests: Bucket<string>;
}

export async function openStore(bus: EventBus): Promise<Store> {
  const [instances, volumes, nodes, requests] = await Promise.all([
    bus.bucket('runtime-instances', Instance),
    bus.bucket('runtime-volumes', Volume),
    bus.bucket('runtime-nodes', Node),
    bus.bucket('runtime-requests', text, { ttl: 24 * 3600_000 }),
  ]);
  return { instances, volumes, nodes, requests };
}

/**
 * A bucket's entries kept in memory by a watch, so listing does not read every key. Writes
 * made here are noted at once (read-your-writes); others' writes arrive through the watch.
 */
export class WatchedIndex<T> {
  private readonly entries = new Map<string, { value: T; revision: number }>();
  private watch?: { stop(): void };

  constructor(
    private readonly bucket: Bucket<T>,
    private readonly decode: (bytes: Uint8Array) => T,
  ) {}

  async start(): Promise<void> {
    let ready!: () => void;
    const initialized = new Promise<void>((resolve) => (ready = resolve));
    const iterator = await this.bucket.kv.watch({ key: '>', initializedFn: () => ready() });
    this.watch = iterator;
    void (async () => {
      for await (const entry of iterator) {
        if (entry.operation === 'PUT') this.note(entry.key, this.decode(entry.value), entry.revision);
        else {
          const current = this.entries.get(entry.key);
          if (!current || current.revision < entry.revision) this.entries.delete(entry.key);
        }
      }
    })();
    await Promise.race([initialized, new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
  }

  note(key: string, value: T, revision: number): void {
    const current = this.entries.get(key);
    if (!current || current.revision <= revision) this.entries.set(key, { value, revision });
  }

  values(): T[] {
    return [...this.entries.values()].map((e) => e.value);
  }

  stop(): void {
    this.watch?.stop();
  }
}
