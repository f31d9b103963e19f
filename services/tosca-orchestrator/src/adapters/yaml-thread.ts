// A second thread that reads part of a big template while the caller reads the rest
// (domain/yaml.ts splits it): on a 1,000-node template js-yaml's tokenizer alone is about half
// of parse + validate, and it is one thread's work. The caller blocks until the piece is back
// (parsing is synchronous). The thread starts with the service; until it is up, and after it
// fails or stops answering (it is then replaced), the caller reads everything itself.
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

/**
 * About 4,500 node templates. Handing a piece over costs a copy of its value and a wake-up; what
 * the second thread saves for a smaller template depends on the machine (on one it saved 13% at
 * 1,000 nodes, on another it cost 12%), while from here on it saved time on every machine measured.
 */
export const DEFAULT_MIN_LENGTH = 1024 * 1024;

export class YamlThread implements ParallelReader {
  private worker: Worker | undefined;
  private port: MessagePort | undefined;
  private shared: Int32Array | undefined;
  private nextId = 0;

  /** Starts the thread at once (it takes a moment to load the YAML readers). */
  constructor(
    private readonly onFailure: (error: Error) => void = () => undefined,
    /** Templates shorter than this are read by the caller alone. */
    readonly minLength = DEFAULT_MIN_LENGTH,
  ) {
    this.ensure();
  }

  /** Whether the thread is up (it starts with the object, in the background). */
  get ready(): boolean {
    return this.shared !== undefined && Atomics.load(this.shared, READY) === 1;
  }

  start(text: string): (() => { value: unknown } | undefined) | undefined {
    const thread = this.ensure();
    if (!this.ready) return undefined;
    const id = ++this.nextId;
    const seen = Atomics.load(thread.shared, ANSWERED);
    thread.port.postMessage({ id, text } satisfies ReadRequest);
    return () => this.wait(id, seen);
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

/** A helper thread where a second core can run it and it is wanted (minLength > 0), else nothing (one thread reads everything). */
export function yamlThreadIfUseful(onFailure?: (error: Error) => void, minLength = DEFAULT_MIN_LENGTH): YamlThread | undefined {
  return availableParallelism() > 1 && minLength > 0 ? new YamlThread(onFailure, minLength) : undefined;
}
