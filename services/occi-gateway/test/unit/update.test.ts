import { strict as assert } from 'node:assert';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { Claim, ClaimState } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { emptyRequest, OcciError, type OcciRequest } from '../../src/domain/entity';
import { computeEntity, computeSpec, hostnameFrom, osTemplate, resourceTemplate } from '../../src/domain/mapping';
import { INFRA, USER_MIXIN_SCHEME_PREFIX, type Category } from '../../src/domain/model';
import { applyUpdate, initialState, withState } from '../../src/domain/update';

const templates = {
  images: [osTemplate({ repository: 'lapis/busybox', tag: 'testenv' })],
  flavors: [
    resourceTemplate({
      name: 'm1.small',
      description: '',
      devices: [],
      capabilities: [],
      readOnlyRootFilesystem: false,
      resources: { cpuMillis: 1000, memoryBytes: 2 ** 30, gpus: 0, pids: 0, diskBytes: 0 },
    }),
  ],
};
const claim = Claim.fromPartial({
  id: 'c0ffee00-0000-4000-8000-000000000001',
  state: ClaimState.RUNNING,
  instanceState: InstanceState.RUNNING,
  spec: { name: 'web-1', flavor: 'm1.small', image: 'lapis/busybox:testenv', resources: { cpuMillis: 1000, memoryBytes: 2 ** 30 } },
});
const compute = computeEntity(claim, undefined, templates);
const gold: Category = {
  scheme: `${USER_MIXIN_SCHEME_PREFIX}tags#`,
  term: 'gold',
  class: 'mixin',
  title: 'gold',
  attributes: [],
  applies: [`${INFRA}compute`],
  location: '/mixins/gold/',
};
const request = (part: Partial<OcciRequest>): OcciRequest => ({ ...emptyRequest(), ...part });
const status = (fn: () => unknown, name: RegExp) =>
  assert.throws(fn, (error: unknown) => error instanceof OcciError && error.status === 400 && name.test(error.message));

describe('OCCI update (GFD.223 4.4)', () => {
  it('derives a hostname from free text titles', () => {
    assert.equal(hostnameFrom('My Machine'), 'my-machine');
    assert.equal(hostnameFrom('Test_title_1'), 'test-title-1');
    assert.equal(hostnameFrom('  --  '), '');
    assert.equal(hostnameFrom('x'.repeat(100)).length, 63);
    const spec = computeSpec(
      request({
        categories: [
          { scheme: INFRA, term: 'compute' },
          ...[templates.images[0]!, templates.flavors[0]!].map((t) => ({ scheme: t.scheme, term: t.term })),
        ],
        attributes: { 'occi.core.title': 'My Machine' },
      }),
      templates,
    ).spec;
    assert.equal(spec.name, 'my-machine');
  });

  it('partial update keeps what it does not name; full update drops it', () => {
    const current = { title: 'old', summary: 'kept?', mixins: [] };
    assert.deepEqual(applyUpdate(compute, current, request({ attributes: { 'occi.core.title': 'new' } }), 'partial', []), {
      title: 'new',
      summary: 'kept?',
      mixins: [],
    });
    assert.deepEqual(applyUpdate(compute, current, request({ attributes: { 'occi.core.title': 'new' } }), 'full', []), {
      title: 'new',
      mixins: [],
    });
  });

  it('associates user mixins, adds on POST and replaces on PUT', () => {
    const tagged = applyUpdate(
      compute,
      undefined,
      request({ categories: [{ scheme: gold.scheme, term: 'gold', class: 'mixin' }] }),
      'partial',
      [gold],
    );
    assert.deepEqual(tagged.mixins, [`${gold.scheme}gold`]);
    assert.deepEqual(applyUpdate(compute, tagged, request({}), 'partial', [gold]).mixins, [`${gold.scheme}gold`]);
    assert.deepEqual(applyUpdate(compute, tagged, request({}), 'full', [gold]).mixins, []);
    assert.deepEqual(
      withState(compute, tagged, [gold])
        .mixins.map((m) => m.term)
        .slice(-1),
      ['gold'],
    );
    assert.deepEqual(withState(compute, tagged, []).mixins, compute.mixins, 'a deleted mixin is no longer shown');
  });

  it('accepts immutable attributes with their current values and refuses changes, naming them', () => {
    assert.doesNotThrow(() =>
      applyUpdate(compute, undefined, request({ attributes: { 'occi.compute.cores': 1, 'occi.core.id': claim.id } }), 'full', []),
    );
    status(
      () => applyUpdate(compute, undefined, request({ attributes: { 'occi.compute.cores': 2 } }), 'partial', []),
      /occi\.compute\.cores/,
    );
    status(() => applyUpdate(compute, undefined, request({ attributes: { 'occi.core.title': 7 } }), 'partial', []), /occi\.core\.title/);
    status(() => applyUpdate(compute, undefined, request({ attributes: { 'x.y': 'z' } }), 'partial', []), /x\.y/);
    status(
      () => applyUpdate(compute, undefined, request({ categories: [{ scheme: INFRA, term: 'storage', class: 'kind' }] }), 'partial', []),
      /storage/,
    );
    status(
      () =>
        applyUpdate(compute, undefined, request({ categories: [{ scheme: `${USER_MIXIN_SCHEME_PREFIX}x#`, term: 'silver' }] }), 'partial', [
          gold,
        ]),
      /silver/,
    );
    status(() => applyUpdate(compute, undefined, request({ id: 'other' }), 'full', []), /occi\.core\.id/);
  });

  it('keeps title, summary and user mixins given at creation', () => {
    assert.equal(initialState(request({ attributes: { 'occi.compute.cores': 1 } }), [gold]), undefined);
    assert.deepEqual(
      initialState(request({ attributes: { 'occi.core.title': 'My Machine' }, categories: [{ scheme: gold.scheme, term: 'gold' }] }), [
        gold,
      ]),
      { title: 'My Machine', mixins: [`${gold.scheme}gold`] },
    );
  });
});
