// Several node agents on one Docker engine (issue 20): each makes and removes its projects'
// bridge networks, and the engine's name check is not atomic (Docker 20.10 made two networks of
// one name when two agents asked at once, and every later start failed: "ambiguous").
import { strict as assert } from 'node:assert';
import { createLogger } from '@lapis/platform';
import { unique } from '@lapis/platform/testing';
import { BASE_IMAGE, docker, ensureBaseImage, sharedDocker } from '@lapis/testenv';
import { DockerBackend } from '../../src/adapters/docker';
import { projectNetworkName } from '../../src/adapters/docker-options';

describe('agents sharing one Docker engine: a project network', function () {
  const named = async (name: string) =>
    (await docker(['network', 'ls', '--filter', `name=${name}`, '--format', '{{.Name}} {{.ID}}']))
      .split('\n')
      .filter((line) => line.startsWith(`${name} `));

  it('is one network when two agents make it at once, and is not removed while another agent’s container is in it', async () => {
    const socket = (await sharedDocker()).socketPath;
    await ensureBaseImage();
    const log = createLogger('container-runtime', 'silent');
    const [a, b] = [new DockerBackend(socket, unique('node-a'), log), new DockerBackend(socket, unique('node-b'), log)];
    const project = unique('shared-net').toLowerCase();
    const name = projectNetworkName(project);
    let container = '';
    try {
      const ids = await Promise.all(Array.from({ length: 4 }, () => [a.ensureNetwork(project), b.ensureNetwork(project)]).flat());
      assert.equal(new Set(ids).size, 1, `every agent uses one network: ${ids.join(', ')}`);
      assert.equal((await named(name)).length, 1, 'the others made at once are gone');

      // b's container, made but not started (not attached yet): a, releasing its own last one, keeps the network.
      container = (await docker(['create', '--network', ids[0]!, '--label', `lapis.project=${project}`, BASE_IMAGE, 'true'])).trim();
      await a.releaseNetwork(project);
      assert.equal((await named(name)).length, 1, 'kept while a container of the project is on the engine');
      await docker(['rm', '-f', container]);
      container = '';
      await a.releaseNetwork(project);
      assert.equal((await named(name)).length, 0, 'removed once nothing of the project is left');
    } finally {
      if (container) await docker(['rm', '-f', container]).catch(() => undefined);
      for (const line of await named(name)) await docker(['network', 'rm', line.split(' ')[1]!]).catch(() => undefined);
    }
  });
});
