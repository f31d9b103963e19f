// Free ports and waiting for things to come up.
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A TCP port that was free a moment ago on 127.0.0.1. The kernel picks it, so two callers
 * never get the same one at once; something else may still take it before it is used.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error(`could not read the port of a listener on ${host}:0`));
      });
    });
  });
}

/** Thrown by a waitFor check to stop waiting at once (e.g. the process died). */
export class GiveUp extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GiveUp';
  }
}

export interface WaitOptions {
  timeoutMs: number;
  /** What we wait for, as it should read in "timed out waiting for ...". */
  what: string;
  /** Pause between two checks; default 100 ms. */
  intervalMs?: number;
}

/**
 * Calls check until it returns true. A check that returns false or throws is retried until
 * timeoutMs; then the error names `what` and the last error seen. A check that throws
 * GiveUp ends the wait at once with that error.
 */
export async function waitFor(check: () => boolean | Promise<boolean>, opts: WaitOptions): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
      lastError = undefined;
    } catch (e) {
      if (e instanceof GiveUp) throw e;
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const last = lastError instanceof Error ? lastError.message : lastError === undefined ? 'not ready' : String(lastError);
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what} (last error: ${last})`);
    }
    await sleep(opts.intervalMs ?? 100);
  }
}

/** Resolves once a TCP connection to host:port succeeds (and closes it); rejects otherwise. */
export function tryConnect(host: string, port: number, timeoutMs = 1000): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`connect to ${host}:${port} timed out`)));
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
}

/**
 * Waits until host:port accepts TCP connections. `guard` runs before every attempt; let it
 * throw GiveUp to stop early (see Supervised.failIfExited).
 */
export function waitForPort(host: string, port: number, timeoutMs: number, guard?: () => void): Promise<void> {
  return waitFor(
    async () => {
      guard?.();
      await tryConnect(host, port);
      return true;
    },
    { timeoutMs, what: `a TCP listener on ${host}:${port}` },
  );
}
