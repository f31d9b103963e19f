import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { trustConfig } from '../src/trust.js';
import { allocationFromEnv, containerName, dockerRunArgs, parseArgs, UsageError } from '../src/step.js';

describe('lapis-run: arguments and allocation (pure)', function () {
  it('parses the image, variables, user and the command after --', function () {
    assert.deepEqual(parseArgs(['--image', 'img:1', '--env', 'A=b c', '--user', '1000:1000', '--', 'sh', '-c', 'echo --image']), {
      image: 'img:1',
      env: ['A=b c'],
      user: '1000:1000',
      command: ['sh', '-c', 'echo --image'],
    });
  });

  it('refuses a missing image, a missing command and unknown flags', function () {
    assert.throws(
      () => parseArgs(['--', 'true']),
      (e: Error) => e instanceof UsageError && /--image is required/.test(e.message),
    );
    assert.throws(() => parseArgs(['--image', 'x']), /no command after --/);
    assert.throws(() => parseArgs(['--image', 'x', '--cpus', '2', '--', 'true']), /unknown argument "--cpus"/);
    assert.throws(() => parseArgs(['--image', 'x', '--env', 'nope', '--', 'true']), /NAME=VALUE/);
  });

  it('reads CPUs, memory (per node, else per CPU x CPUs) and GPUs from the step environment', function () {
    assert.deepEqual(allocationFromEnv({ SLURM_CPUS_ON_NODE: '2', SLURM_MEM_PER_NODE: '512' }), { cpus: 2, memoryMb: 512 });
    assert.deepEqual(allocationFromEnv({ SLURM_CPUS_ON_NODE: '3', SLURM_MEM_PER_CPU: '100' }), { cpus: 3, memoryMb: 300 });
    // No GPU on this machine: the GRES variables are set by hand here, as slurmstepd would.
    assert.deepEqual(allocationFromEnv({ SLURM_CPUS_ON_NODE: '1', SLURM_STEP_GPUS: '0,2' }), { cpus: 1, gpus: ['0', '2'] });
    assert.deepEqual(allocationFromEnv({}), {});
  });

  it('builds docker run with limits, the workdir mount, labels and the Slurm variables', function () {
    const env = {
      SLURM_JOB_ID: '42',
      SLURM_STEP_ID: '0',
      SLURM_PROCID: '1',
      SLURM_CPUS_ON_NODE: '1',
      SLURM_MEM_PER_NODE: '64',
      SLURM_JOB_GPUS: '1',
      HOME: '/root',
    };
    const name = containerName(env, 99);
    assert.equal(name, 'lapis-slurm-42-0-1');
    const args = dockerRunArgs({ request: parseArgs(['--image', 'img', '--', 'nproc']), env, cwd: '/work/job', defaultUser: '0:0', name });
    const joined = args.join(' ');
    for (const part of [
      'run --rm --name lapis-slurm-42-0-1',
      '--cpus 1',
      '--memory 64m --memory-swap 64m',
      '--gpus "device=1"',
      '--volume /work/job:/work/job --workdir /work/job',
      '--user 0:0',
      '--label lapis.slurm.job=42',
      '--env SLURM_JOB_ID',
    ]) {
      assert.ok(joined.includes(part), `"${part}" not in: ${joined}`);
    }
    assert.ok(!joined.includes('HOME'), 'a non-Slurm variable was passed');
    assert.deepEqual(args.slice(-2), ['img', 'nproc']);
  });
});

describe('lapis-run: site settings (pure, a temp file)', function () {
  it('reads KEY=VALUE from LAPIS_RUN_CONFIG; the environment wins; a bad flag is refused', function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lapis-run-conf-'));
    try {
      const file = path.join(dir, 'lapis-run.conf');
      fs.writeFileSync(file, '# site\nLAPIS_IMAGE_SYNC_ADDRESS = sync:50052\nLAPIS_SERVICE_TOKEN="secret"\n');
      assert.deepEqual(trustConfig({ LAPIS_RUN_CONFIG: file }), { imageSyncAddress: 'sync:50052', token: 'secret', allowUntrusted: false });
      assert.deepEqual(trustConfig({ LAPIS_RUN_CONFIG: file, LAPIS_SERVICE_TOKEN: 'mine', LAPIS_ALLOW_UNTRUSTED_IMAGES: 'true' }), {
        imageSyncAddress: 'sync:50052',
        token: 'mine',
        allowUntrusted: true,
      });
      assert.throws(() => trustConfig({ LAPIS_RUN_CONFIG: file, LAPIS_ALLOW_UNTRUSTED_IMAGES: 'maybe' }), /true or false/);
      assert.throws(() => trustConfig({ LAPIS_RUN_CONFIG: path.join(dir, 'missing.conf') }), /cannot read LAPIS_RUN_CONFIG/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
