// Typed key-value state on JetStream. Changes go through compare-and-set on the entry's
// revision, so two writers can never silently overwrite each other.
import { type KV, type KvEntry, KvWatchInclude, type NatsError } from 'nats';
import { Code, LapisError } from '../errors';
import { forEachConcurrently } from '../concurrently';
import { withRetries } from '../retry';
import { countConflict } from './nats-metrics';
import { isNatsTransient, isNotDelivered, throughFailover } from './availability';

export interface Codec<T> {
  encode(value: T): { finish(): Uint8Array };
  decode(bytes: Uint8Array): T;
}

export interface Versioned<T> {
  value: T;
  revision: number;
}

/** Another writer changed the entry since it was read. */
export class RevisionConflict extends Error {
  override name = 'RevisionConflict';
}

const WRONG_LAST_SEQUENCE = 10071;

function isConflict(error: unknown): boolean {
  const api = (error as NatsError).api_error;
  return api?.err_code === WRONG_LAST_SEQUENCE || /wrong last sequence/i.test(String((error as Error).message));
}

// What NATS takes as a key: nats.js's own rule (it throws a bare "invalid key" otherwise),
// and a length far below the 4 KiB control line over which the server drops the connection
// (every caller of the service would see it go).
const KEY = /^[-/=.\w]+$/;
const FILTER = /^[-/=.\w*>]+$/;
export const MAX_KEY_LENGTH = 1024;

/** Why NATS would refuse `key` (a filter when `wildcards`), or '' when it would not. */
export function keyProblem(key: string, wildcards = false): string {
  if (key.length > MAX_KEY_LENGTH) return `longer than ${MAX_KEY_LENGTH} characters`;
  if (!(wildcards ? FILTER : KEY).test(key)) return 'empty, or a character other than letters, digits, "-", "/", "=", "." and "_"';
  if (key.startsWith('.') || key.endsWith('.') || key.includes('..')) return 'an empty token (a leading or trailing "." or "..")';
  return '';
}

/** Reads of a listing in flight at once: a bucket of thousands is read in round trips of 32. */
const LIST_READS = 32;

export class Bucket<T> {
  constructor(
    readonly name: string,
    readonly kv: KV,
    private readonly codec: Codec<T>,
  ) {}

  /** Undefined when absent; a key NATS would refuse names nothing stored, so absent too. */
  async get(key: string): Promise<Versioned<T> | undefined> {
    if (keyProblem(key)) return undefined;
    const entry = await throughFailover(() => this.kv.get(key), isNatsTransient);
    return this.present(entry);
  }

  /** Writes only if the key does not exist (or was deleted). */
  async create(key: string, value: T): Promise<number> {
    return this.guard(key, () => this.kv.create(key, this.codec.encode(value).finish()));
  }

  /** Writes only if the entry is still at `revision`. */
  async update(key: string, value: T, revision: number): Promise<number> {
    return this.guard(key, () => this.kv.update(key, this.codec.encode(value).finish(), revision));
  }

  /** Writes whatever is there: for state only one writer owns. */
  async put(key: string, value: T): Promise<number> {
    this.checkKey(key);
    const bytes = this.codec.encode(value).finish();
    // A second copy of the same value is harmless: retried even when the first may have landed.
    return throughFailover(() => this.kv.put(key, bytes), isNatsTransient);
  }

  async delete(key: string, revision?: number): Promise<void> {
    await this.guard(key, () => this.kv.delete(key, revision === undefined ? undefined : { previousSeq: revision }));
  }

  /**
   * Read-modify-write with compare-and-set, retried when another writer got there first.
   * `change` gets the current value (undefined when absent) and returns the new one, or
   * undefined to leave the entry as it is.
   */
  mutate(key: string, change: (current: T | undefined) => T | undefined, attempts = 10): Promise<Versioned<T> | undefined> {
    return withRetries(
      async () => {
        const current = await this.get(key);
        const next = change(current?.value);
        if (next === undefined) return current;
        const revision = current ? await this.update(key, next, current.revision) : await this.create(key, next);
        return { value: next, revision };
      },
      {
        attempts,
        retryIf: (error) => error instanceof RevisionConflict,
        // Many writers on one key: a short random pause keeps them from colliding again.
        delayMs: (failed) => Math.random() * 5 * failed,
      },
    );
  }

  async keys(filter = '>'): Promise<string[]> {
    this.checkKey(filter, true);
    const keys: string[] = [];
    for await (const key of await this.kv.keys(filter)) keys.push(key);
    return keys;
  }

  /**
   * Calls `changed` with the key of every write from now on (the values are not sent), until
   * the answer's stop(). A write made while NATS is away is told once the watch is back.
   */
  async watchWrites(changed: (key: string) => void): Promise<{ stop(): void }> {
    const iterator = await this.kv.watch({ key: '>', include: KvWatchInclude.UpdatesOnly, headers_only: true });
    void (async () => {
      for await (const entry of iterator) if (entry.operation === 'PUT') changed(entry.key);
    })();
    return iterator;
  }

  /** Every live entry, in the order of keys(); read LIST_READS at a time. */
  async list(filter = '>'): Promise<Array<Versioned<T> & { key: string }>> {
    const keys = await this.keys(filter);
    const entries: Array<(Versioned<T> & { key: string }) | undefined> = new Array(keys.length);
    await forEachConcurrently(keys, LIST_READS, async (key, i) => {
      const entry = await this.get(key);
      if (entry) entries[i] = { key, ...entry };
    });
    return entries.filter((e): e is Versioned<T> & { key: string } => e !== undefined);
  }

  private present(entry: KvEntry | null): Versioned<T> | undefined {
    if (entry?.operation !== 'PUT') return undefined;
    return { value: this.codec.decode(entry.value), revision: entry.revision };
  }

  /** A key NATS would refuse is the caller's mistake, said as one, never NATS's bare error. */
  private checkKey(key: string, wildcards = false): void {
    const problem = keyProblem(key, wildcards);
    if (problem) {
      const shown = key.length > 64 ? `${key.slice(0, 64)}…` : key;
      throw new LapisError(Code.INVALID_ARGUMENT, `${JSON.stringify(shown)} cannot be a key of ${this.name}: ${problem}`, 'INVALID_KEY');
    }
  }

  private async guard<R>(key: string, write: () => Promise<R>): Promise<R> {
    this.checkKey(key);
    try {
      // A conditional write is tried again only when it surely did not land: a second try of
      // one that did would fail its own condition.
      return await throughFailover(write, isNotDelivered);
    } catch (error) {
      if (isConflict(error)) {
        countConflict(this.name);
        throw new RevisionConflict(`${this.name}/${key} was changed by another writer`);
      }
      throw error;
    }
  }
}

/**
 * A bucket's live entries kept in memory: read when started, then followed through a watch,
 * so every instance of a service sees every writer's changes. A writer notes its own writes
 * at once (read-your-writes); an entry never goes back to an older revision.
 */
export class BucketMirror<T> {
  private readonly entries = new Map<string, Versioned<T>>();
  private watcher?: { stop(): void };

  constructor(
    private readonly bucket: Bucket<T>,
    private readonly decode: (bytes: Uint8Array) => T,
  ) {}

  /** Resolves once the bucket's current entries are in. */
  async start(): Promise<void> {
    let ready!: () => void;
    const initialized = new Promise<void>((resolve) => (ready = resolve));
    const iterator = await this.bucket.kv.watch({ key: '>', initializedFn: () => ready() });
    this.watcher = iterator;
    void (async () => {
      for await (const entry of iterator) {
        if (entry.operation === 'PUT') this.note(entry.key, this.decode(entry.value), entry.revision);
        else this.forget(entry.key, entry.revision);
      }
    })();
    // nats.js misses the end of the initial entries when the stream was pruned meanwhile.
    await Promise.race([initialized, new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
  }

  note(key: string, value: T, revision: number): void {
    const current = this.entries.get(key);
    if (!current || current.revision <= revision) this.entries.set(key, { value, revision });
  }

  /** Drops the entry (without a revision: whatever this mirror has, as after one's own delete). */
  forget(key: string, revision = Number.MAX_SAFE_INTEGER): void {
    const current = this.entries.get(key);
    if (current && current.revision < revision) this.entries.delete(key);
  }

  get(key: string): T | undefined {
    return this.entries.get(key)?.value;
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  values(): T[] {
    return [...this.entries.values()].map((e) => e.value);
  }

  stop(): void {
    this.watcher?.stop();
  }
}
