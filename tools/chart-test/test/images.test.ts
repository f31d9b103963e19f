// The service images images/build.sh makes (lapis/<service>:<version>): their configuration
// (non-root, exec-form entrypoint loading telemetry first) and that each one starts under the
// chart's security settings (read-only root, no capabilities, uid 10001) and answers
// grpc.health.v1 SERVING against the run's NATS. `make test` builds the images before the run
// (`lapis-testenv prepare --images`) and sets LAPIS_REQUIRE_IMAGES=1, so a missing image fails;
// a bare `npx mocha` without them skips these tests with a message.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { credentials, loadPackageDefinition, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { natsUrl, staticTokenFile, unique } from '@lapis/platform/testing';
import { CommandError, docker, freePort, pingDocker, sharedDocker, waitFor } from '@lapis/testenv';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { REPO_ROOT } from '../src/render.js';

const SERVICES = ['container-runtime', 'image-sync', 'scheduler', 'tosca-orchestrator', 'occi-gateway'] as const;
/** node, its own flags (a larger young generation for the scheduler and the orchestrator), telemetry first, the service. */
const ENTRYPOINT = /^node( --max-semi-space-size=\d+)? -r @lapis\/platform\/register dist\/src\/main\.js$/;

async function version(service: string): Promise<string> {
  const pkg = JSON.parse(await fs.readFile(path.join(REPO_ROOT, 'services', service, 'package.json'), 'utf8')) as { version: string };
  return process.env.LAPIS_IMAGE_VERSION ?? pkg.version;
}

function healthCheck(address: string): Promise<string> {
  const def = loadSync(healthProtoPath, { keepCase: true, longs: String, enums: String, defaults: true });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const Health = (loadPackageDefinition(def) as any).grpc.health.v1.Health;
  const client = new Health(address, credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.check({ service: '' }, { deadline: Date.now() + 2000 }, (error: ServiceError | null, response: { status: string }) => {
      client.close();
      if (error) reject(error);
      else resolve(response.status);
    });
  });
}

describe('images made by images/build.sh', function () {
  this.timeout(120_000);
  const images = new Map<string, string>();
  let dir: string;
  const containers: string[] = [];

  before(async function () {
    const engine = await sharedDocker();
    if (!(await pingDocker(engine.socketPath))) throw new Error('no Docker engine');
    for (const service of SERVICES) {
      const image = `lapis/${service}:${await version(service)}`;
      const present = await docker(['image', 'inspect', '-f', '{{.Id}}', image]).then(
        () => true,
        () => false,
      );
      if (present) images.set(service, image);
    }
    const missing = SERVICES.filter((s) => !images.has(s));
    if (missing.length > 0) {
      const why = `images not built here: ${missing.map((s) => `lapis/${s}`).join(', ')} (run images/build.sh)`;
      if (process.env.LAPIS_REQUIRE_IMAGES === '1') throw new Error(why);
      console.error(`      skipped: ${why}`);
      this.skip();
    }
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lapis-image-test-'));
    await fs.chmod(dir, 0o755);
  });

  after(async function () {
    for (const id of containers) await docker(['rm', '-f', id]).catch(() => undefined);
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('run as a non-root user, with the exec-form entrypoint that loads telemetry first', async function () {
    for (const [service, image] of images) {
      const config = JSON.parse(await docker(['image', 'inspect', '-f', '{{json .Config}}', image])) as {
        User: string;
        Entrypoint: string[];
        Cmd: string[] | null;
        WorkingDir: string;
      };
      assert.equal(config.User, '10001:10001', `${image} user`);
      assert.match(config.Entrypoint.join(' '), ENTRYPOINT, `${image} entrypoint`);
      assert.equal(config.WorkingDir, `/app/services/${service}`);
    }
  });

  it('refuse to start without configuration, naming what is missing (the code and its modules load)', async function () {
    for (const [, image] of images) {
      await assert.rejects(docker(['run', '--rm', '--read-only', '--cap-drop', 'ALL', image]), (e: unknown) => {
        assert.ok(e instanceof CommandError);
        assert.match(e.stdout + e.stderr, /LAPIS_NATS_URL is required/, `${image}: ${e.stdout}${e.stderr}`);
        return true;
      });
    }
  });

  it('the runtime image has the host tools the agent runs (losetup, mount, mkfs.ext4)', async function () {
    const image = images.get('container-runtime') as string;
    const out = await docker([
      'run',
      '--rm',
      '--entrypoint',
      'sh',
      image,
      '-c',
      'for tool in losetup mount umount mkfs.ext4; do command -v "$tool"; done; node --version',
    ]);
    assert.match(out, /losetup[\s\S]*mkfs\.ext4[\s\S]*v\d+\.\d+/);
  });

  it('each service starts read-only, without capabilities, as uid 10001, and answers grpc.health.v1 SERVING', async function () {
    const tokens = path.join(dir, 'tokens.yaml');
    await fs.copyFile(staticTokenFile(), tokens);
    await fs.chmod(tokens, 0o644);
    const flavors = path.join(dir, 'flavors.yaml');
    await fs.copyFile(path.join(REPO_ROOT, 'config', 'flavors.yaml'), flavors);
    await fs.chmod(flavors, 0o644);
    for (const service of ['image-sync', 'scheduler', 'tosca-orchestrator', 'occi-gateway'] as const) {
      const image = images.get(service) as string;
      const port = await freePort();
      const env: Record<string, string> = {
        LAPIS_GRPC_HOST: '127.0.0.1',
        LAPIS_GRPC_PORT: String(port),
        LAPIS_NATS_URL: natsUrl(),
        LAPIS_STATIC_TOKENS_FILE: '/etc/lapis/auth/tokens.yaml',
        LAPIS_FLAVORS_FILE: '/etc/lapis/flavors/flavors.yaml',
        LAPIS_SITE_REGISTRY: 'http://127.0.0.1:1',
        LAPIS_HTTP_PORT: String(await freePort()),
        LAPIS_SCHEDULER_BUCKET_PREFIX: unique('img').toLowerCase(),
        LAPIS_SCHEDULER_CONSUMER_PREFIX: unique('img').toLowerCase(),
      };
      const id = (
        await docker([
          'run',
          '-d',
          '--network',
          'host',
          '--read-only',
          '--tmpfs',
          '/tmp',
          '--cap-drop',
          'ALL',
          '--security-opt',
          'no-new-privileges',
          '-v',
          `${tokens}:/etc/lapis/auth/tokens.yaml:ro`,
          '-v',
          `${flavors}:/etc/lapis/flavors/flavors.yaml:ro`,
          ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
          image,
        ])
      ).trim();
      containers.push(id);
      let last = '';
      try {
        await waitFor(
          async () => {
            const state = (await docker(['inspect', '-f', '{{.State.Status}}', id])).trim();
            if (state !== 'running') throw new Error(`${image} is ${state}`);
            last = await healthCheck(`127.0.0.1:${port}`).catch((e: Error) => e.message);
            return last === 'SERVING';
          },
          { timeoutMs: 30_000, what: `${image} to answer SERVING`, intervalMs: 500 },
        );
      } catch (e) {
        const logs = await docker(['logs', '--tail', '20', id]).catch(() => '');
        throw new Error(`${image}: ${(e as Error).message} (last answer: ${last})\n${logs}`);
      }
      await docker(['rm', '-f', id]);
    }
  });
});
