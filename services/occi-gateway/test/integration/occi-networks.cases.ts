// Issue 18 item 7, run by occi-spec.test.ts on its mesh and its running compute: a network made
// through OCCI (the ipnetwork mixin: GFD.224 3.3.1), a network interface that connects the
// running compute to it and, deleted, disconnects it (GFD.224 3.4.2), in every rendering;
// 201 with Location, 404 for what does not exist, 400 naming the bad attribute, 409 where the
// state forbids (GFD.223 4.4, 5).
import { strict as assert } from 'node:assert';
import { docker } from '@lapis/testenv';
import { assertValidOcciJson } from '../schema';

const INFRA = 'http://schemas.ogf.org/occi/infrastructure#';
const IPNETWORK = 'Category: ipnetwork; scheme="http://schemas.ogf.org/occi/infrastructure/network#"; class="mixin"';

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

export interface NetworkCase {
  base: () => string;
  machine: () => string;
  http: (method: string, path: string, headers?: Record<string, string>, body?: string) => Promise<Answer>;
  json: (method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<Answer & { body: any }>;
  containerOf: (id: string) => Promise<string>;
  bob: Record<string, string>;
}

export function networkCases(t: NetworkCase): void {
  // A /24 of its own: the test engine may be shared, and bridges may not overlap.
  const prefix = `10.${128 + Math.floor(Math.random() * 120)}.${Math.floor(Math.random() * 256)}`;
  const ipOf = async (container: string) => docker(['exec', container, 'ip', '-4', 'addr']);
  let network: string;

  it('creates a network with the ipnetwork mixin (201, Location) and renders it in every rendering', async () => {
    const created = await t.http(
      'POST',
      '/network/',
      { 'content-type': 'text/plain' },
      [
        `Category: network; scheme="${INFRA}"; class="kind"`,
        IPNETWORK,
        'X-OCCI-Attribute: occi.core.title="Back End"',
        `X-OCCI-Attribute: occi.network.address="${prefix}.0/24"`,
        `X-OCCI-Attribute: occi.network.gateway="${prefix}.254"`,
        'X-OCCI-Attribute: occi.network.allocation="static"',
      ].join('\n'),
    );
    assert.equal(created.status, 201, created.text);
    network = new URL(created.headers.get('location')!).pathname;
    assert.match(network, /^\/network\/net-[0-9a-f]+$/);
    const plain = await t.http('GET', network);
    assert.match(plain.text, /Category: ipnetwork; scheme="http:\/\/schemas\.ogf\.org\/occi\/infrastructure\/network#"/);
    assert.match(plain.text, new RegExp(`occi\\.network\\.address="${prefix.replace(/\./g, '\\.')}\\.0/24"`));
    assert.match(plain.text, /occi\.core\.title="Back End"/);
    const occi = await fetch(`${t.base()}${network}`, { headers: { authorization: 'Bearer alice-token', accept: 'text/occi' } });
    assert.equal(occi.headers.get('content-type'), 'text/occi');
    assert.match(occi.headers.get('x-occi-attribute') ?? '', /occi\.network\.allocation="static"/);
    const json = (await t.json('GET', network)).body;
    assertValidOcciJson(json, 'resource');
    assert.equal(json.attributes['occi.network.gateway'], `${prefix}.254`);
    const uris = await t.http('GET', '/network/', { accept: 'text/uri-list' });
    assert.ok(uris.text.split('\r\n').includes(`${t.base()}${network}`), uris.text);
    assert.ok(uris.text.includes('/network/lapis-project-'), 'the default project network is listed too');
    const collection = (await t.json('GET', '/network/')).body;
    assertValidOcciJson(collection, 'collection');
    assert.equal((await t.http('GET', network, t.bob)).status, 404, 'another project does not see it');
  });

  it('refuses a bad network with 400 naming the attribute, a taken title with 409', async () => {
    const post = (attributes: Record<string, unknown>) => t.json('POST', '/network/', { kind: `${INFRA}network`, attributes });
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{}, /occi\.network\.address: required/],
      [{ 'occi.network.address': '10.1.2.3/33' }, /occi\.network\.address/],
      [{ 'occi.network.address': '10.9.9.0/24', 'occi.network.gateway': '192.0.2.1' }, /occi\.network\.gateway/],
      [{ 'occi.network.address': '10.9.9.0/24', 'occi.network.allocation': 'weird' }, /occi\.network\.allocation/],
      [{ 'occi.network.address': `${prefix}.128/25` }, /occi\.network\.address: .*overlaps/],
      [{ 'occi.network.address': '10.9.9.0/24', 'occi.network.vlan.tag': 3 }, /occi\.network\.vlan\.tag is not defined/],
    ];
    for (const [attributes, message] of cases) {
      const refused = await post(attributes);
      assert.equal(refused.status, 400, `${JSON.stringify(attributes)}: ${refused.text}`);
      assert.match(refused.body.error.message, message);
    }
    const taken = await post({ 'occi.core.title': 'back end', 'occi.network.address': '10.9.9.0/24' });
    assert.equal(taken.status, 409, taken.text);
  });

  it('connects the running compute with a network interface (a new interface in its container), and disconnects it on DELETE', async () => {
    const computeId = t.machine().split('/')[2]!;
    const container = await t.containerOf(computeId);
    const body = (ip: string, target = network) => ({
      kind: `${INFRA}networkinterface`,
      source: t.machine(),
      target,
      attributes: { 'occi.networkinterface.address': ip },
    });
    const outside = await t.json('POST', '/networkinterface/', body('192.0.2.5'));
    assert.equal(outside.status, 400, outside.text);
    assert.match(outside.body.error.message, /occi\.networkinterface\.address/);
    assert.equal((await t.json('POST', '/networkinterface/', body('', '/network/net-0000000000000000'))).status, 404);
    assert.equal((await t.json('POST', '/networkinterface/', { ...body(''), source: '/compute/nope' })).status, 404);

    const linked = await t.json('POST', '/networkinterface/', body(`${prefix}.10`));
    assert.equal(linked.status, 201, linked.text);
    const location = new URL(linked.headers.get('location')!).pathname;
    assert.equal(location, `/networkinterface/${computeId}.${network.split('/')[2]}`);
    assertValidOcciJson(linked.body, 'link');
    assert.equal(linked.body.attributes['occi.networkinterface.address'], `${prefix}.10`);
    // The interface the link names is the container's.
    assert.equal(linked.body.attributes['occi.networkinterface.interface'], 'eth1');
    assert.match(
      await docker(['exec', container, 'ip', '-4', 'addr', 'show', 'eth1']),
      new RegExp(`inet ${prefix.replace(/\./g, '\\.')}\\.10/24`),
    );
    assert.equal((await t.json('POST', '/networkinterface/', body(`${prefix}.11`))).status, 409, 'already connected');
    // The link renders on the compute, and in the interfaces' collection in every rendering.
    const compute = await t.http('GET', t.machine());
    assert.match(compute.text, new RegExp(`Link: <${network}>; rel="${INFRA}network"; self="${location}"`));
    assert.ok((await t.http('GET', '/networkinterface/', { accept: 'text/uri-list' })).text.includes(`${t.base()}${location}`));
    assert.match(
      (await t.http('GET', '/networkinterface/', { accept: 'text/plain' })).text,
      new RegExp(`X-OCCI-Location: ${t.base()}${location}`),
    );
    const links = (await t.json('GET', '/networkinterface/')).body;
    assertValidOcciJson(links, 'collection');
    assert.ok(links.links.some((l: { id: string }) => l.id === location.split('/')[2]));
    assertValidOcciJson((await t.json('GET', location)).body, 'link');
    const inUse = await t.http('DELETE', network);
    assert.equal(inUse.status, 409, inUse.text);

    assert.equal((await t.http('DELETE', location)).status, 200);
    assert.doesNotMatch(await ipOf(container), new RegExp(`inet ${prefix.replace(/\./g, '\\.')}\\.`));
    assert.equal((await t.http('DELETE', location)).status, 404, 'disconnected once');
    assert.doesNotMatch((await t.http('GET', t.machine())).text, new RegExp(`self="${location}"`));
    assert.equal((await t.http('DELETE', network)).status, 200);
    assert.equal((await t.http('GET', network)).status, 404);
    const id = network.split('/')[2]!;
    assert.equal((await docker(['network', 'ls', '-q', '--filter', `name=lapis-${id}`])).trim(), '', 'no bridge left');
  });

  it("refuses to delete the project's default network (405) and answers 404 for one that does not exist", async () => {
    const uris = (await t.http('GET', '/network/', { accept: 'text/uri-list' })).text.split('\r\n');
    const fallback = new URL(uris.find((u) => u.includes('/network/lapis-project-'))!).pathname;
    assert.equal((await t.http('DELETE', fallback)).status, 405);
    assert.equal((await t.http('DELETE', '/network/net-0000000000000000')).status, 404);
    assert.equal((await t.http('DELETE', '/network/nothing-here')).status, 404);
  });
}
