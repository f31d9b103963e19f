// Image trust: the catalogue (image-sync's ResolveImage; here its stand-in) decides what runs,
// and the container runs the digest it names, whether the image came from a registry (its
// manifest digest is in RepoDigests) or was built on the node (its image id).
import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import { errorDetails } from '@lapis/platform';
import { docker, ensureBaseImage, startRegistry, type Registry } from '@lapis/testenv';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import { adminOf, baseSpec, dockerClient, expectCode, fakeImageSync, rpc, startRuntime, type Client, type Runtime } from '../harness';

describe('image trust and run-by-digest (real registry, image-sync stand-in)', function () {
  let registry: Registry;
  let imageSync: Awaited<ReturnType<typeof fakeImageSync>>;
  let untrusting: Runtime;
  let lenient: Runtime;
  let pushed: string;
  let manifestDigest: string;
  const tampered = 'lapis/busybox:tampered';

  before(async () => {
    const base = await ensureBaseImage();
    registry = await startRegistry();
    pushed = `${registry.host}/lapis/busybox:1.0`;
    await docker(['tag', base, pushed]);
    await docker(['push', pushed]);
    const repoDigest = (await dockerClient().getImage(pushed).inspect()).RepoDigests.find((d) => d.startsWith(`${registry.host}/`))!;
    manifestDigest = repoDigest.slice(repoDigest.indexOf('@') + 1);
    await docker(['tag', base, tampered]);
    imageSync = await fakeImageSync({ [pushed]: manifestDigest, [tampered]: `sha256:${'0'.repeat(64)}` });
    untrusting = await startRuntime({ imageSync: imageSync.address });
    // A development node: image-sync still asked, but what it does not list runs too.
    lenient = await startRuntime({ imageSync: imageSync.address, env: { LAPIS_ALLOW_UNTRUSTED_IMAGES: 'true' } });
  });
  after(async () => {
    await untrusting?.stop({ purge: true });
    await lenient?.stop({ purge: true });
    await imageSync?.stop();
    await dockerClient()
      .getImage(pushed)
      .remove()
      .catch(() => undefined);
    await dockerClient()
      .getImage(`${registry.host}/lapis/busybox@${manifestDigest}`)
      .remove()
      .catch(() => undefined);
    await dockerClient()
      .getImage(tampered)
      .remove()
      .catch(() => undefined);
    await registry?.stop();
  });

  const create = async (client: Client, name: string, image: string) =>
    (
      (await rpc(adminOf(client), adminOf(client).createInstance, {
        instanceId: '',
        spec: baseSpec(name, { image }),
        preemptible: false,
        requestId: '',
      })) as { instance: Instance }
    ).instance;

  it('runs a registry image by the manifest digest the catalogue gives', async () => {
    const instance = await create(untrusting.client('alice', 'physics'), 'from-registry', pushed);
    assert.equal(instance.state, InstanceState.RUNNING);
    assert.equal(instance.imageDigest, manifestDigest);
    const info = await dockerClient().getContainer(instance.backendId).inspect();
    assert.equal(info.Image, (await dockerClient().getImage(pushed).inspect()).Id);
    assert.equal(info.Config.Labels['lapis.image-digest'], manifestDigest);
  });

  it('refuses a local image whose content is not the trusted digest', async () => {
    const error = await expectCode(
      create(untrusting.client('alice', 'physics'), 'tampered', tampered),
      status.FAILED_PRECONDITION,
      /is sha256:[0-9a-f]+, not the trusted digest sha256:0000/,
    );
    assert.equal(errorDetails(error).errorInfo?.reason, 'IMAGE_DIGEST_MISMATCH');
  });

  it('runs an image image-sync does not list only on a node that allows untrusted images', async () => {
    await expectCode(
      create(untrusting.client('alice', 'physics'), 'dev-1', 'lapis/busybox:testenv'),
      status.FAILED_PRECONDITION,
      /not in the trusted catalogue/,
    );
    const instance = await create(lenient.client('alice', 'physics'), 'dev-1', 'lapis/busybox:testenv');
    assert.equal(instance.state, InstanceState.RUNNING);
    assert.equal(instance.imageDigest, (await dockerClient().getImage('lapis/busybox:testenv').inspect()).Id, 'recorded by image id');
  });

  it('answers UNAVAILABLE when image-sync cannot be reached, and makes nothing', async () => {
    const orphan = await startRuntime({ imageSync: '127.0.0.1:1' });
    try {
      await expectCode(
        create(orphan.client('alice', 'physics'), 'no-sync', pushed),
        status.UNAVAILABLE,
        /cannot check image .* with image-sync/,
      );
    } finally {
      await orphan.stop({ purge: true });
    }
  });
});
