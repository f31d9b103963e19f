import { strict as assert } from 'node:assert';
import { withRetries } from '../../src/retry';

/** Work that fails `failures` times (with errors named by their attempt), then answers. */
function flaky(failures: number) {
  const attempts: number[] = [];
  const work = async (attempt: number) => {
    attempts.push(attempt);
    if (attempts.length <= failures) throw new Error(`try ${attempt}`);
    return `answer after ${attempt}`;
  };
  return { work, attempts };
}

describe('withRetries', () => {
  it('tries again after each failure, with the pause asked for, until the work succeeds', async () => {
    const { work, attempts } = flaky(2);
    const pauses: Array<[number, string]> = [];
    const told: Array<[string, number, number]> = [];
    const answer = await withRetries(work, {
      attempts: 3,
      delayMs: (failed, error) => (pauses.push([failed, (error as Error).message]), failed * 2),
      onRetry: (error, failed, delayMs) => told.push([(error as Error).message, failed, delayMs]),
    });
    assert.equal(answer, 'answer after 3');
    assert.deepEqual(attempts, [1, 2, 3]);
    assert.deepEqual(pauses, [
      [1, 'try 1'],
      [2, 'try 2'],
    ]);
    assert.deepEqual(told, [
      ['try 1', 1, 2],
      ['try 2', 2, 4],
    ]);
  });

  it('throws the last error once the attempts are spent; one attempt is no retry', async () => {
    const three = flaky(5);
    await assert.rejects(withRetries(three.work, { attempts: 3, delayMs: () => 0 }), /try 3/);
    assert.deepEqual(three.attempts, [1, 2, 3]);
    const one = flaky(5);
    await assert.rejects(withRetries(one.work, { attempts: 1, delayMs: () => 0 }), /try 1/);
    assert.deepEqual(one.attempts, [1]);
  });

  it('throws at once an error that retryIf turns down', async () => {
    const { work, attempts } = flaky(5);
    await assert.rejects(
      withRetries(work, { attempts: 5, delayMs: () => 0, retryIf: (error) => (error as Error).message !== 'try 2' }),
      /try 2/,
    );
    assert.deepEqual(attempts, [1, 2]);
  });

  it('tries no more once the signal is aborted, throwing the error of the last try', async () => {
    const controller = new AbortController();
    const attempts: number[] = [];
    const work = async (attempt: number) => {
      attempts.push(attempt);
      if (attempt === 2) controller.abort();
      throw new Error(`try ${attempt}`);
    };
    await assert.rejects(withRetries(work, { attempts: 5, delayMs: () => 0, signal: controller.signal }), /try 2/);
    assert.deepEqual(attempts, [1, 2]);
  });
});
