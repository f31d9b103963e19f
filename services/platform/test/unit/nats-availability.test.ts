import { strict as assert } from 'node:assert';
import { ErrorCode, NatsError } from 'nats';
import { Code } from '../../src/errors';
import { isNatsTransient, isNatsUnavailable, isNotDelivered, natsUnavailable, throughFailover } from '../../src/nats/availability';

const natsError = (code: string, api?: { code: number; err_code?: number }) =>
  Object.assign(new NatsError(code, code), api ? { api_error: { description: code, ...api } } : {});

describe('NATS away', () => {
  it('tells NATS being away from a request NATS refused', () => {
    for (const away of [
      natsError(ErrorCode.Timeout),
      natsError(ErrorCode.NoResponders),
      natsError(ErrorCode.ConnectionClosed),
      natsError(ErrorCode.ApiError, { code: 503, err_code: 10008 }),
      natsError(ErrorCode.ApiError, { code: 500, err_code: 10118 }),
    ])
      assert.ok(isNatsUnavailable(away), away.message);
    for (const refused of [
      natsError(ErrorCode.PermissionsViolation),
      natsError(ErrorCode.ApiError, { code: 400, err_code: 10071 }), // wrong last sequence
      new TypeError('a bug'),
      'not an error',
    ])
      assert.ok(!isNatsUnavailable(refused), String(refused));
  });

  it('tries again only what a second try cannot write twice', () => {
    assert.ok(isNotDelivered(natsError(ErrorCode.NoResponders)));
    assert.ok(!isNotDelivered(natsError(ErrorCode.Timeout)), 'a timed-out write may have landed');
    assert.ok(isNatsTransient(natsError(ErrorCode.Timeout)));
    assert.ok(!isNatsTransient(natsError(ErrorCode.ConnectionClosed)), 'a closed connection stays closed');
  });

  it('rides out a leader election, and gives up after its budget or on another error', async () => {
    let tries = 0;
    const elected = await throughFailover(async () => {
      if (++tries < 3) throw natsError(ErrorCode.NoResponders);
      return 'written';
    }, isNotDelivered);
    assert.equal(elected, 'written');
    assert.equal(tries, 3);

    const started = Date.now();
    await assert.rejects(
      throughFailover(() => Promise.reject(natsError(ErrorCode.NoResponders)), isNotDelivered, 300),
      (e: NatsError) => e.code === ErrorCode.NoResponders,
    );
    assert.ok(Date.now() - started < 2_000, 'within about its budget');

    tries = 0;
    await assert.rejects(
      throughFailover(() => {
        tries++;
        return Promise.reject(natsError(ErrorCode.PermissionsViolation));
      }, isNatsTransient),
    );
    assert.equal(tries, 1);
  });

  it('answers UNAVAILABLE, saying nothing was acknowledged', () => {
    const error = natsUnavailable(natsError(ErrorCode.Timeout));
    assert.equal(error.code, Code.UNAVAILABLE);
    assert.equal(error.reason, 'NATS_UNAVAILABLE');
    assert.match(error.message, /nothing was acknowledged/);
  });
});
