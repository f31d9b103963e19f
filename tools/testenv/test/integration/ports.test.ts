import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import { ensureCommands, freePort, GiveUp, NO_APT_ENV, waitFor, waitForPort } from '../../src/index.js';

describe('testenv: ports, waiting and commands', function () {
  it('freePort gives a port one can listen on, and waitForPort sees the listener', async function () {
    const port = await freePort();
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    try {
      await waitForPort('127.0.0.1', port, 2000);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('waitFor names what it waited for and the last error', async function () {
    const port = await freePort();
    await assert.rejects(waitForPort('127.0.0.1', port, 300), /a TCP listener on 127\.0\.0\.1:\d+ .*ECONNREFUSED/);
    await assert.rejects(
      waitFor(() => false, { timeoutMs: 200, what: 'the moon' }),
      /timed out after 200 ms waiting for the moon \(last error: not ready\)/,
    );
    const started = Date.now();
    await assert.rejects(
      waitFor(
        () => {
          throw new GiveUp('it died');
        },
        { timeoutMs: 10_000, what: 'x' },
      ),
      /it died/,
    );
    assert.ok(Date.now() - started < 1000, 'GiveUp did not end the wait at once');
  });

  it('ensureCommands finds binaries, also in sbin, and names the package of a missing one', async function () {
    const found = await ensureCommands({ sh: 'dash', 'nats-server': 'nats-server' });
    // Absolute paths, so callers can spawn them even when sbin is not on PATH.
    assert.match(found.sh, /^\/.*\/sh$/);
    assert.match(found['nats-server'], /^\/.*\/nats-server$/);
    // With apt-get turned off, nothing is installed and the error says what to install.
    const saved = process.env[NO_APT_ENV];
    process.env[NO_APT_ENV] = '1';
    try {
      await assert.rejects(
        ensureCommands({ 'lapis-no-such-binary': 'lapis-no-such-package' }),
        /`lapis-no-such-binary` is missing: install Debian package\(s\) lapis-no-such-package/,
      );
    } finally {
      if (saved === undefined) delete process.env[NO_APT_ENV];
      else process.env[NO_APT_ENV] = saved;
    }
  });
});
