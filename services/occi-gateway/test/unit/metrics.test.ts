// The kind label of an OCCI request: a fixed vocabulary whatever path a client sends.
import { strict as assert } from 'node:assert';
import { kindOf } from '../../src/http/metrics';

describe('OCCI request metrics', () => {
  it('label a request by the kind of its path, never by an id or a mixin path', () => {
    assert.equal(kindOf('/compute/'), 'compute');
    assert.equal(kindOf('/compute/c-123'), 'compute');
    assert.equal(kindOf('/networkinterface/x'), 'networkinterface');
    assert.equal(kindOf('/-/'), 'query');
    assert.equal(kindOf('/.well-known/org/ogf/occi/-/'), 'query');
    assert.equal(kindOf('/'), 'root');
    assert.equal(kindOf('/my_tpl/'), 'mixin');
    assert.equal(kindOf('/users/alice/secret-path/'), 'mixin');
    assert.equal(kindOf('/compute/a/b'), 'mixin');
  });
});
