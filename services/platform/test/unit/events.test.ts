import { strict as assert } from 'node:assert';
import { Event } from '@lapis/proto/lapis/events/v1/events';
import { decodeEvent, PoisonMessage } from '../../src/nats/bus';
import { eventSubjects, subjectFor, subjectTemplate, subjectToken } from '../../src/nats/events';

describe('event catalogue', () => {
  it('puts every event under lapis.<service>.<event>', () => {
    for (const subject of Object.values(eventSubjects)) assert.match(subject, /^lapis\.[a-z]+\.[a-z_]+$/);
  });

  it('escapes keys so one key is one subject token, reversibly', () => {
    for (const key of ['node-1', 'node-1.example.org', 'a*b', 'a>b', 'x y']) {
      const token = subjectToken(key);
      assert.doesNotMatch(token, /[.*> ]/);
      assert.equal(decodeURIComponent(token), key);
    }
    assert.throws(() => subjectToken(''), /must not be empty/);
  });

  it('gives subjects whose template drops the key', () => {
    const subject = subjectFor('claimPlaced', 'node-1.example.org');
    assert.equal(subject, 'lapis.scheduler.claim_placed.node-1%2Eexample%2Eorg');
    assert.equal(subjectTemplate(subject), 'lapis.scheduler.claim_placed');
  });

  it('treats bytes that are not an event with an id as poison', () => {
    assert.throws(() => decodeEvent(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])), PoisonMessage);
    assert.throws(() => decodeEvent(Event.encode({ id: '', time: undefined, source: 'x', payload: undefined }).finish()), /without an id/);
    const ok = decodeEvent(Event.encode({ id: 'e1', time: new Date(0), source: 'x', payload: undefined }).finish());
    assert.equal(ok.id, 'e1');
  });
});
