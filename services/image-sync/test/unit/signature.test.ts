// Cosign simple-signing verification with real ECDSA P-256 keys.
import { strict as assert } from 'node:assert';
import { sign } from 'node:crypto';
import { repositoryOf, signatureTag, simpleSigningPayload, verifySignatures } from '../../src/domain/signature';
import { parseReference } from '../../src/domain/reference';
import { parseChallenge } from '../../src/adapters/registry/auth';
import { keyPair } from '../fixtures';

const digest = `sha256:${'d'.repeat(64)}`;

describe('signatures and references', () => {
  const release = keyPair();
  const other = keyPair();
  const keys = [{ id: 'release', pem: release.pem }];
  const signed = (key = release.privateKey, reference = 'registry.example.org/team/app', forDigest = digest) => {
    const payload = simpleSigningPayload(reference, forDigest);
    return { payload, signature: sign('sha256', payload, key).toString('base64') };
  };

  it('verifies a signature by a policy key and names the key', () => {
    assert.deepEqual(verifySignatures([signed()], digest, 'team/app', keys), { verified: true, keyId: 'release' });
    assert.deepEqual(verifySignatures([signed(other.privateKey), signed()], digest, 'team/app', keys), {
      verified: true,
      keyId: 'release',
    });
  });

  it('refuses missing signatures, other keys, other digests, other repositories, tampered payloads', () => {
    assert.equal(verifySignatures([], digest, 'team/app', keys).verified, false);
    const cases = [
      verifySignatures([signed(other.privateKey)], digest, 'team/app', keys),
      verifySignatures([signed(release.privateKey, 'r.example.org/team/app', `sha256:${'e'.repeat(64)}`)], digest, 'team/app', keys),
      verifySignatures([signed(release.privateKey, 'r.example.org/team/other')], digest, 'team/app', keys),
      verifySignatures(
        [{ ...signed(), payload: Buffer.from(signed().payload.toString().replace('cosign', 'Cosign')) }],
        digest,
        'team/app',
        keys,
      ),
    ];
    for (const verdict of cases) assert.equal(verdict.verified ? 'verified' : verdict.reason, 'SIGNATURE_INVALID');
  });

  it('names tags and references as cosign and users write them', () => {
    assert.equal(signatureTag(digest), `sha256-${'d'.repeat(64)}.sig`);
    assert.equal(repositoryOf('localhost:5000/a/b:1'), 'a/b');
    assert.equal(repositoryOf('a/b@sha256:00'), 'a/b');
    assert.deepEqual(parseReference('ubuntu'), { host: '', name: 'ubuntu', tag: 'latest', digest: '' });
    assert.deepEqual(parseReference('reg:5000/lapis/ubuntu:22.04@sha256:ab'), {
      host: 'reg:5000',
      name: 'lapis/ubuntu',
      tag: '22.04',
      digest: 'sha256:ab',
    });
    assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"'), {
      scheme: 'bearer',
      params: { realm: 'https://auth.example/token', service: 'registry', scope: 'repository:a/b:pull' },
    });
  });
});
