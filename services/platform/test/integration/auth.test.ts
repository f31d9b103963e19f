// OIDC bearer tokens against a local issuer: a real HTTP server publishing OIDC discovery
// and a JWKS, standing in for a remote identity provider (INDIGO IAM) that cannot run here.
import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { status, type ServiceError } from '@grpc/grpc-js';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { errorDetails } from '../../src/errors';
import type { GrpcServer } from '../../src/grpc/server';
import { operationsService } from '../fixtures/operations';
import { getOperation, operationsClient, startServer } from '../grpc-harness';

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

describe('auth: OIDC JWTs verified against a local issuer (real HTTP JWKS, real gRPC)', () => {
  let issuerServer: Server;
  let issuer: string;
  let server: GrpcServer;
  let address: string;
  let current: KeyPair;
  const published: JWK[] = [];
  let jwksFetches = 0;

  const publish = async (kid: string) => {
    const pair = await generateKeyPair('RS256');
    published.push({ ...(await exportJWK(pair.publicKey)), kid, alg: 'RS256', use: 'sig' });
    return pair;
  };

  const token = (
    claims: Record<string, unknown> = {},
    { key = current.privateKey, kid = 'key-1', iss = issuer, aud = 'lapis', exp = '5m' as string | number } = {},
  ) =>
    new SignJWT({ groups: ['physics'], preferred_username: 'alice', ...claims })
      .setProtectedHeader({ alg: 'RS256', kid })
      .setIssuer(iss)
      .setAudience(aud)
      .setSubject('3f1e9a')
      .setIssuedAt()
      .setExpirationTime(exp)
      .sign(key);

  const callWith = async (bearer?: string) => getOperation(operationsClient(address, { token: bearer }), 'op');

  const rejected = async (bearer: string | undefined, code: status, message: RegExp, reason: string) => {
    const result = await callWith(bearer);
    assert.ok(result instanceof Error, 'the call should fail');
    const error = result as ServiceError;
    assert.equal(error.code, code, error.details);
    assert.match(error.details, message);
    assert.equal(errorDetails(error).errorInfo?.reason, reason);
  };

  before(async () => {
    current = await publish('key-1');
    issuerServer = createServer((request, response) => {
      response.setHeader('content-type', 'application/json');
      if (request.url === '/.well-known/openid-configuration') {
        response.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
      } else if (request.url === '/jwks') {
        jwksFetches++;
        response.end(JSON.stringify({ keys: published }));
      } else {
        response.statusCode = 404;
        response.end('{}');
      }
    });
    issuerServer.listen(0, '127.0.0.1');
    await once(issuerServer, 'listening');
    issuer = `http://127.0.0.1:${(issuerServer.address() as AddressInfo).port}`;
    ({ server, address } = await startServer([operationsService()], { issuer, audience: 'lapis', jwksCooldownMs: 0 }));
  });
  after(async () => {
    await server.shutdown(1_000);
    issuerServer.close();
  });

  it('accepts a valid token and takes user, project and roles from its claims', async () => {
    const response = await callWith(await token());
    assert.ok(!(response instanceof Error), (response as Error).message);
    assert.equal(response.operation?.kind, 'alice');
    assert.equal(response.operation?.project, 'physics');
  });

  it('caches the issuer keys instead of fetching them per call', async () => {
    const before = jwksFetches;
    for (let i = 0; i < 5; i++) assert.ok(!((await callWith(await token())) instanceof Error));
    assert.equal(jwksFetches, before);
  });

  it('rejects a missing token', () => rejected(undefined, status.UNAUTHENTICATED, /missing bearer token/, 'TOKEN_MISSING'));

  it('rejects an expired token', async () =>
    rejected(await token({}, { exp: Math.floor(Date.now() / 1000) - 120 }), status.UNAUTHENTICATED, /token expired at/, 'TOKEN_EXPIRED'));

  it('rejects a token from another issuer', async () =>
    rejected(
      await token({}, { iss: 'https://evil.example.org' }),
      status.UNAUTHENTICATED,
      /issuer "https:\/\/evil\.example\.org" is not the trusted issuer/,
      'TOKEN_WRONG_ISSUER',
    ));

  it('rejects a token for another audience', async () =>
    rejected(
      await token({}, { aud: 'someone-else' }),
      status.UNAUTHENTICATED,
      /audience "someone-else" does not include "lapis"/,
      'TOKEN_WRONG_AUDIENCE',
    ));

  it('rejects a token with a bad signature', async () => {
    const impostor = await generateKeyPair('RS256');
    await rejected(await token({}, { key: impostor.privateKey }), status.UNAUTHENTICATED, /signature is invalid/, 'TOKEN_BAD_SIGNATURE');
  });

  it('rejects a token signed by a key the issuer does not publish', async () => {
    const stranger = await generateKeyPair('RS256');
    await rejected(
      await token({}, { key: stranger.privateKey, kid: 'key-unknown' }),
      status.UNAUTHENTICATED,
      /key id "key-unknown"/,
      'TOKEN_UNKNOWN_KEY',
    );
  });

  it('rejects a token that is not a JWT nor a static token', () =>
    rejected('not-a-token', status.UNAUTHENTICATED, /neither a known static token nor a JWT/, 'TOKEN_MALFORMED'));

  it('denies a valid caller who belongs to no project', async () =>
    rejected(await token({ groups: [] }), status.PERMISSION_DENIED, /alice belongs to no project/, 'NO_PROJECT'));

  it('follows a key rotation: a token signed by a newly published key is accepted', async () => {
    const rotated = await publish('key-2');
    const response = await callWith(await token({}, { key: rotated.privateKey, kid: 'key-2' }));
    assert.ok(!(response instanceof Error), (response as Error).message);
  });
});
