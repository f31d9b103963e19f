// A label a tenant chooses (a project) stays bounded: past the limit, new values are "other".
import { strict as assert } from 'node:assert';
import { BoundedLabel } from '../../src/telemetry/metrics';

describe('BoundedLabel', () => {
  it('keeps the first values seen, folds later ones into "other", and keeps known ones', () => {
    const label = new BoundedLabel(2);
    assert.equal(label.of('physics'), 'physics');
    assert.equal(label.of('chemistry'), 'chemistry');
    assert.equal(label.of('hostile-1'), 'other');
    assert.equal(label.of('hostile-2'), 'other');
    assert.equal(label.of('physics'), 'physics');
    const many = new BoundedLabel(100);
    const seen = new Set(Array.from({ length: 10_000 }, (_, i) => many.of(`p${i}`)));
    assert.equal(seen.size, 101, '100 projects and "other"');
  });
});
