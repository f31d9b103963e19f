// The helper thread that reads half of a big template: real worker thread, real templates. The
// value must be the one-thread value; a thread that is closed is replaced on the next read.
import { strict as assert } from 'node:assert';
import { generate } from '../../bench/bench';
import { FasterWay, YamlThread } from '../../src/adapters/yaml-thread';
import { processTemplate } from '../../src/domain/validate';

async function whenReady(thread: YamlThread): Promise<void> {
  for (const deadline = Date.now() + 30_000; !thread.ready; ) {
    if (Date.now() > deadline) throw new Error('the YAML thread did not start');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('YAML helper thread', () => {
  // Always with the thread here (the service learns whether it is faster: FasterWay, below).
  const thread = new YamlThread(undefined, { useThread: () => true, took: () => undefined });
  after(() => thread.close());

  it('reads half of a big template, and the result is the one-thread result', async () => {
    await whenReady(thread);
    let pieces = 0;
    const counting = { minLength: thread.minLength, start: (text: string, length: number) => (pieces++, thread.start(text, length)) };
    for (const variant of ['valid', 'unknown_target', 'bad_scalar'] as const) {
      const text = generate(999, variant);
      assert.ok(text.length >= thread.minLength);
      const one = processTemplate({ text, fileName: 't.yaml' });
      const two = processTemplate({ text, fileName: 't.yaml', parallel: counting });
      assert.equal(two.valid, one.valid);
      assert.deepEqual(two.diagnostics, one.diagnostics);
      assert.deepEqual([...two.topology!.nodes.keys()], [...one.topology!.nodes.keys()]);
      assert.deepEqual(two.topology!.order, one.topology!.order);
    }
    assert.equal(pieces, 3);
  });

  it('replaces a thread that ended by itself instead of waiting for its answer', async () => {
    await whenReady(thread);
    const worker = (thread as unknown as { worker: { terminate(): Promise<number> } }).worker;
    await worker.terminate();
    // The exit is seen between requests: the next read finds no thread up and reads alone.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(thread.start('a: 1\n', 5), undefined);
    await whenReady(thread);
  });

  it('starts a new thread after the old one is closed, reading alone until it is up', async () => {
    const text = generate(999, 'valid');
    thread.close();
    assert.equal(thread.start(text, text.length), undefined);
    await whenReady(thread);
    const wait = thread.start(text.slice(text.indexOf('    server_1:')), text.length);
    assert.ok(wait);
    const piece = wait()?.value as Record<string, unknown> | undefined;
    assert.ok(piece && 'server_1' in piece && 'app_332' in piece);
  });

  it('learns from the service\'s own reads whether the thread is faster, per size', async () => {
    const learning = new YamlThread();
    try {
      await whenReady(learning);
      const text = generate(999, 'valid');
      const one = processTemplate({ text, fileName: 't.yaml' });
      for (let i = 0; i < 8; i++) assert.deepEqual(processTemplate({ text, fileName: 't.yaml', parallel: learning }).diagnostics, one.diagnostics);
      const [size, ...others] = (learning.way as FasterWay).learned();
      assert.equal(others.length, 0);
      assert.ok(size!.fromLength <= text.length && text.length < 2 * size!.fromLength);
      assert.equal(size!.reads, 8);
      assert.ok(size!.threadUsPerKiB > 0 && size!.aloneUsPerKiB > 0, JSON.stringify(size));
    } finally {
      learning.close();
    }
  });
});

describe('FasterWay (which way reads faster here)', () => {
  const read = (way: FasterWay, length: number, msPerKiB: { thread: number; alone: number }) => {
    const helped = way.useThread(length);
    way.took(length, helped, (length / 1024) * (helped ? msPerKiB.thread : msPerKiB.alone));
    return helped;
  };

  it('tries both ways in turn, then keeps to the faster, trying the other now and then', () => {
    const way = new FasterWay(3, 16);
    // Two cold reads each (not counted), then three each.
    const first = Array.from({ length: 10 }, () => read(way, 100_000, { thread: 0.05, alone: 0.08 }));
    assert.deepEqual(first, [true, false, true, false, true, false, true, false, true, false]);
    const next = Array.from({ length: 32 }, () => read(way, 100_000, { thread: 0.05, alone: 0.08 }));
    assert.equal(next.filter((helped) => !helped).length, 2, 'alone once in 16 reads');
    assert.equal(way.learned()[0]!.useThread, true);
  });

  it('reads alone where the thread is slower, and changes its mind when that changes', () => {
    const way = new FasterWay(3, 16);
    for (let i = 0; i < 40; i++) read(way, 100_000, { thread: 0.09, alone: 0.07 });
    assert.equal(way.learned()[0]!.useThread, false);
    // The retries see the thread faster now: it is used again.
    for (let i = 0; i < 200; i++) read(way, 100_000, { thread: 0.03, alone: 0.07 });
    assert.equal(way.learned()[0]!.useThread, true);
  });

  it('learns each size apart (powers of two)', () => {
    const way = new FasterWay(3, 16);
    for (let i = 0; i < 20; i++) {
      read(way, 70_000, { thread: 0.09, alone: 0.07 });
      read(way, 600_000, { thread: 0.05, alone: 0.07 });
    }
    assert.deepEqual(way.learned().map((s) => [s.fromLength, s.useThread]), [[65_536, false], [524_288, true]]);
  });
});
