// Following an instance's log: one engine log stream per followed instance, however many
// callers follow it, fanned out to them and closed when the last one leaves (one stream per
// caller let 200 follows open 200 engine connections).
//
// A follower joins the shared stream first, then reads the log so far (its own tail and
// since, a short request of its own); what the shared stream brought meanwhile and the log
// so far also holds (stamped no later than its last line) is skipped, so every line comes
// once. The engine stream goes at the pace of the fastest follower; one that falls
// MAX_CHUNKS_BEHIND behind it is cut off with RESOURCE_EXHAUSTED rather than hold the others
// back or be buffered for without bound.
import { PassThrough } from 'node:stream';
import { resourceExhausted } from '@lapis/platform';
import type { LogChunk, LogOptions, RuntimeBackend } from '../adapters/backend';

/** Chunks a follower may have waiting before it is cut off. */
export const MAX_CHUNKS_BEHIND = 1024;

interface Feed {
  followers: Set<PassThrough>;
  stop: AbortController;
  /** Settles once the engine streams (or could not). */
  opened: Promise<unknown>;
  /** Wakes the stream's pump when it waits for room (a follower joined). */
  wake?: () => void;
}

export class LogFollows {
  private readonly feeds = new Map<string, Feed>();

  constructor(
    private readonly backend: Pick<RuntimeBackend, 'logs'>,
    private readonly followLogs: NonNullable<RuntimeBackend['followLogs']>,
  ) {}

  /** Engine log streams open now: one per followed instance. */
  get engineStreams(): number {
    return this.feeds.size;
  }

  async *follow(backendId: string, options: LogOptions): AsyncIterable<LogChunk> {
    const queue = new PassThrough({ objectMode: true });
    const feed = this.join(backendId, queue);
    const leave = () => queue.destroy();
    options.signal.addEventListener('abort', leave);
    try {
      await feed.opened;
      let last: bigint | undefined;
      for await (const chunk of this.backend.logs(backendId, { ...options, follow: false })) {
        last = chunk.timeNs ?? last;
        yield chunk;
      }
      try {
        for await (const chunk of queue as AsyncIterable<LogChunk>) {
          if (last !== undefined && chunk.timeNs !== undefined && chunk.timeNs <= last) continue;
          yield chunk;
        }
      } catch (error) {
        if (!options.signal.aborted) throw error; // the caller left: no error to report
      }
    } finally {
      options.signal.removeEventListener('abort', leave);
      this.leave(backendId, feed, queue);
    }
  }

  private join(backendId: string, queue: PassThrough): Feed {
    let feed = this.feeds.get(backendId);
    if (!feed) {
      const stop = new AbortController();
      const stream = this.followLogs(backendId, stop.signal);
      feed = { followers: new Set(), stop, opened: stream };
      // Followers await `opened` and see its error; this only keeps it from counting as unhandled.
      stream.catch(() => {});
      this.feeds.set(backendId, feed);
      void this.pump(backendId, feed, stream);
    }
    feed.followers.add(queue);
    feed.wake?.();
    return feed;
  }

  private async pump(backendId: string, feed: Feed, stream: Promise<AsyncIterable<LogChunk>>): Promise<void> {
    let failure: Error | undefined;
    try {
      for await (const chunk of await stream) {
        for (const queue of feed.followers) {
          if (queue.destroyed) continue;
          if (queue.readableLength + queue.writableLength < MAX_CHUNKS_BEHIND) queue.write(chunk);
          else {
            queue.destroy(
              resourceExhausted(
                `the log of this instance is written faster than this caller reads it (${MAX_CHUNKS_BEHIND} chunks behind); follow it again`,
                'LOG_FOLLOWER_BEHIND',
              ),
            );
          }
        }
        // The fastest follower sets the pace: wait while every one of them is full.
        const open = [...feed.followers].filter((queue) => !queue.destroyed);
        if (open.length > 0 && open.every((queue) => queue.writableNeedDrain)) await roomInAny(feed, open);
      }
    } catch (error) {
      failure = error as Error;
    } finally {
      if (this.feeds.get(backendId) === feed) this.feeds.delete(backendId);
      // The engine ended the stream (the container stopped): followers end after what they have.
      for (const queue of feed.followers) {
        if (failure && !feed.stop.signal.aborted) queue.destroy(failure);
        else queue.end();
      }
    }
  }

  private leave(backendId: string, feed: Feed, queue: PassThrough): void {
    feed.followers.delete(queue);
    queue.destroy();
    if (feed.followers.size > 0) return;
    // The last follower left: the engine stream closes.
    if (this.feeds.get(backendId) === feed) this.feeds.delete(backendId);
    feed.stop.abort();
  }
}

/** Until one of the queues has room again or is gone, or a follower joins. */
function roomInAny(feed: Feed, queues: PassThrough[]): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      for (const queue of queues) queue.off('drain', done).off('close', done);
      feed.wake = undefined;
      resolve();
    };
    for (const queue of queues) queue.on('drain', done).on('close', done);
    feed.wake = done;
  });
}
