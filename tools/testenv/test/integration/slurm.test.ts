import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startSlurm, type SlurmCluster } from '../../src/index.js';

describe('testenv: Slurm (one node on loopback)', function () {
  let slurm: SlurmCluster;

  before(async function () {
    slurm = await startSlurm();
  });

  after(async function () {
    await slurm?.stop();
  });

  it('the node is idle in the batch partition', async function () {
    assert.match(await slurm.sinfo(), /^localhost idle$/m);
    assert.ok(fs.readFileSync(slurm.conf, 'utf8').includes('PartitionName=batch'));
  });

  it('srun runs a step and returns its output', async function () {
    const { stdout } = await slurm.command('srun', ['-n', '1', 'sh', '-c', 'echo "step $SLURM_JOB_ID on $SLURMD_NODENAME"']);
    assert.match(stdout.trim(), /^step \d+ on localhost$/);
  });

  it('an sbatch job runs its script in its working directory and completes', async function () {
    const work = fs.mkdtempSync(path.join(slurm.dir, 'job-'));
    const id = await slurm.sbatch('#!/bin/sh\necho "ran $SLURM_JOB_ID" > result.txt\n', { cwd: work, args: ['-o', 'out.txt'] });
    assert.equal(await slurm.waitForJob(id, ['COMPLETED', 'FAILED', 'CANCELLED']), 'COMPLETED');
    assert.equal(fs.readFileSync(path.join(work, 'result.txt'), 'utf8'), `ran ${id}\n`);
  });

  it('scancel ends a running job (CANCELLED, gone from squeue)', async function () {
    const id = await slurm.sbatch('#!/bin/sh\nsleep 300\n', { args: ['-o', '/dev/null'] });
    await slurm.waitForJob(id, ['RUNNING']);
    assert.ok((await slurm.squeue()).some((j) => j.id === id && j.state === 'RUNNING'));
    await slurm.scancel(id);
    assert.equal(await slurm.waitForJob(id, ['CANCELLED', 'COMPLETED', 'FAILED']), 'CANCELLED');
    assert.equal(
      (await slurm.squeue()).some((j) => j.id === id),
      false,
      'the job is still in squeue',
    );
  });

  it('stop() stops the daemons and removes the dir', async function () {
    const other = await startSlurm();
    const id = await other.sbatch('#!/bin/sh\nsleep 300\n', { args: ['-o', '/dev/null'] });
    await other.waitForJob(id, ['RUNNING']);
    const pids = ['slurmctld.pid', 'slurmd.pid'].map((f) => Number(fs.readFileSync(path.join(other.dir, f), 'utf8').trim()));
    await other.stop();
    assert.equal(fs.existsSync(other.dir), false, `${other.dir} is still there`);
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), `process ${pid} is still running`);
    await other.stop(); // idempotent
  });
});
