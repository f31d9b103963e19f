// Templates are read and validated on worker threads, never on the service's event loop: a
// template comes from a tenant, and even within the reading's bounds (domain/yaml.ts, loader.ts)
// a big one takes a while. Meanwhile the loop keeps answering health checks and other callers.
// Work whose caller is gone (cancelled, past its deadline, the service stopping) or that runs
// past its budget is stopped by terminating its thread, the only way to stop synchronous work;
// a fresh thread takes its place.
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Diagnostic } from '../domain/diagnostics';
import type { Dict } from '../domain/registry';
import type { Target } from '../domain/translate';

const MAX_HEAP_MB = 1024;

/** What a thread is asked: a template (text or CSAR) with its files and inputs, to validate or translate. */
export interface TemplateJob {
  text?: string;
  csar?: Uint8Array;
  fileName: string;
  files: Record<string, string>;
  inputs?: Dict;
  /** Input values as text, converted to their declared types (over `inputs`). */
  textInputs?: Record<string, string>;
  /** Also translate, when valid. */
  target?: Target;
}

export interface TemplateAnswer {
  valid: boolean;
  diagnostics: Diagnostic[];
  order: string[];
  output?: string;
}

/** Set once per thread, from the service's configuration. */
export interface TemplateThreadOptions {
  mirror?: string;
  twoThreadsFromChars: number;
  maxFileChars: number;
}

/** Why work was stopped before it ended. */
export class WorkStopped extends Error {
  override name = 'WorkStopped';
  constructor(
    readonly reason: 'caller gone' | 'budget' | 'closed' | 'thread failed',
    message: string,
  ) {
    super(message);
  }
}

interface Running {
  job: TemplateJob;
  resolve(answer: TemplateAnswer): void;
  reject(error: Error): void;
  signal?: AbortSignal;
  onAbort?: () => void;
  timer?: NodeJS.Timeout;
}

interface Slot {
  /** Started again for the next work after a failure (a thread that cannot start does not spin). */
  worker?: Worker;
  /** Its modules loaded: the budget counts from here, not from the thread's start. */
  ready: boolean;
  running?: Running;
}

export class TemplateThreads {
  private readonly slots: Slot[] = [];
  private readonly queue: Running[] = [];
  private closed = false;

  constructor(
    private readonly options: TemplateThreadOptions & {
      threads: number;
      /** Longest a template's work may take (ms) before it is stopped. */
      budgetMs: number;
      /** Told when work is stopped (for the log). */
      onStopped?: (reason: WorkStopped['reason'], job: TemplateJob) => void;
      onFailure?: (error: Error) => void;
    },
  ) {
    for (let i = 0; i < Math.max(1, options.threads); i++) this.slots.push({ worker: this.start(), ready: false });
  }

  /** The template's verdict (and translation), worked out on a thread; rejects with WorkStopped when stopped. */
  run(job: TemplateJob, signal?: AbortSignal): Promise<TemplateAnswer> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new WorkStopped('closed', 'the service is stopping'));
      if (signal?.aborted) return reject(new WorkStopped('caller gone', 'the caller is gone'));
      const entry: Running = { job, resolve, reject, signal };
      if (signal) {
        entry.onAbort = () => this.stop(entry, new WorkStopped('caller gone', 'the caller is gone'));
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.queue.push(entry);
      this.dispatch();
    });
  }

  /** Stops every thread; work in progress or waiting is rejected. */
  close(): void {
    this.closed = true;
    for (const entry of this.queue.splice(0)) this.settle(entry, new WorkStopped('closed', 'the service is stopping'));
    for (const slot of this.slots) {
      if (slot.running) this.settle(slot.running, new WorkStopped('closed', 'the service is stopping'));
      slot.running = undefined;
      void slot.worker?.terminate();
    }
  }

  private start(): Worker {
    const { mirror, twoThreadsFromChars, maxFileChars } = this.options;
    const worker = new Worker(join(__dirname, 'template-thread-main.js'), {
      workerData: { mirror, twoThreadsFromChars, maxFileChars } satisfies TemplateThreadOptions,
      // What memory a template's work may take: the biggest templates allowed need a few hundred MB.
      resourceLimits: { maxOldGenerationSizeMb: MAX_HEAP_MB },
    });
    // Never keeps the process alive by itself (tests, a stop that is already under way).
    worker.unref();
    worker.on('message', (message: { ready?: boolean; answer?: TemplateAnswer; error?: string }) => {
      const slot = this.slots.find((s) => s.worker === worker);
      if (slot && message.ready) {
        slot.ready = true;
        return this.dispatch();
      }
      const entry = slot?.running;
      if (!slot || !entry) return;
      slot.running = undefined;
      if (message.answer) this.settle(entry, undefined, message.answer);
      else this.settle(entry, new Error(`template thread: ${message.error}`));
      this.dispatch();
    });
    // A thread that dies (out of memory with its limits, a bug) is replaced; its work fails.
    const replace = (error: Error) => {
      const slot = this.slots.find((s) => s.worker === worker);
      if (!slot || this.closed) return;
      this.options.onFailure?.(error);
      const entry = slot.running;
      const started = slot.ready;
      slot.running = undefined;
      slot.worker = undefined;
      slot.ready = false;
      if (entry) this.settle(entry, new WorkStopped('thread failed', `the template's work failed: ${error.message}`));
      // A thread that never got going fails what waits (a broken install), rather than being
      // started again and again.
      if (!started)
        for (const waiting of this.queue.splice(0)) this.settle(waiting, new Error(`a template thread could not start: ${error.message}`));
      else this.dispatch();
    };
    worker.on('error', replace);
    worker.on('exit', (code) => replace(new Error(`template thread exited (${code})`)));
    return worker;
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.running || !this.queue.length) continue;
      if (!slot.worker) {
        slot.worker = this.start();
        slot.ready = false;
      }
      if (!slot.ready) continue;
      const entry = this.queue.shift()!;
      slot.running = entry;
      entry.timer = setTimeout(
        () => this.stop(entry, new WorkStopped('budget', `the template's work took more than ${this.options.budgetMs} ms`)),
        this.options.budgetMs,
      );
      // Copied, not transferred: a small Buffer's memory is shared with others.
      slot.worker.postMessage(entry.job);
    }
  }

  /** Stops one piece of work: taken out of the queue, or its thread terminated and replaced. */
  private stop(entry: Running, why: WorkStopped): void {
    const queued = this.queue.indexOf(entry);
    if (queued >= 0) this.queue.splice(queued, 1);
    const slot = this.slots.find((s) => s.running === entry);
    if (queued < 0 && !slot) return;
    if (slot) {
      slot.running = undefined;
      const old = slot.worker;
      // Replaced first, so the old thread's exit is not taken for a failure.
      slot.worker = this.start();
      slot.ready = false;
      void old?.terminate();
    }
    this.options.onStopped?.(why.reason, entry.job);
    this.settle(entry, why);
    this.dispatch();
  }

  private settle(entry: Running, error?: Error, answer?: TemplateAnswer): void {
    clearTimeout(entry.timer);
    if (entry.onAbort) entry.signal?.removeEventListener('abort', entry.onAbort);
    if (error) entry.reject(error);
    else entry.resolve(answer!);
  }
}
