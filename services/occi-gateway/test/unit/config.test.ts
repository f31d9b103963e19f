import { strict as assert } from 'node:assert';
import { loadOcciConfig } from '../../src/config';

describe('occi-gateway configuration', () => {
  const env = (extra: Record<string, string> = {}) => ({
    LAPIS_NATS_URL: 'nats://127.0.0.1:4222',
    LAPIS_STATIC_TOKENS_FILE: '/dev/null',
    ...extra,
  });

  it('takes a public URL for the locations it answers with, without its trailing slash; empty by default', () => {
    assert.equal(loadOcciConfig(env()).LAPIS_OCCI_PUBLIC_URL, '');
    assert.equal(
      loadOcciConfig(env({ LAPIS_OCCI_PUBLIC_URL: 'https://cloud.example.org/occi/' })).LAPIS_OCCI_PUBLIC_URL,
      'https://cloud.example.org/occi',
    );
  });

  it('refuses a public URL that is not a plain http(s) base, naming the variable', () => {
    for (const bad of [
      'cloud.example.org',
      'ftp://cloud.example.org',
      'https://cloud.example.org/?x=1',
      'https://user:pw@cloud.example.org',
    ]) {
      assert.throws(() => loadOcciConfig(env({ LAPIS_OCCI_PUBLIC_URL: bad })), /LAPIS_OCCI_PUBLIC_URL/, bad);
    }
  });
});
