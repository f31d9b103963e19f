// What a local run leaves when its services could not clean up (make up starts from a clean
// node, make down leaves one): real containers, a real network, a real loop device mounted
// under the runtime's state directory, removed with nothing of Lapis running.
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { docker, ensureBaseImage, run } from '@lapis/testenv';
import { describeLeftovers, removeLeftovers } from '../src/cleanup';

describe('leftovers of a local run (real Docker, loop device, mount)', function () {
  this.timeout(120_000);
  const node = `leftover-${process.pid}`;
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lapis-leftovers-'));
  });
  after(async () => {
    await removeLeftovers(node, join(dir, 'runtime')).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it("removes the node's containers, networks, mounts and loop devices, and only those", async () => {
    const image = await ensureBaseImage();
    const runtimeDir = join(dir, 'runtime');
    mkdirSync(join(runtimeDir, 'volumes'), { recursive: true });
    mkdirSync(join(runtimeDir, 'instances', 'i-1', 'v-1'), { recursive: true });
    const label = ['--label', `lapis.node=${node}`, '--label', 'lapis.managed=true'];
    const network = (await docker(['network', 'create', ...label, `lapis-leftover-${process.pid}`])).trim();
    const mine = (await docker(['run', '-d', ...label, '--network', network, image, 'sleep', '600'])).trim();
    const other = (await docker(['run', '-d', '--label', `lapis.node=${node}-other`, image, 'sleep', '600'])).trim();
    try {
      const file = join(runtimeDir, 'volumes', 'v-1.img');
      await run('truncate', ['-s', '16M', file]);
      await run('mkfs.ext4', ['-q', file]);
      const device = (await run('losetup', ['--find', '--show', file])).stdout.trim();
      await run('mount', ['-t', 'ext4', device, join(runtimeDir, 'instances', 'i-1', 'v-1')]);

      const found = await removeLeftovers(node, runtimeDir);
      assert.deepEqual(
        found.containers.map((id) => id.slice(0, 12)),
        [mine.slice(0, 12)],
      );
      assert.deepEqual(
        found.networks.map((id) => id.slice(0, 12)),
        [network.slice(0, 12)],
      );
      assert.deepEqual(found.mounts, [join(runtimeDir, 'instances', 'i-1', 'v-1')]);
      assert.deepEqual(found.loopDevices, [device]);
      assert.equal(describeLeftovers(found), '1 container, 1 network, 1 mount, 1 loop device');

      assert.equal((await docker(['ps', '-aq', '--filter', `label=lapis.node=${node}`])).trim(), '');
      assert.equal(
        (await docker(['ps', '-q', '--filter', `id=${other}`])).trim().slice(0, 12),
        other.slice(0, 12),
        "another node's container stays",
      );
      const loops = (await run('losetup', ['--list', '--noheadings', '-O', 'NAME'])).stdout;
      assert.ok(
        !loops
          .split('\n')
          .map((l) => l.trim())
          .includes(device),
        `${device} is detached`,
      );
      assert.equal(describeLeftovers(await removeLeftovers(node, runtimeDir)), undefined, 'a second pass finds nothing');
    } finally {
      await docker(['rm', '-f', other]).catch(() => undefined);
    }
  });
});
