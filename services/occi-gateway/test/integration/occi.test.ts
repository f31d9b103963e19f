// The OCCI gateway wired to the real scheduler, runtime and image-sync (each its own process),
// real NATS, a real Docker engine and real registries: request/response sequences for every
// rendering, a compute whose container runs, a storage linked to it while it runs.
import { strict as assert } from 'node:assert';
import { request as httpRequest } from 'node:http';
import fc from 'fast-check';
import { startMesh, type Mesh } from '@lapis/mesh';
import { until } from '@lapis/platform/testing';
import { docker } from '@lapis/testenv';
import { assertValidOcciJson } from '../schema';

const INFRA = 'http://schemas.ogf.org/occi/infrastructure#';
const KIND = (term: string) => `Category: ${term}; scheme="${INFRA}"; class="kind"`;

describe('occi-gateway over the real mesh', function () {
  this.timeout(180_000);
  let mesh: Mesh;
  let base: string;
  const alice = { authorization: 'Bearer alice-token' };
  const bob = { authorization: 'Bearer bob-token' };

  const http = async (method: string, path: string, headers: Record<string, string> = {}, body?: string) => {
    const response = await fetch(`${base}${path}`, { method, headers: { ...alice, ...headers }, body });
    return { status: response.status, headers: response.headers, text: await response.text() };
  };
  const attribute = (text: string, name: string) =>
    new RegExp(`${name.replace(/\./g, '\\.')}=("([^"]*)"|[^;\\n,]+)`).exec(text)?.[2] ??
    new RegExp(`${name.replace(/\./g, '\\.')}=([^;\\n,"]+)`).exec(text)?.[1];
  /** A request with node:http, which sends what fetch will not (any Host, non-ASCII header bytes, CONNECT). */
  const raw = (method: string, path: string, headers: Record<string, string> = {}, body?: Buffer) =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }>((resolve, reject) => {
      const url = new URL(base);
      const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers: { ...alice, ...headers } });
      const collect = (res: import('node:http').IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      };
      req.on('response', collect);
      req.on('connect', collect);
      req.on('error', reject);
      req.end(body);
    });
  const containerOf = async (id: string) => (await docker(['ps', '-aq', '--filter', `label=lapis.instance-id=${id}`])).trim();

  let osTpl: string;
  let computeLocation: string;
  let computeId: string;

  before(async () => {
    mesh = await startMesh({ services: ['image-sync', 'container-runtime', 'scheduler', 'occi-gateway'] });
    base = mesh.occiUrl!;
  });
  after(async () => mesh?.stop());

  describe('query interface and protocol', () => {
    it('lists kinds, actions, the trusted images as os_tpl and the flavors as resource_tpl, at both paths', async () => {
      const query = await http('GET', '/-/');
      assert.equal(query.status, 200);
      assert.match(query.headers.get('server') ?? '', /OCCI\/1\.2/);
      assert.match(query.text, /^Category: compute; scheme="http:\/\/schemas\.ogf\.org\/occi\/infrastructure#"; class="kind"/m);
      assert.match(
        query.text,
        /Category: start; scheme="http:\/\/schemas\.ogf\.org\/occi\/infrastructure\/compute\/action#"; class="action"/,
      );
      const image = /^Category: ([^;]+); scheme="http:\/\/schemas\.lapis\.dev\/occi\/os_tpl#"; class="mixin"; title="([^"]+)"/m.exec(
        query.text,
      );
      assert.ok(image, 'an os_tpl for the synced image');
      assert.match(image[2]!, /lapis\/busybox:1\.36$/);
      osTpl = image[1]!;
      assert.match(query.text, /Category: m1\.tiny; scheme="http:\/\/schemas\.lapis\.dev\/occi\/resource_tpl#"; class="mixin"/);
      const wellKnown = await http('GET', '/.well-known/org/ogf/occi/-/');
      assert.equal(wellKnown.text, query.text);
    });

    it('renders the query interface as GFD.226 JSON, and filters it by category', async () => {
      const json = await http('GET', '/-/', { accept: 'application/occi+json' });
      assert.equal(json.headers.get('content-type'), 'application/occi+json');
      assertValidOcciJson(JSON.parse(json.text), 'query_interface');
      const only = await http('GET', '/-/?category=storage', { accept: 'application/occi+json' });
      const parsed = JSON.parse(only.text);
      assert.deepEqual(
        parsed.kinds.map((k: { term: string }) => k.term),
        ['storage'],
      );
      assert.equal(parsed.mixins.length + parsed.actions.length, 0);
    });

    it('answers 401 with WWW-Authenticate without a token, and takes X-Auth-Token too', async () => {
      const anonymous = await fetch(`${base}/compute/`);
      assert.equal(anonymous.status, 401);
      assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.match(await anonymous.text(), /missing bearer token/);
      const keystoneStyle = await fetch(`${base}/compute/`, { headers: { 'x-auth-token': 'alice-token' } });
      assert.equal(keystoneStyle.status, 200);
    });

    it('answers a bad percent-escape in a path or a location with 400 naming it', async () => {
      const path = await http('GET', '/compute/%E0%A4%A');
      assert.equal(path.status, 400, path.text);
      assert.match(path.text, /compute id in the path: "%E0%A4%A" has a bad percent-escape/);
      const storage = await http('DELETE', '/storage/%zz');
      assert.equal(storage.status, 400, storage.text);
      const link = await http(
        'POST',
        '/storagelink/',
        { 'content-type': 'application/occi+json' },
        JSON.stringify({ kind: `${INFRA}storagelink`, source: '/compute/%E0%A4%A', target: '/storage/x' }),
      );
      assert.equal(link.status, 400, link.text);
      assert.match(link.text, /occi\.core\.source: .* has a bad percent-escape/);
    });

    it('answers a body over 1 MiB with a 413 the client reads, declared or streamed', async () => {
      const declared = await http('POST', '/compute/', { 'content-type': 'text/plain' }, 'X'.repeat(2 << 20));
      assert.equal(declared.status, 413);
      assert.match(declared.text, /request body: larger than 1048576 bytes/);
      // No Content-Length: the bound holds while reading.
      const chunk = new TextEncoder().encode('Y'.repeat(64 << 10));
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent++ < 48) controller.enqueue(chunk);
          else controller.close();
        },
      });
      const streamed = await fetch(`${base}/compute/`, {
        method: 'POST',
        headers: { ...alice, 'content-type': 'text/plain' },
        body: stream,
        duplex: 'half',
      } as RequestInit);
      assert.equal(streamed.status, 413);
      assert.match(await streamed.text(), /larger than 1048576 bytes/);
    });

    it('builds returned URLs from its public URL, never from the Host header', async () => {
      for (const host of ['evil.example:666', '[']) {
        const root = await raw('GET', '/', { host, accept: 'text/uri-list' });
        assert.equal(root.status, 200, root.text);
        assert.deepEqual(
          root.text.trim().split('\r\n'),
          ['compute', 'storage', 'storagelink', 'network', 'networkinterface'].map((k) => `${base}/${k}/`),
        );
      }
      const paged = await raw('GET', '/compute/?page_size=1&page_token=0', { host: 'evil.example' });
      assert.doesNotMatch(JSON.stringify(paged.headers) + paged.text, /evil\.example/);
    });

    it('answers odd requests with a 4xx, never a 5xx or a dropped connection', async () => {
      const nonAscii = await raw('GET', '/compute/', { authorization: 'Bearer \u00e9t\u00e9' });
      assert.equal(nonAscii.status, 400, nonAscii.text);
      assert.match(nonAscii.text, /authorization header: only printable ASCII/);
      const project = await raw('GET', '/compute/', { 'x-lapis-project': 'phys\u00efcs' });
      assert.equal(project.status, 400, project.text);
      assert.equal((await raw('CONNECT', '127.0.0.1:1')).status, 405);
      assert.equal((await raw('OPTIONS', '/compute/')).status, 405);
      assert.equal((await raw('PATCH', '/compute/x')).status, 405);
      assert.equal((await raw('GET', '//compute/')).status, 404);
      assert.equal(
        (await raw('POST', '/compute/', { 'content-type': 'multipart/form-data; boundary=x' }, Buffer.from('--x--'))).status,
        415,
      );
      assert.equal(
        (await raw('POST', '/compute/', { 'content-type': ';;;' }, Buffer.from('x'))).status,
        400,
        'no media type: read as text/plain, which "x" is not',
      );
    });

    it('refuses renderings and versions it does not speak with the right codes', async () => {
      assert.equal((await http('GET', '/-/', { 'user-agent': 'rOCCI-cli OCCI/1.3' })).status, 501);
      assert.equal((await http('GET', '/-/', { accept: 'image/png' })).status, 406);
      assert.equal((await http('POST', '/compute/', { 'content-type': 'application/xml' }, '<compute/>')).status, 415);
      assert.equal((await http('GET', '/nothing/')).status, 404);
      const bad = await http('POST', '/compute/', { 'content-type': 'text/plain' }, 'Category: compute');
      assert.equal(bad.status, 400);
      assert.match(bad.text, /scheme is required/);
    });
  });

  describe('compute, storage and links', () => {
    it('creates a compute that is inactive while queued and active once its container runs', async () => {
      const created = await http(
        'POST',
        '/compute/',
        { 'content-type': 'text/plain' },
        [
          KIND('compute'),
          `Category: ${osTpl}; scheme="http://schemas.lapis.dev/occi/os_tpl#"; class="mixin"`,
          'Category: m1.tiny; scheme="http://schemas.lapis.dev/occi/resource_tpl#"; class="mixin"',
          'X-OCCI-Attribute: occi.core.title="occi-web"',
          'X-OCCI-Attribute: lapis.container.command="[\\"sleep\\",\\"3600\\"]"',
        ].join('\n'),
      );
      assert.equal(created.status, 201, created.text);
      computeLocation = new URL(created.headers.get('location')!).pathname;
      computeId = computeLocation.split('/')[2]!;
      assert.match(created.text, /occi\.compute\.state="(inactive|active)"/);
      await until(
        async () => attribute((await http('GET', computeLocation)).text, 'occi.compute.state') === 'active' || undefined,
        'the compute to become active',
        60_000,
      );
      const container = await containerOf(computeId);
      assert.ok(container, 'a container carries the instance id label');
      assert.equal((await docker(['inspect', '-f', '{{.State.Running}} {{.Config.Hostname}}', container])).trim(), 'true occi-web');
    });

    it('renders the compute in text/occi headers and in JSON valid against GFD.226', async () => {
      const occi = await fetch(`${base}${computeLocation}`, { headers: { ...alice, accept: 'text/occi' } });
      assert.equal(occi.headers.get('content-type'), 'text/occi');
      assert.match(
        occi.headers.get('category') ?? '',
        /^compute; scheme="http:\/\/schemas\.ogf\.org\/occi\/infrastructure#"; class="kind"/,
      );
      assert.match(occi.headers.get('x-occi-attribute') ?? '', /occi\.core\.title="occi-web"/);
      const json = JSON.parse((await http('GET', computeLocation, { accept: 'application/json' })).text);
      assertValidOcciJson(json, 'resource');
      assert.equal(json.attributes['occi.compute.state'], 'active');
      assert.ok(json.actions.includes('http://schemas.ogf.org/occi/infrastructure/compute/action#stop'));
    });

    it('lists, filters and pages the compute collection in every collection rendering', async () => {
      const uris = await http('GET', '/compute/', { accept: 'text/uri-list' });
      assert.equal(uris.headers.get('content-type'), 'text/uri-list');
      assert.ok(uris.text.split('\r\n').includes(`${base}${computeLocation}`));
      const byCategory = await http('GET', `/compute/?category=${osTpl}`);
      assert.match(byCategory.text, new RegExp(`X-OCCI-Location: ${base}${computeLocation}`));
      const byTitle = await http('GET', '/compute/', { 'x-occi-attribute': 'occi.core.title="nobody"' });
      assert.doesNotMatch(byTitle.text, new RegExp(computeId));
      const json = JSON.parse((await http('GET', '/compute/?page_size=1', { accept: 'application/occi+json' })).text);
      assertValidOcciJson(json, 'collection');
      assert.equal(json.resources.length, 1);
      assert.equal((await http('GET', computeLocation, { accept: 'text/uri-list' })).status, 400, 'uri-list is for collections');
    });

    it('hides the compute from another project', async () => {
      assert.equal((await http('GET', computeLocation, bob)).status, 404);
      assert.equal((await http('POST', `${computeLocation}?action=stop`, bob)).status, 404);
      assert.doesNotMatch((await http('GET', '/compute/', bob)).text, new RegExp(computeId));
    });

    it('links a new storage to the running compute and the data shows inside the container', async () => {
      const storage = await http(
        'POST',
        '/storage/',
        { 'content-type': 'application/occi+json', accept: 'application/occi+json' },
        JSON.stringify({ kind: `${INFRA}storage`, attributes: { 'occi.core.title': 'data', 'occi.storage.size': 0.05 } }),
      );
      assert.equal(storage.status, 201, storage.text);
      const volume = JSON.parse(storage.text);
      assertValidOcciJson(volume, 'resource');
      const link = await fetch(`${base}/storagelink/`, {
        method: 'POST',
        headers: {
          ...alice,
          'content-type': 'text/occi',
          category: `storagelink; scheme="${INFRA}"; class="kind"`,
          'x-occi-attribute': `occi.core.source="${computeLocation}", occi.core.target="/storage/${volume.id}", occi.storagelink.mountpoint="/mnt/data"`,
        },
      });
      const linkText = await link.text();
      assert.equal(link.status, 201, linkText);
      const container = await containerOf(computeId);
      await docker(['exec', container, 'sh', '-c', 'echo written-through-occi > /mnt/data/proof && sync']);
      assert.equal((await docker(['exec', container, 'cat', '/mnt/data/proof'])).trim(), 'written-through-occi');
      const compute = await http('GET', computeLocation);
      assert.match(compute.text, new RegExp(`Link: </storage/${volume.id}>; rel="${INFRA}storage"; self="/storagelink/${volume.id}"`));

      assert.equal((await http('DELETE', `/storagelink/${volume.id}`)).status, 200);
      assert.match((await docker(['exec', container, 'sh', '-c', 'ls /mnt/data 2>/dev/null || echo gone'])).trim(), /^(gone|)$/);
      assert.equal((await http('DELETE', `/storage/${volume.id}`)).status, 200);
      assert.equal((await http('GET', `/storage/${volume.id}`)).status, 404);
    });

    it('stops and starts the compute through actions, checking the body names the same action', async () => {
      const mismatch = await http(
        'POST',
        `${computeLocation}?action=stop`,
        { 'content-type': 'application/occi+json' },
        JSON.stringify({ action: `${INFRA.replace('#', '')}/compute/action#start` }),
      );
      assert.equal(mismatch.status, 400);
      assert.match(mismatch.text, /the body invokes "start" but the query string says \?action=stop/);
      const stopped = await http(
        'POST',
        `${computeLocation}?action=stop`,
        { 'content-type': 'text/plain' },
        'Category: stop; scheme="http://schemas.ogf.org/occi/infrastructure/compute/action#"; class="action"\nX-OCCI-Attribute: method="poweroff"',
      );
      assert.equal(stopped.status, 200, stopped.text);
      await until(
        async () => attribute((await http('GET', computeLocation)).text, 'occi.compute.state') === 'inactive' || undefined,
        'the compute to stop',
        30_000,
      );
      assert.equal((await docker(['inspect', '-f', '{{.State.Running}}', await containerOf(computeId)])).trim(), 'false');
      assert.equal((await http('POST', `${computeLocation}?action=start`)).status, 200);
      await until(
        async () => attribute((await http('GET', computeLocation)).text, 'occi.compute.state') === 'active' || undefined,
        'the compute to start again',
        30_000,
      );
    });

    it('renders values beyond Latin-1 in text/occi headers instead of failing', async () => {
      const created = await http(
        'POST',
        '/compute/',
        { 'content-type': 'text/plain' },
        [
          KIND('compute'),
          `Category: ${osTpl}; scheme="http://schemas.lapis.dev/occi/os_tpl#"; class="mixin"`,
          'Category: m1.tiny; scheme="http://schemas.lapis.dev/occi/resource_tpl#"; class="mixin"',
          'X-OCCI-Attribute: occi.core.title="occi-euro"',
          'X-OCCI-Attribute: lapis.container.command="[\\"sh\\",\\"-c\\",\\"echo 5\u20ac; sleep 3600\\"]"',
        ].join('\n'),
      );
      assert.equal(created.status, 201, created.text);
      const location = new URL(created.headers.get('location')!).pathname;
      try {
        const occi = await raw('GET', location, { accept: 'text/occi' });
        assert.equal(occi.status, 200, occi.text);
        // Header bytes are the value's UTF-8; node:http hands them over as Latin-1.
        const attributes = Buffer.from([occi.headers['x-occi-attribute']].flat().join(', '), 'latin1').toString('utf8');
        assert.ok(attributes.includes('echo 5\u20ac; sleep 3600'), attributes);
      } finally {
        assert.equal((await http('DELETE', location)).status, 200);
      }
    });

    it('never answers bad input with a 5xx (fuzzed requests against the running gateway)', async () => {
      const headerValue = fc.stringMatching(/^[ -~]{0,80}$/);
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
          fc.constantFrom(
            '/-/',
            '/compute/',
            computeLocation,
            `${computeLocation}?action=stop`,
            '/storage/',
            '/storagelink/',
            '/compute/nope',
          ),
          fc.constantFrom('text/plain', 'text/occi', 'application/occi+json', 'application/json'),
          fc.record({ category: headerValue, 'x-occi-attribute': headerValue, link: headerValue }, { requiredKeys: [] }),
          fc.oneof(fc.string({ maxLength: 200 }), fc.json({ maxDepth: 3 })),
          async (method, path, contentType, headers, body) => {
            // Keep the compute for the last test (deleting the collection deletes it too).
            if (method === 'DELETE' && (path.startsWith(computeLocation) || path === '/compute/')) return;
            if (method === 'POST' && path.endsWith('action=stop')) return;
            const response = await http(
              method,
              path,
              { 'content-type': contentType, ...headers },
              method === 'GET' || method === 'DELETE' ? undefined : body,
            );
            assert.ok(response.status < 500, `${method} ${path} answered ${response.status}: ${response.text.slice(0, 300)}`);
          },
        ),
        { numRuns: 150 },
      );
    });

    it('deletes the compute and its container goes', async () => {
      assert.equal((await http('DELETE', computeLocation)).status, 200);
      await until(async () => (await containerOf(computeId)) === '' || undefined, 'the container to be removed', 30_000);
      assert.equal((await http('GET', computeLocation)).status, 404);
    });
  });
});
