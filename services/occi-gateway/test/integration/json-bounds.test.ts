// A JSON body nested a hundred thousand deep (1 MiB allows it) against the gateway as its own
// process: a 400 naming where, not a 500 from a stack overflow. The other services are not
// needed: the body is refused before anything is asked of them.
import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { natsUrl, spawnService, staticTokenFile, TEST_TOKENS, until, type ServiceProcess } from '@lapis/platform/testing';

const main = resolve(__dirname, '..', '..', 'src', 'main.js');

describe('occi-gateway: JSON bodies of bounded depth (its own process)', function () {
  this.timeout(60_000);
  let proc: ServiceProcess;
  let tokens: string;
  let base: string;

  before(async () => {
    tokens = staticTokenFile();
    proc = await spawnService('occi-gateway', main, {
      LAPIS_NATS_URL: natsUrl(),
      LAPIS_STATIC_TOKENS_FILE: tokens,
      LAPIS_HTTP_PORT: '0',
      LAPIS_SCHEDULER_ADDRESS: '127.0.0.1:1',
      LAPIS_RUNTIME_ADDRESS: '127.0.0.1:1',
      LAPIS_IMAGE_SYNC_ADDRESS: '127.0.0.1:1',
    });
    const listening = await until(() => proc.logs.find((l) => l.msg === 'OCCI HTTP interface listening'), 'the HTTP interface');
    base = `http://127.0.0.1:${String(listening.port)}`;
  });
  after(async () => {
    await proc?.stop();
    rmSync(dirname(tokens), { recursive: true, force: true });
  });

  it('refuses a body nested too deep with a 400 at its line and column, fast', async () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const body = `{\n  "kind": "http://schemas.ogf.org/occi/infrastructure#compute",\n  "links": [{ "target": "/storage/x", "kind": "http://schemas.ogf.org/occi/infrastructure#storagelink", "mixins": ${deep} }]\n}`;
    const response = await fetch(`${base}/compute/`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_TOKENS.alice.token}`, 'content-type': 'application/occi+json', accept: 'application/json' },
      body,
      signal: AbortSignal.timeout(10_000),
    });
    const answer = (await response.json()) as { error: { status: number; message: string } };
    assert.equal(response.status, 400, answer.error.message);
    // The body, links and the link are 3 levels: the 30th bracket of "mixins" (line 3) is the 33rd.
    const line = body.split('\n')[2]!;
    const column = line.indexOf('[', line.indexOf('"mixins"')) + 1 + 29;
    assert.equal(answer.error.message, `body:3:${column}: JSON nested more than 32 deep`);
  });
});
