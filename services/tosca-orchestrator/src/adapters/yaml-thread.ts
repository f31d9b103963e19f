// A second thread that reads part of a big template while the caller reads the rest
// (domain/yaml.ts splits it): on a 1,000-node template js-yaml's tokenizer alone is about half
// of parse + validate, and it is one thread's work. The caller blocks until the piece is back
// (parsing is synchronous). The thread starts with the service; until it is up, and after it
// fails or stops answering (it is then replaced), the caller reads everything itself. Whether
// the thread helps at all depends on the machine, so it is learned from the reads themselves.
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { ParallelReader } from '../domain/yaml';

/** A piece is a few MB at most: far longer than this means the thread is stuck. */
const answerTimeoutMs = 10_000;

export interface ReadRequest {
  id: number;
  text: string;
}

export interface ReadAnswer {
  id: number;
  value?: { value: unknown };
}

/** Slots of the shared state: answers posted so far (the caller waits on it); 1 once the thread listens. */
export const ANSWERED = 0;
export const READY = 1;

/** Decides, read by read, whether the thread takes a piece; told how long each read took. */
export interface WayChooser {
  useThread(length: number): boolean;
  took(length: number, helped: boolean, ms: number): void;
}

const COLD_READS = 2;

/** One way of reading templates of about one size: its latest times per character. */
class Way {
  private readonly recent: number[] = [];
  samples = 0;

  constructor(private readonly window: number) {}

  add(msPerChar: number): void {
    // The first reads of a size run cold code (the JIT has not compiled it for such input yet).
    if (++this.samples <= COLD_READS) return;
    this.recent.push(msPerChar);
    if (this.recent.length > this.window) this.recent.shift();
  }

  /** The median of the latest: one read slowed by a collection or a neighbour does not decide. */
  get msPerChar(): number {
    const sorted = [...this.recent].sort((a, b) => a - b);
    return sorted.length ? sorted[sorted.length >> 1]! : Infinity;
  }
}

/**
 * Which way reads a big template faster here: with the helper thread or alone. Where the two
 * cores are one core's two hyperthreads, or a neighbour keeps the second one busy, handing half
 * over costs more than it saves; on two real cores it saves about a fifth. Learned per size
 * (powers of two), from the reads themselves: both ways in turn at first, then the faster one,
 * with the other tried again now and then (conditions change).
 */
export class FasterWay implements WayChooser {
  private readonly sizes = new Map<number, { thread: Way; alone: Way; reads: number }>();

  constructor(
    private readonly samplesFirst = 4,
    private readonly retryEvery = 16,
    private readonly window = 8,
  ) {}

  /** Whether the next read of a template of this length should use the thread. */
  useThread(length: number): boolean {
    const size = this.size(length);
    size.reads++;
    const { thread, alone } = size;
    if (Math.min(thread.samples, alone.samples) < COLD_READS + this.samplesFirst) return thread.samples <= alone.samples;
    const threadFaster = thread.msPerChar < alone.msPerChar;
    return size.reads % this.retryEvery === 0 ? !threadFaster : threadFaster;
  }

  took(length: number, helped: boolean, ms: number): void {
    (helped ? this.size(length).thread : this.size(length).alone).add(ms / length);
  }

  /** What was learned so far, by size (for logs and the benchmark). */
  learned(): Array<{ fromLength: number; threadUsPerKiB: number; aloneUsPerKiB: number; reads: number; useThread: boolean }> {
    return [...this.sizes].sort(([a], [b]) => a - b).map(([bits, { thread, alone, reads }]) => ({
      fromLength: 2 ** bits,
      threadUsPerKiB: thread.msPerChar * 1024 * 1000,
      aloneUsPerKiB: alone.msPerChar * 1024 * 1000,
      reads,
      useThread: thread.msPerChar < alone.msPerChar,
    }));
  }

  private size(length: number) {
    const bits = Math.floor(Math.log2(length));
    let size = this.sizes.get(bits);
    if (!size) this.sizes.set(bits, (size = { thread: new Way(this.window), alone: new Way(this.window), reads: 0 }));
    return size;
  }
}

export class YamlThread implements ParallelReader {
  /** About 250 node templates: below, handing half over saves less than it costs. */
  readonly minLength = 64 * 1024;
  private worker: Worker | undefined;
  private port: MessagePort | undefined;
  private shared: Int32Array | undefined;
  private nextId = 0;

  /** Starts the thread at once (it takes a moment to load the YAML readers). */
  constructor(
    private readonly onFailure: (error: Error) => void = () => undefined,
    readonly way: WayChooser = new FasterWay(),
  ) {
    this.ensure();
  }

  /** Whether the thread is up (it starts with the object, in the background). */
  get ready(): boolean {
    return this.shared !== undefined && Atomics.load(this.shared, READY) === 1;
  }

  start(piece: string, length: number): (() => { value: unknown } | undefined) | undefined {
    const thread = this.ensure();
    if (!this.ready || !this.way.useThread(length)) return undefined;
    const id = ++this.nextId;
    const seen = Atomics.load(thread.shared, ANSWERED);
    thread.port.postMessage({ id, text: piece } satisfies ReadRequest);
    return () => this.wait(id, seen);
  }

  took(length: number, helped: boolean, ms: number): void {
    this.way.took(length, helped, ms);
  }

  /** Stops the thread (a later read starts another). */
  close(): void {
    void this.worker?.terminate();
    this.port?.close();
    this.worker = this.port = this.shared = undefined;
  }

  private ensure(): { port: MessagePort; shared: Int32Array } {
    if (this.worker && this.port && this.shared) return { port: this.port, shared: this.shared };
    const shared = new Int32Array(new SharedArrayBuffer(8));
    const { port1, port2 } = new MessageChannel();
    // V8's flags (the service's --max-semi-space-size) hold for this thread too.
    const worker = new Worker(join(__dirname, 'yaml-thread-main.js'), { workerData: { port: port2, shared }, transferList: [port2] });
    // Never keeps the process alive (the CLI, tests); a crash only costs this thread.
    worker.unref();
    worker.on('error', (error) => {
      this.onFailure(error);
      this.close();
    });
    // A thread that ends by itself is not waited for: the next read starts another.
    worker.on('exit', () => {
      if (this.worker === worker) this.close();
    });
    this.worker = worker;
    this.port = port1;
    this.shared = shared;
    return { port: port1, shared };
  }

  private wait(id: number, seen: number): { value: unknown } | undefined {
    const { port, shared } = this;
    if (!port || !shared) return undefined;
    const deadline = Date.now() + answerTimeoutMs;
    for (;;) {
      const message = receiveMessageOnPort(port)?.message as ReadAnswer | undefined;
      if (message?.id === id) return message.value;
      if (message) continue; // an earlier request's answer, left behind by a failure
      const left = deadline - Date.now();
      if (left <= 0 || Atomics.wait(shared, ANSWERED, seen, left) === 'timed-out') {
        this.onFailure(new Error(`no answer in ${answerTimeoutMs} ms`));
        this.close();
        return undefined;
      }
      seen = Atomics.load(shared, ANSWERED);
    }
  }
}

/** A helper thread where a second core can run it, else nothing (one thread reads everything). */
export function yamlThreadIfUseful(onFailure?: (error: Error) => void): YamlThread | undefined {
  return availableParallelism() > 1 ? new YamlThread(onFailure) : undefined;
}
