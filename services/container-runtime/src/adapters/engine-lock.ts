// A lock shared by the node agents of one Docker engine on this host (several nodes' agents on
// one engine, as the mesh and the tests run them): an exclusively created file in the temp
// directory, named after the engine's socket and the thing locked, holding the holder's pid.
// The engine's own name check is not atomic, so two agents making a project's network at once
// made two of one name. A lock whose holder is gone (killed while holding it) is taken over;
// one older than `staleMs` too (a holder in another pid namespace), long enough for an engine
// call on a loaded machine (10 s was not: a slow create made a second network).
import { createHash } from 'node:crypto';
import { readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export async function withEngineLock<T>(socketPath: string, name: string, work: () => Promise<T>, staleMs = 120_000): Promise<T> {
  const key = createHash('sha256').update(`${socketPath}\n${name}`).digest('hex').slice(0, 24);
  const file = join(tmpdir(), `lapis-engine-${key}.lock`);
  for (;;) {
    try {
      await writeFile(file, String(process.pid), { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const [held, holder] = await Promise.all([stat(file).catch(() => undefined), readFile(file, 'utf8').catch(() => '')]);
      const pid = Number(holder);
      // An empty file is one being written: not gone.
      const abandoned = held && ((pid > 0 && gone(pid)) || Date.now() - held.mtimeMs > staleMs);
      if (abandoned) await unlink(file).catch(() => undefined);
      else await sleep(20);
    }
  }
  try {
    return await work();
  } finally {
    await unlink(file).catch(() => undefined);
  }
}
