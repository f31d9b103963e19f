// A lock shared by the node agents of one Docker engine on this host (several nodes' agents on
// one engine, as the mesh and the tests run them): the engine's own name check is not atomic,
// so two agents making a project's network at once made two of one name. proper-lockfile's
// lock (a directory made atomically in the temp directory, named after the engine's
// socket and the thing locked) is kept fresh while held; one whose holder was killed
// goes stale and is taken over.
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lock } from 'proper-lockfile';

/** A held lock not refreshed for this long is a dead holder's. */
const STALE_MS = 30_000;

export async function withEngineLock<T>(socketPath: string, name: string, work: () => Promise<T>): Promise<T> {
  const key = createHash('sha256').update(`${socketPath}\n${name}`).digest('hex').slice(0, 24);
  const file = join(tmpdir(), `lapis-engine-${key}`);
  // realpath false: the file need not exist; only its lock directory is made, and removed.
  const release = await lock(file, {
    realpath: false,
    stale: STALE_MS,
    // Waits up to about three minutes for another agent's engine calls.
    retries: { retries: 1000, minTimeout: 20, maxTimeout: 200 },
    // Lost while held (the machine stalled past STALE_MS): the work goes on; the worst case is
    // the one the lock prevents, which the callers clean up (a second network of a name).
    onCompromised: () => undefined,
  });
  try {
    return await work();
  } finally {
    await release().catch(() => undefined);
  }
}
