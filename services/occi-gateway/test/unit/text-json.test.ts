import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { Claim, ClaimState, PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { Instance, Volume, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { OcciError } from '../../src/domain/entity';
import { collectionJson, entityJson, parseJson, queryInterfaceJson } from '../../src/domain/json';
import { computeEntity, computeSpec, osTemplate, resourceTemplate, storageEntity } from '../../src/domain/mapping';
import { STATIC_CATEGORIES } from '../../src/domain/model';
import { requestRendering, responseRendering } from '../../src/domain/negotiate';
import {
  entityHeaders,
  parseAttribute,
  parseCategory,
  parseHeaders,
  parseLink,
  parsePlainText,
  renderValue,
  splitOutsideQuotes,
  toPlainText,
} from '../../src/domain/text';
import { assertValidOcciJson } from '../schema';

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
  project: 'physics',
  state: ClaimState.RUNNING,
  instanceState: InstanceState.RUNNING,
  spec: {
    name: 'web-1',
    flavor: 'm1.small',
    image: 'lapis/busybox:testenv',
    resources: { cpuMillis: 1000, memoryBytes: 2 ** 30 },
    command: ['httpd', '-f'],
    environment: { A: 'x, "y"; z' },
  },
});
const instance = Instance.fromPartial({
  id: claim.id,
  spec: claim.spec,
  state: InstanceState.RUNNING,
  addresses: [{ network: 'physics', ip: '172.18.0.2', mac: '02:42:ac:12:00:02' }],
  volumeAttachments: [{ volumeId: 'vol-1', instanceId: claim.id, mountPath: '/mnt/data' }],
});

describe('OCCI text rendering (GFD.229)', () => {
  it('quotes values with commas, semicolons and quotes so they read back the same', () => {
    for (const value of ['plain', 'a, b', 'a; b', 'say "hi"', 'back\\slash', '']) {
      assert.deepEqual(parseAttribute(`x=${renderValue(value)}`), ['x', value]);
    }
    assert.deepEqual(parseAttribute('occi.compute.cores=2'), ['occi.compute.cores', 2]);
    assert.deepEqual(parseAttribute('occi.compute.speed=1.5'), ['occi.compute.speed', 1.5]);
    assert.deepEqual(parseAttribute('flag=true'), ['flag', true]);
  });

  it('escapes control characters, so a value never breaks a line or a header, and reads them back', () => {
    for (const value of ['two\nlines', 'cr\r\nlf', 'tab\there', 'nul\u0000del\u007f', 'euro \u20ac', 'literal \\u0041']) {
      const rendered = renderValue(value);
      assert.doesNotMatch(rendered, /[\u0000-\u001f\u007f]/);
      assert.deepEqual(parseAttribute(`x=${rendered}`), ['x', value]);
    }
  });

  it('splits several values of one header, not inside quotes', () => {
    assert.deepEqual(splitOutsideQuotes('a="1,2", b="3\\",4"', ','), ['a="1,2"', 'b="3\\",4"']);
    assert.throws(() => splitOutsideQuotes('a="open', ','), OcciError);
  });

  it('parses categories, links and attributes as clients send them', () => {
    const category = parseCategory('compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind"; title="a; b, c"');
    assert.deepEqual(category, { term: 'compute', scheme: 'http://schemas.ogf.org/occi/infrastructure#', class: 'kind', title: 'a; b, c' });
    const link = parseLink(
      '</storage/vol-1>; rel="http://schemas.ogf.org/occi/infrastructure#storage"; category="http://schemas.ogf.org/occi/infrastructure#storagelink"; occi.storagelink.mountpoint="/mnt/x"',
    );
    assert.equal(link.target, '/storage/vol-1');
    assert.deepEqual(link.categories, ['http://schemas.ogf.org/occi/infrastructure#storagelink']);
    assert.equal(link.attributes['occi.storagelink.mountpoint'], '/mnt/x');
    const request = parseHeaders([
      [
        'Category',
        'compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind", m1.small; scheme="http://schemas.lapis.dev/occi/resource_tpl#"; class="mixin"',
      ],
      ['X-OCCI-Attribute', 'occi.core.title="web-1", occi.compute.cores=2'],
    ]);
    assert.equal(request.categories.length, 2);
    assert.deepEqual(request.attributes, { 'occi.core.title': 'web-1', 'occi.compute.cores': 2 });
  });

  it('renders an entity as text/plain that parses back to its categories and attributes', () => {
    const entity = computeEntity(claim, instance, templates);
    const text = toPlainText(entityHeaders(entity));
    assert.match(text, /^Category: compute; scheme="http:\/\/schemas\.ogf\.org\/occi\/infrastructure#"; class="kind"\n/);
    assert.match(
      text,
      /Link: <\/compute\/c0ffee00-0000-4000-8000-000000000001\?action=stop>; rel="http:\/\/schemas\.ogf\.org\/occi\/infrastructure\/compute\/action#stop"/,
    );
    assert.match(
      text,
      /Link: <\/storage\/vol-1>; rel="http:\/\/schemas\.ogf\.org\/occi\/infrastructure#storage"; self="\/storagelink\/vol-1"/,
    );
    const back = parsePlainText(text);
    assert.equal(back.attributes['occi.compute.state'], 'active');
    assert.equal(back.attributes['lapis.container.environment'], JSON.stringify({ A: 'x, "y"; z' }));
    assert.ok(back.categories.some((c) => c.term === 'lapis_busybox_testenv'));
  });

  it('says which line of a text/plain body is wrong', () => {
    assert.throws(() => parsePlainText('Category: compute; scheme="x#"\nnot a header'), /line 2: expected "Name: value"/);
    assert.throws(() => parsePlainText('Foo: bar'), /unknown OCCI header "Foo"/);
    assert.throws(() => parsePlainText('X-OCCI-Attribute: a=unquoted text'), /neither a quoted string, a number nor a boolean/);
    assert.throws(() => parsePlainText('Category: compute'), /scheme is required/);
  });
});

describe('OCCI JSON rendering (GFD.226)', () => {
  it('renders resources, links, collections and the query interface valid against the schema', () => {
    const compute = computeEntity(claim, instance, templates);
    assertValidOcciJson(entityJson(compute), 'resource');
    assertValidOcciJson(entityJson(compute.links[0]!), 'link');
    const volume = storageEntity(Volume.fromPartial({ id: 'vol-1', name: 'data', sizeBytes: 2 ** 30, state: VolumeState.AVAILABLE }));
    assertValidOcciJson(collectionJson([compute, volume, compute.links[0]!]), 'collection');
    assertValidOcciJson(queryInterfaceJson([...STATIC_CATEGORIES, ...templates.images, ...templates.flavors]), 'query_interface');
  });

  it('parses an entity and an action invocation; names what is wrong otherwise', () => {
    const request = parseJson(
      JSON.stringify({
        kind: 'http://schemas.ogf.org/occi/infrastructure#compute',
        mixins: ['http://schemas.lapis.dev/occi/resource_tpl#m1.small'],
        attributes: { 'occi.core.title': 'web-2' },
        links: [{ kind: 'http://schemas.ogf.org/occi/infrastructure#storagelink', target: { location: '/storage/vol-9' }, attributes: {} }],
      }),
    );
    assert.equal(request.categories.length, 2);
    assert.equal(request.links[0]?.target, '/storage/vol-9');
    assert.equal(
      parseJson('{"action":"http://schemas.ogf.org/occi/infrastructure/compute/action#stop"}').action,
      'http://schemas.ogf.org/occi/infrastructure/compute/action#stop',
    );
    assert.throws(() => parseJson('{'), /body is not JSON/);
    assert.throws(() => parseJson('[]'), /body must be a JSON object/);
    assert.throws(() => parseJson('{"kind":"compute"}'), /kind: "compute" is not scheme#term/);
    assert.throws(() => parseJson('{"kind":"a#b","attributes":{"x":[1]}}'), /attributes\.x/);
  });
});

describe('compute from and to Lapis', () => {
  it('shows a queued claim as inactive with its pending reason, and no actions', () => {
    const pending = Claim.fromPartial({
      ...claim,
      state: ClaimState.PENDING,
      instanceState: InstanceState.PENDING,
      pendingReason: PendingReason.RESOURCES,
    });
    const entity = computeEntity(pending, undefined, templates);
    assert.equal(entity.attributes['occi.compute.state'], 'inactive');
    assert.match(String(entity.attributes['occi.compute.state.message']), /waiting for room/);
    assert.deepEqual(entity.actions, []);
  });

  it('turns templates, the container mixin and storage links into an instance spec', () => {
    const { spec, volumeLinks } = computeSpec(
      parseHeaders([
        ['Category', 'compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind"'],
        ['Category', 'lapis_busybox_testenv; scheme="http://schemas.lapis.dev/occi/os_tpl#"; class="mixin"'],
        ['Category', 'm1.small; scheme="http://schemas.lapis.dev/occi/resource_tpl#"; class="mixin"'],
        [
          'X-OCCI-Attribute',
          'occi.core.title="web-3", lapis.container.command="[\\"sleep\\",\\"600\\"]", lapis.container.ports="[\\"8080/tcp\\"]"',
        ],
        [
          'Link',
          '</storage/vol-2>; rel="http://schemas.ogf.org/occi/infrastructure#storage"; category="http://schemas.ogf.org/occi/infrastructure#storagelink"; occi.storagelink.mountpoint="/data"',
        ],
      ]),
      templates,
    );
    assert.equal(spec.image, 'lapis/busybox:testenv');
    assert.equal(spec.flavor, 'm1.small');
    assert.deepEqual(spec.command, ['sleep', '600']);
    assert.equal(spec.ports[0]?.containerPort, 8080);
    assert.deepEqual(volumeLinks, [{ volumeId: 'vol-2', mountPath: '/data' }]);
  });

  it('refuses a compute without templates or with unknown attributes, naming them', () => {
    const kind = ['Category', 'compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind"'] as [string, string];
    assert.throws(() => computeSpec(parseHeaders([kind]), templates), /os_tpl/);
    assert.throws(
      () =>
        computeSpec(
          parseHeaders([
            kind,
            ['Category', 'lapis_busybox_testenv; scheme="http://schemas.lapis.dev/occi/os_tpl#"'],
            ['Category', 'm1.small; scheme="http://schemas.lapis.dev/occi/resource_tpl#"'],
            ['X-OCCI-Attribute', 'occi.bogus=1'],
          ]),
          templates,
        ),
      /attribute occi\.bogus is not defined/,
    );
  });
});

describe('content negotiation', () => {
  it('defaults to text/plain, honours Accept, refuses what it cannot render', () => {
    assert.equal(responseRendering(undefined, false), 'text/plain');
    assert.equal(responseRendering('*/*', true), 'text/plain');
    assert.equal(responseRendering('application/occi+json', false), 'application/occi+json');
    assert.equal(responseRendering('application/json', false), 'application/occi+json');
    assert.equal(responseRendering('text/uri-list', true), 'text/uri-list');
    assert.throws(
      () => responseRendering('text/uri-list', false),
      (e: OcciError) => e.status === 400,
    );
    assert.throws(
      () => responseRendering('image/png', false),
      (e: OcciError) => e.status === 406,
    );
    assert.equal(requestRendering('application/occi+json; charset=utf-8', true), 'application/occi+json');
    assert.throws(
      () => requestRendering('application/xml', true),
      (e: OcciError) => e.status === 415,
    );
  });
});

describe('parsers under fuzzing: bad input is a 4xx, never a crash', () => {
  const onlyClientErrors = (run: () => unknown) => {
    try {
      run();
    } catch (error) {
      if (!(error instanceof OcciError) || error.status < 400 || error.status >= 500) throw error;
    }
  };
  const headerish = fc.stringMatching(/^[a-zA-Z0-9 .:;,="\\<>/#{}_\-[\]]{0,120}$/);

  it('text/plain bodies and OCCI headers', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('Category', 'X-OCCI-Attribute', 'Link', 'X-OCCI-Location'), headerish), { maxLength: 6 }),
        (headers) => {
          onlyClientErrors(() => parseHeaders(headers));
          onlyClientErrors(() => parsePlainText(headers.map(([n, v]) => `${n}: ${v}`).join('\n')));
        },
      ),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (body) => onlyClientErrors(() => parsePlainText(body))),
      { numRuns: 3000 },
    );
  });

  it('JSON bodies', () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 4 }), (json) => onlyClientErrors(() => parseJson(json))),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => onlyClientErrors(() => parseJson(text))),
      { numRuns: 2000 },
    );
  });

  it('compute specs from arbitrary parsed requests', () => {
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.constantFrom(
            'occi.core.title',
            'lapis.container.command',
            'lapis.container.ports',
            'lapis.container.environment',
            'occi.compute.userdata',
          ),
          fc.oneof(fc.string(), fc.integer(), fc.boolean()),
        ),
        (attributes) => {
          onlyClientErrors(() =>
            computeSpec(
              {
                categories: parseHeaders([
                  [
                    'Category',
                    'compute; scheme="http://schemas.ogf.org/occi/infrastructure#", lapis_busybox_testenv; scheme="http://schemas.lapis.dev/occi/os_tpl#", m1.small; scheme="http://schemas.lapis.dev/occi/resource_tpl#"',
                  ],
                ]).categories,
                attributes,
                links: [],
                locations: [],
              },
              templates,
            ),
          );
        },
      ),
      { numRuns: 2000 },
    );
  });
});
