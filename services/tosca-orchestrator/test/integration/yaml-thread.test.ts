// The helper thread that reads half of a big template: real worker thread, real templates. The
// value must be the one-thread value; a thread that is closed is replaced on the next read.
import { strict as assert } from 'node:assert';
import { generate } from '../../bench/bench';
import { YamlThread } from '../../src/adapters/yaml-thread';
import { processTemplate } from '../../src/domain/validate';

async function whenReady(thread: YamlThread): Promise<void> {
  for (const deadline = Date.now() + 30_000; !thread.ready; ) {
    if (Date.now() > deadline) throw new Error('the YAML thread did not start');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('YAML helper thread', () => {
  // Pieces of 1,000-node templates (200 KiB) go to the thread.
  const thread = new YamlThread(undefined, 64 * 1024);
  after(() => thread.close());

  it('reads half of a big template, and the result is the one-thread result', async () => {
    await whenReady(thread);
    let pieces = 0;
    const counting = { minLength: thread.minLength, start: (text: string) => (pieces++, thread.start(text)) };
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
    assert.equal(thread.start('a: 1\n'), undefined);
    await whenReady(thread);
  });

  it('starts a new thread after the old one is closed, reading alone until it is up', async () => {
    const text = generate(999, 'valid');
    thread.close();
    assert.equal(thread.start(text), undefined);
    await whenReady(thread);
    const wait = thread.start(text.slice(text.indexOf('    server_1:'), text.length));
    assert.ok(wait);
    const piece = wait()?.value as Record<string, unknown> | undefined;
    assert.ok(piece && 'server_1' in piece && 'app_332' in piece);
  });
});
