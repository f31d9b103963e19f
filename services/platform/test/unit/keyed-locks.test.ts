import { strict as assert } from 'node:assert';
import { KeyedLocks } from '../../src/keyed-locks';

/** A promise and the function that settles it, for work that ends when the test says. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

describe('KeyedLocks', () => {
  it('runs work of one key one after the other, in arrival order, and work of other keys beside it', async () => {
    const locks = new KeyedLocks();
    const log: string[] = [];
    const first = gate();
    const a1 = locks.with(['a'], async () => (log.push('a1 start'), await first.opened, log.push('a1 end')));
    const a2 = locks.with(['a'], async () => void log.push('a2'));
    await locks.with(['b'], async () => void log.push('b'));
    assert.deepEqual(log, ['a1 start', 'b']);
    first.open();
    await Promise.all([a1, a2]);
    assert.deepEqual(log, ['a1 start', 'b', 'a1 end', 'a2']);
  });

  it('lets work under several keys wait for each, without two such works waiting on each other', async () => {
    const locks = new KeyedLocks();
    const log: string[] = [];
    const holdA = gate();
    const onA = locks.with(['a'], () => holdA.opened);
    // Keys given in either order are taken in one order: no deadlock.
    const ab = locks.with(['b', 'a'], async () => void log.push('ab'));
    const ba = locks.with(['a', 'b', 'a'], async () => void log.push('ba'));
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(log, []);
    holdA.open();
    await Promise.all([onA, ab, ba]);
    assert.deepEqual(log, ['ab', 'ba']);
  });

  it('passes on what the work returns or throws, and a failure does not hold the key', async () => {
    const locks = new KeyedLocks();
    assert.equal(await locks.with(['a'], async () => 42), 42);
    await assert.rejects(
      locks.with(['a'], async () => Promise.reject(new Error('broke'))),
      /broke/,
    );
    assert.equal(await locks.with(['a'], async () => 'after'), 'after');
  });
});
