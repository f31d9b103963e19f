import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  BASE_IMAGE,
  type CommandError,
  docker,
  ensureBaseImage,
  sharedDocker,
  startRegistry,
  type DockerEngine,
  type Registry,
} from '../../src/index.js';

describe('testenv: Docker engine and base image', function () {
  let engine: DockerEngine;
  // Names this suite made, removed after each test.
  const images: string[] = [];
  const registries: Registry[] = [];
  const dirs: string[] = [];

  before(async function () {
    engine = await sharedDocker(); // dockerd starts here when no engine answers
  });

  afterEach(async function () {
    for (const image of images.splice(0)) await docker(['rmi', '--force', image], { engine }).catch(() => undefined);
    await Promise.all(registries.splice(0).map((r) => r.stop()));
    await Promise.all(dirs.splice(0).map((d) => fs.rm(d, { recursive: true, force: true })));
  });

  it('an engine answers on the socket', async function () {
    const version = JSON.parse(await docker(['version', '--format', '{{json .Server}}'], { engine })) as { Version?: string };
    assert.ok(version.Version, 'no server version');
    assert.equal(typeof engine.startedByUs, 'boolean');
  });

  it('the base image runs `echo hello`', async function () {
    assert.equal(await ensureBaseImage(), BASE_IMAGE);
    const out = await docker(['run', '--rm', BASE_IMAGE, 'echo', 'hello'], { engine });
    assert.equal(out, 'hello\n');
  });

  it('builds the base image from busybox-static when it is missing', async function () {
    const name = `lapis/busybox:test-${randomBytes(4).toString('hex')}`;
    images.push(name);
    assert.equal(await ensureBaseImage(name), name);
    const cmd = JSON.parse(await docker(['image', 'inspect', '--format', '{{json .Config.Cmd}}', name], { engine })) as string[];
    assert.deepEqual(cmd, ['/bin/sh']);
    // The lapis user exists and /tmp is writable by it; the default CMD is a shell.
    const out = await docker(['run', '--rm', '--user', 'lapis', name, 'sh', '-c', 'id -un; touch /tmp/x && echo ok'], { engine });
    assert.equal(out, 'lapis\nok\n');
    // A second call finds it instead of importing it again.
    const id = await docker(['image', 'inspect', '--format', '{{.Id}}', name], { engine });
    await ensureBaseImage(name);
    assert.equal(await docker(['image', 'inspect', '--format', '{{.Id}}', name], { engine }), id);
  });

  it('pushes the base image to a loopback registry', async function () {
    await ensureBaseImage();
    const registry = await startRegistry();
    registries.push(registry);
    const ref = `${registry.host}/lapis/busybox:push-test`;
    images.push(ref);
    await docker(['tag', BASE_IMAGE, ref], { engine });
    await docker(['push', ref], { engine });
    const tags = (await (await fetch(`${registry.url}/v2/lapis/busybox/tags/list`)).json()) as { tags?: string[] };
    assert.deepEqual(tags.tags, ['push-test']);
  });

  it('pushes to a registry with auth only after docker login', async function () {
    await ensureBaseImage();
    const auth = { username: 'bob', password: `hunter2-${randomBytes(4).toString('hex')}` };
    const registry = await startRegistry({ auth });
    registries.push(registry);
    // A private client config, so the user's ~/.docker/config.json is left alone.
    const config = await fs.mkdtemp(path.join(os.tmpdir(), 'lapis-docker-config-'));
    dirs.push(config);
    const ref = `${registry.host}/lapis/busybox:auth-test`;
    images.push(ref);
    await docker(['tag', BASE_IMAGE, ref], { engine });
    await assert.rejects(docker(['--config', config, 'push', ref], { engine }), (e: CommandError) => {
      assert.match(e.stderr, /no basic auth credentials|unauthorized/i);
      return true;
    });
    await docker(['--config', config, 'login', '--username', auth.username, '--password-stdin', registry.host], {
      engine,
      input: auth.password,
    });
    await docker(['--config', config, 'push', ref], { engine });
    const res = await fetch(`${registry.url}/v2/lapis/busybox/tags/list`, {
      headers: { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` },
    });
    assert.deepEqual(((await res.json()) as { tags?: string[] }).tags, ['auth-test']);
  });
});
