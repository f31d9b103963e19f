// The scheduler's YAML configuration: every section parsed, and bad values named.
import { strict as assert } from 'node:assert';
import { parse } from 'yaml';
import { parseDuration, parseSettings } from '../../src/config';

describe('scheduler settings (LAPIS_SCHEDULER_CONFIG_FILE)', () => {
  it('reads partitions, weights, fair share, QOS, placement, accounts and quotas', () => {
    const s = parseSettings(
      parse(`
default_partition: cloud
partitions:
  - { name: cloud, tier: 2, max: { cpus: 64, memory: 256Gi } }
  - { name: batch, tier: 1, allow_preemptible: false, batch_partition: slurm-batch, min_nodes: 1, max_nodes: 4 }
  - { name: slurm-batch, closed: true }
weights: { age: 10, fair_share: 100, job_size: 0, partition: 5, qos: 1, max_age: 3d, favor_small: false }
fair_share: { algorithm: classic, half_life: 2h, billing: { cpu: 2, memory_gib: 0.5, gpu: 20 } }
qos: { normal: 0, high: 100 }
placement: { strategy: pack, image_weight: 0.5, max_scored: 10 }
preemption: { grace: 45s }
accounts:
  - { name: physics, shares: 70, users: { alice: 2 } }
  - { name: theory, parent: physics, shares: 1 }
quotas:
  - { project: physics, instances: 10, cpus: 20, memory: 64Gi, gpus: 2 }
`),
      'test',
    );
    assert.equal(s.defaultPartition, 'cloud');
    assert.deepEqual(s.partitions[0]!.maxResources, { cpu: 64_000, mem: 256 * 2 ** 30, gpus: 0 });
    assert.equal(s.partitions[1]!.allowPreemptible, false);
    assert.equal(s.partitions[1]!.batchPartition, 'slurm-batch');
    assert.equal(s.partitions[2]!.closed, true);
    assert.deepEqual(s.weights, { age: 10, fairShare: 100, jobSize: 0, partition: 5, qos: 1, maxAgeMs: 3 * 86_400_000, favorSmall: false });
    assert.equal(s.algorithm, 'classic');
    assert.equal(s.halfLifeMs, 2 * 3600_000);
    assert.deepEqual(s.billing, { cpu: 2, memGiB: 0.5, gpu: 20 });
    assert.equal(s.qos.get('high'), 100);
    assert.deepEqual(s.placement, { strategy: 'pack', imageWeight: 0.5, maxScored: 10 });
    assert.equal(s.preemptGraceMs, 45_000);
    assert.deepEqual(s.accounts[0], { name: 'physics', parent: '', shares: 70, userShares: { alice: 2 } });
    assert.equal(s.accounts[1]!.parent, 'physics');
    assert.deepEqual(s.quotas[0], { project: 'physics', maxInstances: 10, maxResources: { cpu: 20_000, mem: 64 * 2 ** 30, gpus: 2 } });
  });

  it('names what is wrong', () => {
    assert.throws(() => parseSettings({ fair_share: { algorithm: 'lottery' } }, 'f'), /fair_share.algorithm: classic or fair_tree/);
    assert.throws(() => parseSettings({ weights: { age: -1 } }, 'f'), /weights.age: expected a number >= 0/);
    assert.throws(() => parseSettings({ partitions: [{ tier: 1 }] }, 'f'), /partitions\[0\].name: required/);
    assert.throws(() => parseSettings({ quotas: [{ project: 'p', memory: 'lots' }] }, 'f'), /quotas\[0\].memory/);
    assert.throws(() => parseDuration('soon'), /not a duration/);
    assert.throws(() => parseSettings({ partitions: [{ name: 'default', closed: true }] }, 'f'), /default_partition: default is closed/);
  });
});
