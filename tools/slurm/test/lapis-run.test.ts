import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { docker, ensureBaseImage, sharedDocker, startSlurm, waitFor, type DockerEngine, type SlurmCluster } from '@lapis/testenv';

// The compiled wrapper and the epilog, as a site would install them.
const LAPIS_RUN = path.resolve(__dirname, '../src/lapis-run.js');
const EPILOG = path.resolve(__dirname, '../../scripts/epilog.sh');

describe('Slurm job steps in Lapis containers (lapis-run)', function () {
  let engine: DockerEngine;
  let image: string;
  let slurm: SlurmCluster | undefined;
  let dirs: string[] = [];

  const containersOf = async (jobId: string): Promise<string[]> =>
    (await docker(['ps', '-aq', '--filter', `label=lapis.slurm.job=${jobId}`], { engine })).split('\n').filter(Boolean);

  // A batch script whose step runs in a container; the job's env reaches the engine. The
  // local test image is in no catalogue: these tests run it as given (trust.test.ts checks the rules).
  const stepScript = (cmd: string): string =>
    `#!/bin/sh\nexport DOCKER_HOST=unix://${engine.socketPath}\nexport LAPIS_RUN_CONFIG=/dev/null LAPIS_ALLOW_UNTRUSTED_IMAGES=true\nsrun ${process.execPath} ${LAPIS_RUN} --image ${image} -- ${cmd}\n`;

  const workDir = (): string => {
    const dir = fs.mkdtempSync(path.join(slurm!.dir, 'job-'));
    dirs.push(dir);
    return dir;
  };

  before(async function () {
    engine = await sharedDocker();
    image = await ensureBaseImage(undefined, { engine });
  });

  afterEach(async function () {
    dirs = [];
  });

  after(async function () {
    await slurm?.stop();
  });

  describe('without an epilog (the wrapper cleans up by itself)', function () {
    before(async function () {
      slurm = await startSlurm();
    });
    after(async function () {
      await slurm?.stop();
      slurm = undefined;
    });

    it('a step runs in a container with the job CPU and memory as cgroup limits, the workdir mounted, output in the job file', async function () {
      const work = workDir();
      const cmd = `sh -c 'echo quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)/$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us); echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes); echo pwd=$(pwd) job=$SLURM_JOB_ID; hostname > in-container.txt'`;
      const id = await slurm!.sbatch(stepScript(cmd), { cwd: work, args: ['-c', '1', '--mem=64M', '-o', 'out.txt'] });
      const state = await slurm!.waitForJob(id, ['COMPLETED', 'FAILED', 'CANCELLED']);
      const out = fs.readFileSync(path.join(work, 'out.txt'), 'utf8');
      assert.equal(state, 'COMPLETED', out);
      assert.match(out, /^quota=100000\/100000$/m, out); // --cpus 1
      assert.match(out, new RegExp(`^mem=${64 * 1024 * 1024}$`, 'm'), out); // --memory 64m
      assert.match(out, new RegExp(`^pwd=${work} job=${id}$`, 'm'), out);
      // Written inside the container into the mounted working directory; the container has its own hostname.
      const written = fs.readFileSync(path.join(work, 'in-container.txt'), 'utf8').trim();
      assert.ok(written.length > 0);
      assert.deepEqual(await containersOf(id), [], 'the container is still there');
    });

    it('a failing step fails the job with its exit code and leaves no container', async function () {
      const work = workDir();
      const id = await slurm!.sbatch(stepScript(`sh -c 'echo failing; exit 3'`), {
        cwd: work,
        args: ['-c', '1', '--mem=32M', '-o', 'out.txt'],
      });
      assert.equal(await slurm!.waitForJob(id, ['COMPLETED', 'FAILED', 'CANCELLED']), 'FAILED');
      const { stdout } = await slurm!.command('scontrol', ['-o', 'show', 'job', id]);
      assert.match(stdout, /\bExitCode=3:0\b/);
      assert.match(fs.readFileSync(path.join(work, 'out.txt'), 'utf8'), /^failing$/m);
      assert.deepEqual(await containersOf(id), []);
    });

    it('a cancelled job leaves no container', async function () {
      const work = workDir();
      const id = await slurm!.sbatch(stepScript('sleep 300'), { cwd: work, args: ['-c', '1', '--mem=32M', '-o', 'out.txt'] });
      await waitFor(async () => (await docker(['ps', '-q', '--filter', `label=lapis.slurm.job=${id}`], { engine })).trim() !== '', {
        timeoutMs: 60_000,
        what: `the container of job ${id} to run`,
        intervalMs: 250,
      });
      await slurm!.scancel(id);
      assert.equal(await slurm!.waitForJob(id, ['CANCELLED', 'COMPLETED', 'FAILED']), 'CANCELLED');
      await waitFor(async () => (await containersOf(id)).length === 0, {
        timeoutMs: 20_000,
        what: `the containers of job ${id} to be removed`,
      });
    });
  });

  describe('with the epilog', function () {
    before(async function () {
      slurm = await startSlurm({ extraConf: [`Epilog=${EPILOG}`] });
    });

    it('removes a container of the job that outlived its step (a step killed before its cleanup)', async function () {
      const work = workDir();
      // As a SIGKILLed lapis-run would leave it: a labelled container still running after the step.
      const script = `#!/bin/sh\nexport DOCKER_HOST=unix://${engine.socketPath}\ndocker run -d --label lapis.slurm.job=$SLURM_JOB_ID ${image} sleep 300\n`;
      const id = await slurm!.sbatch(script, { cwd: work, args: ['-o', 'out.txt'] });
      assert.equal(
        await slurm!.waitForJob(id, ['COMPLETED', 'FAILED', 'CANCELLED']),
        'COMPLETED',
        fs.readFileSync(path.join(work, 'out.txt'), 'utf8'),
      );
      await waitFor(async () => (await containersOf(id)).length === 0, {
        timeoutMs: 30_000,
        what: `the epilog to remove the containers of job ${id}`,
      });
    });
  });
});
