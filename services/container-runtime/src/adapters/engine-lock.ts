// A lock shared by the node agents of one Docker engine on this host (several nodes' agents on
// one engine, as the mesh and the tests run them): an exclusively created file in the temp
// directory, named after the engine's socket and the thing locked. The engine's own name check
// is not atomic, so two agents making a project's network at once made two of one name. A lock
// left by an agent killed while holding it is taken over once it is older than `staleMs`.
import { createHash } from 'node:crypto';
import { open, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function withEngineLock<T>(socketPath: string, name: string, work: () => Promise<T>, staleMs = 10_000): Promise<T> {
  const key = createHash('sha256').update(`${socketPath}\n${name}`).digest('hex').slice(0, 24);
  const file = join(tmpdir(), `lapis-engine-${key}.lock`);
  for (;;) {
    try {
      await (await open(file, 'wx')).close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const held = await stat(file).catch(() => undefined);
      if (held && Date.now() - held.mtimeMs > staleMs) await unlink(file).catch(() => undefined);
      else await sleep(20);
    }
  }
  try {
    return await work();
  } finally {
    await unlink(file).catch(() => undefined);
  }
}
