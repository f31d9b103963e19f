// Issue 18: the gateway as OCCI 1.2 says, for every client, over the real mesh (NATS, Docker,
// the scheduler, the runtime, image-sync). Each case cites the requirement it checks:
// GFD.221 (Core), GFD.223 (HTTP protocol), GFD.224 (Infrastructure), GFD.226 (JSON), GFD.229 (text).
import { strict as assert } from 'node:assert';
import { startMesh, type Mesh } from '@lapis/mesh';
import { until } from '@lapis/platform/testing';
import { docker } from '@lapis/testenv';
import { assertValidOcciJson } from '../schema';
import { networkCases } from './occi-networks.cases';

const INFRA = 'http://schemas.ogf.org/occi/infrastructure#';
const COMPUTE_ACTION = 'http://schemas.ogf.org/occi/infrastructure/compute/action#';
const USER = 'http://schemas.lapis.dev/occi/user/tags#';
const KIND = (term: string) => `Category: ${term}; scheme="${INFRA}"; class="kind"`;
const SLEEP = 'X-OCCI-Attribute: lapis.container.command="[\\"sleep\\",\\"3600\\"]"';
const JSON_TYPE = { 'content-type': 'application/occi+json', accept: 'application/occi+json' };

describe('occi-gateway as OCCI 1.2 says (issue 18)', function () {
  this.timeout(180_000);
  let mesh: Mesh;
  let base: string;
  const alice = { authorization: 'Bearer alice-token' };
  const bob = { authorization: 'Bearer bob-token' };
  let osTpl: string;

  const http = async (method: string, path: string, headers: Record<string, string> = {}, body?: string) => {
    const response = await fetch(`${base}${path}`, { method, headers: { ...alice, ...headers }, body });
    return { status: response.status, headers: response.headers, text: await response.text() };
  };
  const json = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const response = await http(method, path, { ...JSON_TYPE, ...headers }, body === undefined ? undefined : JSON.stringify(body));
    return {
      ...response,
      body: response.text && response.headers.get('content-type')?.includes('json') ? JSON.parse(response.text) : undefined,
    };
  };
  const attribute = (text: string, name: string) =>
    new RegExp(`${name.replace(/\./g, '\\.')}=("((?:[^"\\\\]|\\\\.)*)"|[^;\\n,]+)`).exec(text)?.[2] ??
    new RegExp(`${name.replace(/\./g, '\\.')}=([^;\\n,"]+)`).exec(text)?.[1];
  const containerOf = async (id: string) => (await docker(['ps', '-aq', '--filter', `label=lapis.instance-id=${id}`])).trim();
  const templates = (flavor = 'm1.tiny') => [
    `Category: ${osTpl}; scheme="http://schemas.lapis.dev/occi/os_tpl#"; class="mixin"`,
    `Category: ${flavor}; scheme="http://schemas.lapis.dev/occi/resource_tpl#"; class="mixin"`,
  ];
  const createCompute = async (lines: string[], flavor = 'm1.tiny') => {
    const created = await http(
      'POST',
      '/compute/',
      { 'content-type': 'text/plain' },
      [KIND('compute'), ...templates(flavor), ...lines].join('\n'),
    );
    assert.equal(created.status, 201, created.text);
    return new URL(created.headers.get('location')!).pathname;
  };
  const state = async (location: string) => attribute((await http('GET', location)).text, 'occi.compute.state');

  before(async () => {
    mesh = await startMesh({ services: ['image-sync', 'container-runtime', 'scheduler', 'occi-gateway'] });
    base = mesh.occiUrl!;
    const query = await http('GET', '/-/');
    osTpl = /^Category: ([^;]+); scheme="http:\/\/schemas\.lapis\.dev\/occi\/os_tpl#"/m.exec(query.text)![1]!;
  });
  after(async () => mesh?.stop());

  /** A running compute the update cases share; its title is a hostname, so it is made on any version. */
  let machine: string;
  before(async () => {
    machine = await createCompute(['X-OCCI-Attribute: occi.core.title="machine-one"', SLEEP]);
    await until(async () => (await state(machine)) === 'active' || undefined, 'the shared compute to run', 60_000);
  });

  describe('item 1: occi.core.title is free text (GFD.221 3.6: title is a display name)', () => {
    it('takes "My Machine" as the title and derives the hostname from it', async () => {
      const location = await createCompute(['X-OCCI-Attribute: occi.core.title="My Machine"', SLEEP]);
      try {
        const got = await http('GET', location);
        assert.equal(attribute(got.text, 'occi.core.title'), 'My Machine');
        assert.equal(attribute(got.text, 'occi.compute.hostname'), 'my-machine');
        await until(async () => (await state(location)) === 'active' || undefined, 'the compute to run', 60_000);
        const container = await containerOf(location.split('/')[2]!);
        assert.equal((await docker(['inspect', '-f', '{{.Config.Hostname}}', container])).trim(), 'my-machine');
      } finally {
        assert.equal((await http('DELETE', location)).status, 200);
      }
    });

    it('takes "Test_title_1" in JSON and keeps occi.compute.hostname when given', async () => {
      const created = await json('POST', '/compute/', {
        kind: `${INFRA}compute`,
        mixins: [`http://schemas.lapis.dev/occi/os_tpl#${osTpl}`, 'http://schemas.lapis.dev/occi/resource_tpl#m1.tiny'],
        attributes: { 'occi.core.title': 'Test_title_1', 'occi.compute.hostname': 'node-7', 'lapis.container.command': ['sleep', '3600'] },
      });
      assert.equal(created.status, 201, created.text);
      assertValidOcciJson(created.body, 'resource');
      assert.equal(created.body.attributes['occi.core.title'], 'Test_title_1');
      assert.equal(created.body.title, 'Test_title_1');
      assert.equal(created.body.attributes['occi.compute.hostname'], 'node-7');
      assert.equal((await http('DELETE', created.body.location)).status, 200);
    });

    it('refuses a hostname that is not one with 400 naming occi.compute.hostname', async () => {
      const bad = await http(
        'POST',
        '/compute/',
        { 'content-type': 'text/plain' },
        [KIND('compute'), ...templates(), 'X-OCCI-Attribute: occi.compute.hostname="Not A Host"'].join('\n'),
      );
      assert.equal(bad.status, 400, bad.text);
      assert.match(bad.text, /occi\.compute\.hostname/);
    });
  });

  describe('item 2: suspend freezes the container, start resumes it; storage online/offline are not offered (GFD.224 3.1, GFD.221 3.4.2)', () => {
    it('advertises suspend on the compute kind and not storage online/offline, in the query interface', async () => {
      const query = await json('GET', '/-/');
      assertValidOcciJson(query.body, 'query_interface');
      const compute = query.body.kinds.find((k: { term: string }) => k.term === 'compute');
      assert.ok(compute.actions.includes(`${COMPUTE_ACTION}suspend`), compute.actions.join(' '));
      const storage = query.body.kinds.find((k: { term: string }) => k.term === 'storage');
      assert.deepEqual(storage.actions ?? [], []);
      const actions = query.body.actions.map((a: { scheme: string; term: string }) => a.scheme + a.term);
      assert.ok(actions.includes(`${COMPUTE_ACTION}suspend`), actions.join(' '));
      assert.ok(!actions.some((a: string) => /#(online|offline)$/.test(a)), actions.join(' '));
    });

    it('suspends an active compute (the container paused, state suspended, start offered) and resumes it with start', async () => {
      const location = await createCompute(['X-OCCI-Attribute: occi.core.title="to freeze"', SLEEP]);
      try {
        await until(async () => (await state(location)) === 'active' || undefined, 'the compute to run', 60_000);
        const active = await json('GET', location);
        assert.ok(active.body.actions.includes(`${COMPUTE_ACTION}suspend`), active.body.actions.join(' '));
        assert.match((await http('GET', location)).text, /^Link: <[^>]*\?action=suspend>/m);
        const container = await containerOf(location.split('/')[2]!);
        // GFD.224 offers only method=suspend here (in memory): hibernate has no Lapis counterpart.
        const hibernate = await http(
          'POST',
          `${location}?action=suspend`,
          { 'content-type': 'text/plain' },
          'X-OCCI-Attribute: method="hibernate"',
        );
        assert.equal(hibernate.status, 400, hibernate.text);
        assert.match(hibernate.text, /hibernate/);

        const suspended = await json('POST', `${location}?action=suspend`, { action: `${COMPUTE_ACTION}suspend` });
        assert.equal(suspended.status, 200, suspended.text);
        assertValidOcciJson(suspended.body, 'resource');
        assert.equal(suspended.body.attributes['occi.compute.state'], 'suspended');
        assert.deepEqual(suspended.body.actions.sort(), [`${COMPUTE_ACTION}start`, `${COMPUTE_ACTION}stop`]);
        assert.equal((await docker(['inspect', '-f', '{{.State.Status}}', container])).trim(), 'paused');
        const inCollection = await http('GET', '/compute/', {
          accept: 'text/uri-list',
          'x-occi-attribute': 'occi.compute.state="suspended"',
        });
        assert.match(inCollection.text, new RegExp(location));
        const restart = await http('POST', `${location}?action=restart`);
        assert.equal(restart.status, 409, restart.text);
        assert.match(restart.text, /SUSPENDED/);

        const resumed = await http('POST', `${location}?action=start`);
        assert.equal(resumed.status, 200, resumed.text);
        assert.equal(attribute(resumed.text, 'occi.compute.state'), 'active');
        assert.equal((await docker(['inspect', '-f', '{{.State.Status}}', container])).trim(), 'running');
        assert.equal(await containerOf(location.split('/')[2]!), container, 'the same container runs on');
      } finally {
        assert.equal((await http('DELETE', location)).status, 200);
      }
    });

    it('answers suspend on a compute that is not active with 409 naming its state', async () => {
      const location = await createCompute([SLEEP], 'm1.large');
      try {
        const queued = await http('POST', `${location}?action=suspend`);
        assert.equal(queued.status, 409, queued.text);
        assert.match(queued.text, /queued/);
      } finally {
        assert.equal((await http('DELETE', location)).status, 200);
      }
    });
  });

  describe('item 3: update (GFD.223 4.4: partial update with POST, full update with PUT, mixin collections)', () => {
    it('answers POST and PUT on an unknown entity with 404', async () => {
      for (const method of ['POST', 'PUT']) {
        const response = await http(
          method,
          '/compute/00000000-0000-4000-8000-00000000dead',
          { 'content-type': 'text/plain' },
          'X-OCCI-Attribute: occi.core.title="x"',
        );
        assert.equal(response.status, 404, `${method}: ${response.text}`);
      }
    });

    it('updates title and summary partially with POST, in text/plain and in JSON', async () => {
      const posted = await http(
        'POST',
        machine,
        { 'content-type': 'text/plain' },
        'X-OCCI-Attribute: occi.core.title="Renamed, with; separators"\nX-OCCI-Attribute: occi.core.summary="first summary"',
      );
      assert.equal(posted.status, 200, posted.text);
      assert.equal(attribute(posted.text, 'occi.core.title'), 'Renamed, with; separators');
      const partial = await json('POST', machine, { kind: `${INFRA}compute`, attributes: { 'occi.core.summary': 'json summary' } });
      assert.equal(partial.status, 200, partial.text);
      assertValidOcciJson(partial.body, 'resource');
      assert.equal(partial.body.attributes['occi.core.title'], 'Renamed, with; separators', 'a partial update keeps what it does not name');
      assert.equal(partial.body.attributes['occi.core.summary'], 'json summary');
      assert.equal(partial.body.summary, 'json summary');
      const occi = await fetch(`${base}${machine}`, { headers: { ...alice, accept: 'text/occi' } });
      assert.match(occi.headers.get('x-occi-attribute') ?? '', /occi\.core\.summary="json summary"/);
      // The compute's own attributes are untouched.
      assert.equal(attribute((await http('GET', machine)).text, 'occi.compute.hostname'), 'machine-one');
    });

    it('replaces the mutable attributes with PUT (text/occi headers): what is not given goes', async () => {
      const put = await fetch(`${base}${machine}`, {
        method: 'PUT',
        headers: {
          ...alice,
          'content-type': 'text/occi',
          accept: 'text/occi',
          category: `compute; scheme="${INFRA}"; class="kind"`,
          'x-occi-attribute': 'occi.core.title="Put title"',
        },
      });
      assert.equal(put.status, 200, await put.text());
      assert.equal(put.headers.get('content-type'), 'text/occi');
      const got = await http('GET', machine);
      assert.equal(attribute(got.text, 'occi.core.title'), 'Put title');
      assert.equal(attribute(got.text, 'occi.core.summary'), undefined);
    });

    it('round-trips a GET body through PUT: immutable attributes with their current values are accepted', async () => {
      const current = await json('GET', machine);
      current.body.attributes['occi.core.title'] = 'Round trip';
      const put = await json('PUT', machine, current.body);
      assert.equal(put.status, 200, put.text);
      assert.equal(put.body.attributes['occi.core.title'], 'Round trip');
    });

    it('keeps what it was told across a restart of the gateway (the state is in NATS, not in the process)', async () => {
      const posted = await http(
        'POST',
        machine,
        { 'content-type': 'text/plain' },
        'X-OCCI-Attribute: occi.core.summary="survives restarts"',
      );
      assert.equal(posted.status, 200, posted.text);
      await mesh.processes['occi-gateway']!.stop();
      await mesh.start('occi-gateway');
      base = mesh.occiUrl!;
      const got = await http('GET', machine);
      assert.equal(attribute(got.text, 'occi.core.summary'), 'survives restarts');
      assert.equal(attribute(got.text, 'occi.core.title'), 'Round trip');
    });

    it('refuses to change immutable or unknown attributes, a kind or a template, with 400 naming it', async () => {
      const cases: Array<[string, RegExp]> = [
        ['X-OCCI-Attribute: occi.compute.cores=8', /occi\.compute\.cores/],
        ['X-OCCI-Attribute: occi.compute.hostname="other"', /occi\.compute\.hostname/],
        ['X-OCCI-Attribute: occi.core.id="another-id"', /occi\.core\.id/],
        ['X-OCCI-Attribute: no.such.attribute="x"', /no\.such\.attribute/],
        ['X-OCCI-Attribute: occi.core.title=3', /occi\.core\.title/],
        [KIND('storage'), /storage/],
        ['Category: m1.small; scheme="http://schemas.lapis.dev/occi/resource_tpl#"; class="mixin"', /m1\.small/],
      ];
      for (const [line, message] of cases) {
        for (const method of ['POST', 'PUT']) {
          const response = await http(method, machine, { 'content-type': 'text/plain' }, line);
          assert.equal(response.status, 400, `${method} ${line}: ${response.status} ${response.text}`);
          assert.match(response.text, message);
        }
      }
      const jsonBad = await json('POST', machine, { kind: `${INFRA}compute`, attributes: { 'occi.compute.memory': 64 } });
      assert.equal(jsonBad.status, 400, jsonBad.text);
      assert.equal(jsonBad.headers.get('content-type'), 'application/occi+json');
      assert.match(jsonBad.text, /occi\.compute\.memory/);
    });

    it('updates a storage title with PUT and refuses a new size', async () => {
      const created = await json('POST', '/storage/', {
        kind: `${INFRA}storage`,
        attributes: { 'occi.core.title': 'disk-one', 'occi.storage.size': 0.05 },
      });
      assert.equal(created.status, 201, created.text);
      const location = created.body.location as string;
      try {
        const put = await http(
          'PUT',
          location,
          { 'content-type': 'text/plain' },
          `${KIND('storage')}\nX-OCCI-Attribute: occi.core.title="disk renamed"`,
        );
        assert.equal(put.status, 200, put.text);
        assert.equal(attribute((await http('GET', location)).text, 'occi.core.title'), 'disk renamed');
        const resize = await http('POST', location, { 'content-type': 'text/plain' }, 'X-OCCI-Attribute: occi.storage.size=2');
        assert.equal(resize.status, 400, resize.text);
        assert.match(resize.text, /occi\.storage\.size/);
      } finally {
        assert.equal((await http('DELETE', location)).status, 200);
      }
    });

    it('associates and dissociates a user mixin on the entity and through its location', async () => {
      const defined = await http(
        'POST',
        '/-/',
        { 'content-type': 'text/plain' },
        `Category: gold; scheme="${USER}"; class="mixin"; location="/mixins/gold/"`,
      );
      assert.equal(defined.status, 200, defined.text);
      const mixinLine = `Category: gold; scheme="${USER}"; class="mixin"`;
      // Entity: POST adds the mixin (GFD.223 partial update).
      const added = await http('POST', machine, { 'content-type': 'text/plain' }, mixinLine);
      assert.equal(added.status, 200, added.text);
      assert.match((await http('GET', machine)).text, /^Category: gold; scheme="http:\/\/schemas\.lapis\.dev\/occi\/user\/tags#"/m);
      const listed = await http('GET', '/mixins/gold/', { accept: 'text/uri-list' });
      assert.equal(listed.status, 200, listed.text);
      assert.deepEqual(listed.text.split('\r\n').filter(Boolean), [`${base}${machine}`]);
      // Entity: PUT without it removes it (full update).
      const replaced = await http(
        'PUT',
        machine,
        { 'content-type': 'text/plain' },
        `${KIND('compute')}\nX-OCCI-Attribute: occi.core.title="Put title"`,
      );
      assert.equal(replaced.status, 200, replaced.text);
      assert.doesNotMatch((await http('GET', machine)).text, /Category: gold/);
      assert.equal((await http('GET', '/mixins/gold/', { accept: 'text/uri-list' })).text, '');
      // Mixin location: POST adds entities, DELETE removes them, PUT replaces the whole set.
      const viaLocation = await fetch(`${base}/mixins/gold/`, {
        method: 'POST',
        headers: { ...alice, 'content-type': 'text/occi', 'x-occi-location': `${base}${machine}` },
      });
      assert.equal(viaLocation.status, 200, await viaLocation.text());
      assert.match((await json('GET', machine)).body.mixins.join(' '), /user\/tags#gold/);
      const removed = await http('DELETE', '/mixins/gold/', { 'content-type': 'text/plain' }, `X-OCCI-Location: ${machine}`);
      assert.equal(removed.status, 200, removed.text);
      assert.doesNotMatch((await http('GET', machine)).text, /Category: gold/);
      const setJson = await json('PUT', '/mixins/gold/', {
        resources: [{ kind: `${INFRA}compute`, id: machine.split('/')[2], location: machine }],
      });
      assert.equal(setJson.status, 200, setJson.text);
      const collection = await json('GET', '/mixins/gold/');
      assertValidOcciJson(collection.body, 'collection');
      assert.deepEqual(
        collection.body.resources.map((r: { location: string }) => r.location),
        [machine],
      );
      const emptied = await http('PUT', '/mixins/gold/', { 'content-type': 'text/uri-list' }, '');
      assert.equal(emptied.status, 200, emptied.text);
      assert.doesNotMatch((await http('GET', machine)).text, /Category: gold/);
      // Another project's entity cannot be put into a mixin.
      const foreign = await http('POST', '/mixins/gold/', { ...bob, 'content-type': 'text/plain' }, `X-OCCI-Location: ${machine}`);
      assert.equal(foreign.status, 404, foreign.text);
      // A mixin that was not defined, or a template, cannot be associated after creation.
      const undefinedMixin = await http(
        'POST',
        machine,
        { 'content-type': 'text/plain' },
        `Category: silver; scheme="${USER}"; class="mixin"`,
      );
      assert.equal(undefinedMixin.status, 400, undefinedMixin.text);
      assert.match(undefinedMixin.text, /silver/);
    });
  });

  describe('item 4: an empty collection is rendered as one (GFD.229, GFD.226)', () => {
    it('renders an empty collection in every collection rendering', async () => {
      const plain = await http('GET', '/storage/', { ...bob, accept: 'text/plain' });
      assert.equal(plain.status, 200);
      assert.equal(plain.headers.get('content-type'), 'text/plain; charset=utf-8');
      assert.doesNotMatch(plain.text, /\S/, 'no X-OCCI-Location line and nothing else');
      const occi = await http('GET', '/storage/', { ...bob, accept: 'text/occi' });
      assert.equal(occi.headers.get('content-type'), 'text/occi');
      // text/occi carries the collection in headers: none at all for an empty one.
      assert.equal(occi.headers.get('x-occi-location'), null);
      const uris = await http('GET', '/storage/', { ...bob, accept: 'text/uri-list' });
      assert.equal(uris.text, '');
      for (const accept of ['application/occi+json', 'application/json']) {
        const rendered = await http('GET', '/storage/', { ...bob, accept });
        const body = JSON.parse(rendered.text);
        assertValidOcciJson(body, 'collection');
        assert.deepEqual(body.resources, [], `${accept}: ${rendered.text}`);
      }
      const links = JSON.parse((await http('GET', '/storagelink/', { ...bob, accept: 'application/occi+json' })).text);
      assertValidOcciJson(links, 'collection');
      assert.deepEqual(links.links, []);
    });
  });

  describe('item 7: networks made, and compute linked to them while it runs (GFD.224 3.3.1, 3.4.2)', () => {
    networkCases({ base: () => base, machine: () => machine, http, json, containerOf, bob });
  });

  describe('item 5: a compute keeps its state until deleted; deleting is once (GFD.224 3.1, GFD.223 4.4)', () => {
    it('shows a compute whose container exits as error with its message, in the entity and the collection', async () => {
      const failing = await createCompute([
        'X-OCCI-Attribute: occi.core.title="exits"',
        'X-OCCI-Attribute: lapis.container.command="[\\"sh\\",\\"-c\\",\\"exit 3\\"]"',
      ]);
      const id = failing.split('/')[2]!;
      const seen = await until(
        async () => {
          const got = await json('GET', failing);
          assert.notEqual(got.status, 404, `the compute disappeared: ${got.text}`);
          return got.body.attributes['occi.compute.state'] === 'error' ? got.body : undefined;
        },
        'the compute to show error',
        60_000,
      );
      assertValidOcciJson(seen, 'resource');
      assert.match(seen.attributes['occi.compute.state.message'], /exited with code 3/);
      const collection = await json('GET', '/compute/');
      assert.ok(
        collection.body.resources.some((r: { id: string }) => r.id === id),
        'the collection lists it',
      );
      // DELETE removes the instance, once; a second DELETE finds nothing.
      assert.equal((await http('DELETE', failing)).status, 200);
      await until(async () => (await containerOf(id)) === '' || undefined, 'the container to be removed', 60_000);
      assert.equal((await http('DELETE', failing)).status, 404);
      assert.equal((await http('GET', failing)).status, 404);
    });

    it('answers actions and links on a compute still queued with 409 saying so, while GET answers 200', async () => {
      const queued = await createCompute(['X-OCCI-Attribute: occi.core.title="needs-a-gpu"'], 'g1.small');
      try {
        const got = await http('GET', queued);
        assert.equal(got.status, 200, got.text);
        assert.equal(attribute(got.text, 'occi.compute.state'), 'inactive');
        const stop = await http('POST', `${queued}?action=stop`);
        assert.equal(stop.status, 409, stop.text);
        assert.match(stop.text, /queued/);
        // An action on the collection goes to the computes that offer it now: none here, so nothing fails.
        const all = await http('POST', '/compute/?action=start');
        assert.equal(all.status, 200, all.text);
        const storage = await json('POST', '/storage/', { kind: `${INFRA}storage`, attributes: { 'occi.storage.size': 0.05 } });
        assert.equal(storage.status, 201, storage.text);
        const link = await json('POST', '/storagelink/', { kind: `${INFRA}storagelink`, source: queued, target: storage.body.location });
        assert.equal(link.status, 409, link.text);
        assert.match(link.text, /queued/);
        assert.equal((await http('DELETE', storage.body.location)).status, 200);
      } finally {
        assert.equal((await http('DELETE', queued)).status, 200);
      }
      assert.equal((await http('DELETE', queued)).status, 404, 'a second DELETE finds nothing');
    });

    it('deletes a running compute once: its container goes and a second DELETE answers 404', async () => {
      const id = machine.split('/')[2]!;
      assert.equal((await http('DELETE', machine)).status, 200);
      await until(async () => (await containerOf(id)) === '' || undefined, 'the container to be removed', 60_000);
      assert.equal((await http('DELETE', machine)).status, 404);
    });
  });

  describe('item 6: errors in the asked rendering; DELETE /-/ needs a mixin', () => {
    it('answers errors in the rendering the client asked for', async () => {
      const missing = '/compute/00000000-0000-4000-8000-00000000beef';
      const occi = await http('GET', missing, { accept: 'text/occi' });
      assert.equal(occi.status, 404);
      assert.equal(occi.headers.get('content-type'), 'text/occi');
      assert.match(occi.text, /does not exist/);
      const plain = await http('GET', missing, { accept: 'text/plain' });
      assert.equal(plain.headers.get('content-type'), 'text/plain; charset=utf-8');
      for (const accept of ['application/occi+json', 'application/json']) {
        const rendered = await http('GET', missing, { accept });
        assert.equal(rendered.status, 404);
        assert.equal(rendered.headers.get('content-type'), 'application/occi+json');
        assert.match(JSON.parse(rendered.text).error.message, /does not exist/);
      }
    });

    it('answers DELETE /-/ without a mixin with 400', async () => {
      const response = await http('DELETE', '/-/');
      assert.equal(response.status, 400, response.text);
      assert.match(response.text, /no mixin given/);
    });
  });
});
