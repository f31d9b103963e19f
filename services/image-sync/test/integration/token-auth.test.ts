// Bearer-token auth (the Docker token spec) against a real docker-registry configured with
// `auth.token`: the registry answers 401 with a `Bearer realm,service,scope` challenge, the
// client asks the realm (a small token server in this test, checking basic credentials and
// signing ES256 JWTs with a certificate the registry trusts) and retries with the token.
import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { createPrivateKey, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep, testLog } from '@lapis/platform/testing';
import { ensureCommands, freePort, run, spawnLogged, waitFor, type Supervised } from '@lapis/testenv';
import { RegistryClient } from '../../src/adapters/registry/client';
import { pushImage, randomLayer, recording, type Recorded } from '../fixtures';

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

describe('bearer-token auth against a real registry with token auth', function () {
  this.timeout(60_000);
  let dir: string;
  let registry: Supervised;
  let tokenServer: Server;
  let url: string;
  const tokenRequests: URL[] = [];
  let lifetimeS = 300;

  before(async () => {
    const { 'docker-registry': bin } = await ensureCommands({ 'docker-registry': 'docker-registry' });
    dir = mkdtempSync(join(tmpdir(), 'image-sync-token-'));
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      '/CN=lapis-token',
      '-days',
      '1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ]);
    const key = createPrivateKey(readFileSync(join(dir, 'key.pem')));
    const certDer = Buffer.from(readFileSync(join(dir, 'cert.pem'), 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');

    tokenServer = createServer((request, response) => {
      const query = new URL(request.url ?? '/', 'http://token');
      tokenRequests.push(query);
      const [user, password] = Buffer.from((request.headers.authorization ?? '').replace(/^Basic /, ''), 'base64')
        .toString()
        .split(':');
      if (user !== 'robot' || password !== 'token-pw') {
        response.statusCode = 401;
        return response.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      }
      const access = query.searchParams.getAll('scope').map((scope) => {
        const [type, name, actions] = scope.split(':');
        return { type, name, actions: (actions ?? '').split(',') };
      });
      const now = Math.floor(Date.now() / 1000);
      const header = b64url(JSON.stringify({ alg: 'ES256', typ: 'JWT', x5c: [certDer.toString('base64')] }));
      const claims = b64url(
        JSON.stringify({
          iss: 'lapis-test',
          sub: user,
          aud: query.searchParams.get('service'),
          exp: now + lifetimeS,
          nbf: now - 10,
          iat: now,
          jti: randomBytes(8).toString('hex'),
          access,
        }),
      );
      const signature = sign('sha256', Buffer.from(`${header}.${claims}`), { key, dsaEncoding: 'ieee-p1363' });
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ token: `${header}.${claims}.${b64url(signature)}`, expires_in: lifetimeS }));
    });
    tokenServer.listen(0, '127.0.0.1');
    await once(tokenServer, 'listening');
    const realm = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}/token`;
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    writeFileSync(
      join(dir, 'config.yml'),
      `${[
        'version: 0.1',
        'log: { level: warn, accesslog: { disabled: true } }',
        `storage: { filesystem: { rootdirectory: ${JSON.stringify(join(dir, 'data'))} }, delete: { enabled: true } }`,
        `http: { addr: "127.0.0.1:${port}", secret: "${randomBytes(12).toString('hex')}" }`,
        `auth: { token: { realm: "${realm}", service: "lapis-registry", issuer: "lapis-test", rootcertbundle: ${JSON.stringify(join(dir, 'cert.pem'))} } }`,
      ].join('\n')}\n`,
    );
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
    registry = spawnLogged(bin, ['serve', join(dir, 'config.yml')], { logFile: join(dir, 'registry.log'), env, graceMs: 3000 });
    await waitFor(
      async () => {
        registry.failIfExited();
        const response = await fetch(`${url}/v2/`);
        await response.arrayBuffer();
        return response.status === 401;
      },
      { timeoutMs: 20_000, what: `token-auth registry at ${url}` },
    );
    testLog.debug({ url, realm }, 'token registry up');
  });
  after(async () => {
    await registry?.stop();
    tokenServer?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers the challenge with a token for the scope, pushes, pulls and mounts with it', async () => {
    const log: Recorded[] = [];
    const client = new RegistryClient({ url, credentials: { username: 'robot', password: 'token-pw' }, onResponse: recording(log) });
    const image = await pushImage(client, 'team/secure', 'v1', [randomLayer(2_000)]);
    assert.equal((await client.headManifest('team/secure', 'v1'))?.digest, image.digest);
    assert.deepEqual(await client.listTags('team/secure'), ['v1']);
    const scopes = tokenRequests.flatMap((u) => u.searchParams.getAll('scope'));
    assert.ok(scopes.includes('repository:team/secure:pull,push'), scopes.join(' '));
    assert.equal(tokenRequests[0]?.searchParams.get('service'), 'lapis-registry');
    // Tokens are cached per scope: far fewer token requests than registry requests.
    assert.ok(tokenRequests.length < log.length / 2, `${tokenRequests.length} token requests for ${log.length} registry requests`);
    assert.equal(await client.mountBlob('team/other', image.layers[0]!.digest, 'team/secure'), true);
    assert.equal(await client.hasBlob('team/other', image.layers[0]!.digest), true);
  });

  it('fetches a fresh token before the one it holds expires, without a refused request', async () => {
    lifetimeS = 2;
    try {
      const log: Recorded[] = [];
      const client = new RegistryClient({ url, credentials: { username: 'robot', password: 'token-pw' }, onResponse: recording(log) });
      assert.deepEqual(await client.listTags('team/secure'), ['v1']);
      const tokensBefore = tokenRequests.length;
      const refusedBefore = log.filter((r) => r.status === 401).length;
      await sleep(1_800); // past 80% of the token's 2 s
      assert.deepEqual(await client.listTags('team/secure'), ['v1']);
      assert.equal(tokenRequests.length, tokensBefore + 1, 'one fresh token');
      assert.equal(log.filter((r) => r.status === 401).length, refusedBefore, 'no request was refused for an old token');
    } finally {
      lifetimeS = 300;
    }
  });

  it('wrong credentials: the token request fails as UNAUTHORIZED', async () => {
    const client = new RegistryClient({ url, credentials: { username: 'robot', password: 'wrong' } });
    await assert.rejects(client.listTags('team/secure'), (error: Error & { reason?: string }) => {
      assert.equal(error.reason, 'UNAUTHORIZED');
      assert.match(error.message, /token from .* answered 401/);
      return true;
    });
  });
});
