import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { startRegistry, type Registry } from '../../src/index.js';
import { canListen } from './helpers/net.js';

const basic = (username: string, password: string): string => `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;

describe('testenv: OCI registry', function () {
  const started: Registry[] = [];
  const start = async (...args: Parameters<typeof startRegistry>): Promise<Registry> => {
    const registry = await startRegistry(...args);
    started.push(registry);
    return registry;
  };

  afterEach(async function () {
    await Promise.all(started.splice(0).map((r) => r.stop()));
  });

  it('without auth, GET /v2/ answers 200', async function () {
    const registry = await start();
    assert.equal(registry.url, `http://${registry.host}`);
    const res = await fetch(`${registry.url}/v2/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
  });

  it('with auth, GET /v2/ is 401 without credentials, 401 with a wrong password and 200 with the right ones', async function () {
    const registry = await start({ auth: { username: 'alice', password: 's3cret pass' } });
    const anonymous = await fetch(`${registry.url}/v2/`);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic realm=/);
    const wrong = await fetch(`${registry.url}/v2/`, { headers: { authorization: basic('alice', 'nope') } });
    assert.equal(wrong.status, 401);
    const right = await fetch(`${registry.url}/v2/`, { headers: { authorization: basic('alice', 's3cret pass') } });
    assert.equal(right.status, 200);
  });

  it('stores a blob pushed over plain HTTP and serves it back by digest', async function () {
    const registry = await start();
    const blob = randomBytes(64 * 1024);
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;

    const begin = await fetch(`${registry.url}/v2/test/blobs/uploads/`, { method: 'POST' });
    assert.equal(begin.status, 202);
    const location = begin.headers.get('location');
    assert.ok(location, 'no Location for the upload');
    const uploadUrl = new URL(location, registry.url);
    uploadUrl.searchParams.set('digest', digest);
    const put = await fetch(uploadUrl, { method: 'PUT', body: blob, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(put.status, 201, await put.text());
    assert.equal(put.headers.get('docker-content-digest'), digest);

    const got = await fetch(`${registry.url}/v2/test/blobs/${digest}`);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('docker-content-digest'), digest);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), blob);

    // storage.delete is on: the blob can be removed again.
    const del = await fetch(`${registry.url}/v2/test/blobs/${digest}`, { method: 'DELETE' });
    assert.equal(del.status, 202);
  });

  it('stop() frees the port and removes the dir', async function () {
    const registry = await startRegistry();
    await registry.stop();
    assert.equal(fs.existsSync(registry.dir), false, `${registry.dir} is still there`);
    assert.equal(await canListen('127.0.0.1', registry.port), true, 'the port is still taken');
  });
});
