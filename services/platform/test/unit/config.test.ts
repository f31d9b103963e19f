import { strict as assert } from 'node:assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, platformSpecs, requireAuthSource } from '../../src/config';
import { natsCredentialsFrom } from '../../src/service';

const good = {
  LAPIS_GRPC_PORT: '50051',
  LAPIS_NATS_URL: 'nats://127.0.0.1:4222',
  LAPIS_STATIC_TOKENS_FILE: '/etc/lapis/tokens.yaml',
};
const load = (env: Record<string, string | undefined>) => loadConfig(platformSpecs, env, [requireAuthSource]);
const problemsOf = (env: Record<string, string | undefined>) => {
  try {
    load(env);
  } catch (error) {
    assert.equal((error as Error).name, 'ConfigError');
    return (error as Error).message;
  }
  assert.fail('expected a ConfigError');
};

describe('config', () => {
  it('parses a good environment into a frozen, typed object with defaults', () => {
    const config = load(good);
    assert.equal(config.LAPIS_GRPC_PORT, 50051);
    assert.equal(config.LAPIS_NATS_STREAM, 'LAPIS');
    assert.equal(config.LAPIS_NATS_REPLICAS, 1);
    assert.equal(config.LAPIS_SHUTDOWN_GRACE_MS, 10_000);
    assert.ok(Object.isFrozen(config));
  });

  it('takes the servers of a NATS cluster, separated by commas, and a replica count', () => {
    const config = load({ ...good, LAPIS_NATS_URL: 'nats://a:4222, nats://b:4222,tls://c:4222', LAPIS_NATS_REPLICAS: '3' });
    assert.equal(config.LAPIS_NATS_URL, 'nats://a:4222,nats://b:4222,tls://c:4222');
    assert.equal(config.LAPIS_NATS_REPLICAS, 3);
  });

  const cases: Array<[string, Record<string, string | undefined>, RegExp]> = [
    [
      'a missing required variable',
      { ...good, LAPIS_NATS_URL: undefined },
      /LAPIS_NATS_URL is required but not set \(NATS server with JetStream, or the servers of a cluster separated by commas, e\.g\. nats:\/\/127\.0\.0\.1:4222\)/,
    ],
    ['a port that is not a number', { ...good, LAPIS_GRPC_PORT: 'fifty' }, /LAPIS_GRPC_PORT="fifty" is invalid/],
    ['a port out of range', { ...good, LAPIS_GRPC_PORT: '70000' }, /LAPIS_GRPC_PORT="70000" is invalid/],
    ['a URL that is not one', { ...good, LAPIS_NATS_URL: 'not a url' }, /LAPIS_NATS_URL="not a url" is invalid/],
    [
      'one of several NATS URLs that is not one',
      { ...good, LAPIS_NATS_URL: 'nats://a:4222,http://b:4222' },
      /LAPIS_NATS_URL="nats:\/\/a:4222,http:\/\/b:4222" is invalid: "http:\/\/b:4222" is not a nats:\/\/ or tls:\/\/ URL/,
    ],
    [
      'a NATS replica count JetStream has not',
      { ...good, LAPIS_NATS_REPLICAS: '7' },
      /LAPIS_NATS_REPLICAS="7" is invalid: expected 1 to 5/,
    ],
    ['a log level not in the list', { ...good, LOG_LEVEL: 'loud' }, /LOG_LEVEL="loud" is invalid/],
    ['a grace period that is not a number', { ...good, LAPIS_SHUTDOWN_GRACE_MS: 'soon' }, /LAPIS_SHUTDOWN_GRACE_MS="soon" is invalid/],
    [
      'a per-caller limit of zero',
      { ...good, LAPIS_MAX_STREAMS_PER_CALLER: '0' },
      /LAPIS_MAX_STREAMS_PER_CALLER="0" is invalid: expected a whole number of at least 1/,
    ],
    [
      'a per-caller limit that is not a whole number',
      { ...good, LAPIS_MAX_CALLS_PER_CALLER: '2.5' },
      /LAPIS_MAX_CALLS_PER_CALLER="2\.5" is invalid/,
    ],
    ['a boolean that is not one', { ...good, LAPIS_ALLOW_INSECURE_ISSUER: 'maybe' }, /LAPIS_ALLOW_INSECURE_ISSUER="maybe" is invalid/],
    [
      'no way to authenticate',
      { ...good, LAPIS_STATIC_TOKENS_FILE: undefined },
      /LAPIS_OIDC_ISSUER or LAPIS_STATIC_TOKENS_FILE must be set/,
    ],
    ['an issuer that is not a URL', { ...good, LAPIS_OIDC_ISSUER: 'iam' }, /LAPIS_OIDC_ISSUER="iam" is invalid: not a URL/],
    [
      'a plain-http issuer',
      { ...good, LAPIS_OIDC_ISSUER: 'http://iam.example.org/' },
      /LAPIS_OIDC_ISSUER="http:\/\/iam\.example\.org\/" is invalid: must be https/,
    ],
  ];
  for (const [name, env, expected] of cases) {
    it(`names the variable for ${name}`, () => assert.match(problemsOf(env), expected));
  }

  it('reports every bad variable at once', () => {
    const message = problemsOf({ LAPIS_GRPC_PORT: 'x', LOG_LEVEL: 'loud' });
    assert.match(message, /LAPIS_GRPC_PORT/);
    assert.match(message, /LAPIS_NATS_URL is required/);
    assert.match(message, /LOG_LEVEL/);
  });

  it('takes the NATS password from its file, and refuses a user without one, a password without a user or an empty file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lapis-config-'));
    const file = join(dir, 'password');
    writeFileSync(file, 's3cret\n', { mode: 0o600 });
    assert.equal(natsCredentialsFrom(load(good)), undefined);
    assert.deepEqual(natsCredentialsFrom(load({ ...good, LAPIS_NATS_USER: 'scheduler', LAPIS_NATS_PASSWORD_FILE: file })), {
      user: 'scheduler',
      password: 's3cret',
    });
    const refused = (env: Record<string, string>, re: RegExp) =>
      assert.throws(
        () => natsCredentialsFrom(load({ ...good, ...env })),
        (e: Error) => e.name === 'ConfigError' && re.test(e.message) && !e.message.includes('s3cret'),
      );
    refused({ LAPIS_NATS_USER: 'scheduler' }, /LAPIS_NATS_USER and LAPIS_NATS_PASSWORD_FILE must be set together/);
    refused({ LAPIS_NATS_PASSWORD_FILE: file }, /LAPIS_NATS_USER and LAPIS_NATS_PASSWORD_FILE must be set together/);
    refused(
      { LAPIS_NATS_USER: 'scheduler', LAPIS_NATS_PASSWORD_FILE: join(dir, 'missing') },
      /LAPIS_NATS_PASSWORD_FILE cannot be read: ENOENT/,
    );
    writeFileSync(file, '\n');
    refused({ LAPIS_NATS_USER: 'scheduler', LAPIS_NATS_PASSWORD_FILE: file }, /LAPIS_NATS_PASSWORD_FILE is empty/);
  });
});
