// The registry client's retry policy. A real docker-registry never answers 429 or 503 on
// demand, so a small local HTTP server stands in for one that is rate limiting or failing.
import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RegistryClient } from '../../src/adapters/registry/client';
import type { RegistryError } from '../../src/adapters/registry/errors';
import { sha256 } from '../../src/adapters/registry/manifest';
import { Semaphore } from '../../src/adapters/registry/semaphore';

describe('registry client: retries and the concurrency limit', () => {
  let server: Server;
  let url: string;
  let answers: number[] = [];
  let seen = 0;

  before(async () => {
    server = createServer((_request, response) => {
      seen++;
      const status = answers.shift() ?? 200;
      if (status === 429) response.setHeader('retry-after', '0');
      response.statusCode = status;
      response.setHeader('content-type', 'application/json');
      response.end(status === 200 ? JSON.stringify({ name: 'a/b', tags: ['v1'] }) : '{"errors":[{"code":"TOOMANYREQUESTS"}]}');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());
  beforeEach(() => {
    seen = 0;
  });

  it('retries 429 (after Retry-After) and 5xx, then succeeds', async () => {
    answers = [429, 503, 502];
    const client = new RegistryClient({ url, attempts: 4, backoffMs: 5 });
    assert.deepEqual(await client.listTags('a/b'), ['v1']);
    assert.equal(seen, 4);
  });

  it('gives up after its attempts with UNAVAILABLE naming the last answer', async () => {
    answers = [503, 503, 503];
    const client = new RegistryClient({ url, attempts: 3, backoffMs: 5 });
    await assert.rejects(
      client.listTags('a/b'),
      (error: RegistryError) => error.reason === 'UNAVAILABLE' && /answered 503/.test(error.message),
    );
    assert.equal(seen, 3);
  });

  it('does not retry a 4xx', async () => {
    answers = [403];
    const client = new RegistryClient({ url, attempts: 3, backoffMs: 5 });
    await assert.rejects(client.listTags('a/b'), (error: RegistryError) => error.reason === 'DENIED');
    assert.equal(seen, 1);
  });

  it('the semaphore lets at most N through at once', async () => {
    const semaphore = new Semaphore(2);
    let active = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 6 }, () =>
        semaphore.run(async () => {
          peak = Math.max(peak, ++active);
          await new Promise((resolve) => setTimeout(resolve, 5));
          active--;
        }),
      ),
    );
    assert.equal(peak, 2);
  });

  it('follows a redirect to another host for a blob, without the registry credentials, and verifies it', async () => {
    const blob = Buffer.from('layer bytes served by a blob store');
    const seenAtStore: Array<string | undefined> = [];
    const store = createServer((request, response) => {
      seenAtStore.push(request.headers.authorization);
      response.end(request.url === '/good' ? blob : Buffer.from('something else'));
    });
    const registry = createServer((request, response) => {
      if (!request.headers.authorization) {
        response.statusCode = 401;
        response.setHeader('www-authenticate', 'Basic realm="test"');
        return response.end();
      }
      response.statusCode = 307;
      response.setHeader(
        'location',
        `http://127.0.0.1:${(store.address() as AddressInfo).port}${request.url?.includes('bad') ? '/bad' : '/good'}`,
      );
      response.end();
    });
    store.listen(0, '127.0.0.1');
    registry.listen(0, '127.0.0.1');
    await Promise.all([once(store, 'listening'), once(registry, 'listening')]);
    const client = new RegistryClient({
      url: `http://127.0.0.1:${(registry.address() as AddressInfo).port}`,
      credentials: { username: 'u', password: 'p' },
      attempts: 1,
    });
    try {
      const digest = sha256(blob);
      assert.deepEqual(await client.getBlobBytes('a/b', digest, blob.length), blob);
      assert.deepEqual(seenAtStore, [undefined], 'no credentials sent to the blob store');
      await assert.rejects(client.getBlobBytes('a/bad', digest, blob.length), (error: RegistryError) => error.reason === 'DIGEST_MISMATCH');
    } finally {
      await client.close();
      registry.close();
      store.close();
    }
  });
});
