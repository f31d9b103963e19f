// Trusted-image rules in lapis-run against a real image-sync process and real registries:
// an image synced into the site catalogue runs by its digest; anything else fails the step
// before a container exists, with its own exit status; so does an unreachable image-sync.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import { createClient } from '@lapis/platform';
import { natsUrl, spawnService, staticTokenFile, TEST_TOKENS, until, type ServiceProcess } from '@lapis/platform/testing';
import type { ListImagesResponse } from '@lapis/proto/lapis/images/v1/images';
import { ImageSyncServiceClient } from '@lapis/proto/lapis/images/v1/image_sync_service';
import {
  docker,
  ensureBaseImage,
  freePort,
  sharedDocker,
  startRegistry,
  startSlurm,
  type DockerEngine,
  type Registry,
  type SlurmCluster,
} from '@lapis/testenv';
import { EXIT_UNAVAILABLE, EXIT_UNTRUSTED } from '../src/trust.js';

const LAPIS_RUN = path.resolve(__dirname, '../src/lapis-run.js');
const IMAGE_SYNC_MAIN = require.resolve('@lapis/image-sync/dist/src/main.js');

describe('lapis-run: trusted-image rules (real image-sync, real registries, real Slurm)', function () {
  let engine: DockerEngine;
  let upstream: Registry | undefined;
  let site: Registry | undefined;
  let imageSync: ServiceProcess | undefined;
  let slurm: SlurmCluster | undefined;
  let base: string;
  let confFile: string;
  const repository = `slurm-test/probe-${process.pid}`;
  let digest = '';
  let pullReference = '';

  // A batch script whose step runs through lapis-run with the site settings in `conf`.
  const stepScript = (image: string, cmd: string, conf: string): string =>
    `#!/bin/sh\nexport DOCKER_HOST=unix://${engine.socketPath}\nexport LAPIS_RUN_CONFIG=${conf}\nsrun ${process.execPath} ${LAPIS_RUN} --image ${image} -- ${cmd}\n`;

  const workDir = (): string => fs.mkdtempSync(path.join(slurm!.dir, 'job-'));
  const containersOf = async (jobId: string): Promise<string[]> =>
    (await docker(['ps', '-aq', '--filter', `label=lapis.slurm.job=${jobId}`], { engine })).split('\n').filter(Boolean);

  before(async function () {
    engine = await sharedDocker();
    base = await ensureBaseImage(undefined, { engine });
    [upstream, site] = await Promise.all([startRegistry(), startRegistry()]);
    // The image upstream; a policy syncs it into the site registry, which makes it trusted.
    const ref = `${upstream.host}/${repository}:1.0`;
    await docker(['tag', base, ref], { engine });
    await docker(['push', ref], { engine });
    await docker(['rmi', ref], { engine }).catch(() => undefined);
    const policies = path.join(upstream.dir, 'policies.yaml');
    fs.writeFileSync(
      policies,
      [
        'policies:',
        '  - name: slurm-test',
        `    source: { url: "${upstream.url}", insecure: true }`,
        `    repositories: [${repository}]`,
        '    interval: 10m',
      ].join('\n'),
    );
    imageSync = await spawnService(
      'image-sync',
      IMAGE_SYNC_MAIN,
      {
        LAPIS_NATS_URL: natsUrl(),
        LAPIS_STATIC_TOKENS_FILE: staticTokenFile(),
        LAPIS_SITE_REGISTRY: site.url,
        LAPIS_POLICY_FILE: policies,
        LOG_LEVEL: 'info',
      },
      120_000,
      path.join(upstream.dir, 'image-sync.log'),
    );
    const client = createClient(ImageSyncServiceClient, imageSync.address, { token: TEST_TOKENS.root.token });
    try {
      const image = await until(
        async () => {
          const response = await new Promise<ListImagesResponse>((resolve, reject) =>
            client.listImages({ pageSize: 100, pageToken: '', repositoryPrefix: repository, policy: '' }, new Metadata(), (e, r) =>
              e ? reject(e) : resolve(r),
            ),
          );
          return response.images.find((i) => i.tag === '1.0');
        },
        `${repository}:1.0 in the catalogue`,
        120_000,
      );
      digest = image.digest;
      pullReference = image.pullReference;
    } finally {
      client.close();
    }
    slurm = await startSlurm();
    confFile = path.join(slurm.dir, 'lapis-run.conf');
    fs.writeFileSync(
      confFile,
      `# lapis-run site settings\nLAPIS_IMAGE_SYNC_ADDRESS=${imageSync.address}\nLAPIS_SERVICE_TOKEN=${TEST_TOKENS.root.token}\n`,
    );
  });

  after(async function () {
    await slurm?.stop();
    await imageSync?.stop();
    if (pullReference) await docker(['rmi', '--force', pullReference], { engine }).catch(() => undefined);
    await Promise.all([upstream?.stop(), site?.stop()]);
  });

  it('a trusted image runs, pulled from the site registry by its digest', async function () {
    const work = workDir();
    const id = await slurm!.sbatch(stepScript(`${repository}:1.0`, `sh -c 'echo hello from the catalogue'`, confFile), {
      cwd: work,
      args: ['-c', '1', '--mem=32M', '-o', 'out.txt'],
    });
    const state = await slurm!.waitForJob(id, ['COMPLETED', 'FAILED', 'CANCELLED'], 120_000);
    const out = fs.readFileSync(path.join(work, 'out.txt'), 'utf8');
    assert.equal(state, 'COMPLETED', out);
    assert.match(out, /^hello from the catalogue$/m);
    assert.match(pullReference, new RegExp(`^${site!.host}/${repository}@${digest}$`));
    // The engine has the image under its site-registry digest: that is what ran.
    const digests = await docker(['images', '--digests', '--format', '{{.Repository}}@{{.Digest}}'], { engine });
    assert.ok(digests.split('\n').includes(pullReference), `${pullReference} not among the engine's images:\n${digests}`);
    assert.deepEqual(await containersOf(id), []);
  });

  it('an image not in the catalogue fails the step with exit 77 and a clear message; nothing runs', async function () {
    const work = workDir();
    const id = await slurm!.sbatch(stepScript(base, `sh -c 'touch ran.txt'`, confFile), {
      cwd: work,
      args: ['-c', '1', '--mem=32M', '-o', 'out.txt'],
    });
    assert.equal(await slurm!.waitForJob(id, ['COMPLETED', 'FAILED', 'CANCELLED']), 'FAILED');
    const { stdout } = await slurm!.command('scontrol', ['-o', 'show', 'job', id]);
    assert.match(stdout, new RegExp(`\\bExitCode=${EXIT_UNTRUSTED}:0\\b`));
    const out = fs.readFileSync(path.join(work, 'out.txt'), 'utf8');
    assert.match(out, new RegExp(`lapis-run: image ${base.replace(/[.]/g, '\\.')} is not trusted \\(IMAGE_NOT_TRUSTED\\)`), out);
    assert.ok(!fs.existsSync(path.join(work, 'ran.txt')), 'the command ran');
    assert.deepEqual(await containersOf(id), []);
  });

  it('with LAPIS_ALLOW_UNTRUSTED_IMAGES=true an image not in the catalogue runs as given, with a warning', async function () {
    const work = workDir();
    const conf = path.join(work, 'allow.conf');
    fs.writeFileSync(conf, `${fs.readFileSync(confFile, 'utf8')}LAPIS_ALLOW_UNTRUSTED_IMAGES=true\n`);
    const id = await slurm!.sbatch(stepScript(base, `sh -c 'touch ran.txt'`, conf), {
      cwd: work,
      args: ['-c', '1', '--mem=32M', '-o', 'out.txt'],
    });
    const out = () => fs.readFileSync(path.join(work, 'out.txt'), 'utf8');
    assert.equal(await slurm!.waitForJob(id, ['COMPLETED', 'FAILED', 'CANCELLED']), 'COMPLETED', out());
    assert.match(out(), /lapis-run: warning: image .* is not in the trusted catalogue; running it as given/);
    assert.ok(fs.existsSync(path.join(work, 'ran.txt')));
  });

  it('an unreachable image-sync fails the step with exit 69; nothing runs', async function () {
    const work = workDir();
    const conf = path.join(work, 'unreachable.conf');
    fs.writeFileSync(conf, `LAPIS_IMAGE_SYNC_ADDRESS=127.0.0.1:${await freePort()}\nLAPIS_SERVICE_TOKEN=${TEST_TOKENS.root.token}\n`);
    const id = await slurm!.sbatch(stepScript(`${repository}:1.0`, `sh -c 'touch ran.txt'`, conf), {
      cwd: work,
      args: ['-c', '1', '--mem=32M', '-o', 'out.txt'],
    });
    assert.equal(await slurm!.waitForJob(id, ['COMPLETED', 'FAILED', 'CANCELLED']), 'FAILED');
    const { stdout } = await slurm!.command('scontrol', ['-o', 'show', 'job', id]);
    assert.match(stdout, new RegExp(`\\bExitCode=${EXIT_UNAVAILABLE}:0\\b`));
    assert.match(fs.readFileSync(path.join(work, 'out.txt'), 'utf8'), /lapis-run: cannot check image .* with image-sync at 127\.0\.0\.1:/);
    assert.ok(!fs.existsSync(path.join(work, 'ran.txt')), 'the command ran');
  });
});
