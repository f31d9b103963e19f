// SLURM's multifactor priority, worked by hand.
import { strict as assert } from 'node:assert';
import { ageFactor, jobSizeFactor, relative, weigh, weightsRow, type Weights } from '../../src/domain/priority';

const W: Weights = { age: 1000, fairShare: 10000, jobSize: 1000, partition: 1000, qos: 1000, maxAgeMs: 7 * 86_400_000, favorSmall: true };
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-6, `${a} != ${b}`);

describe('multifactor priority', () => {
  it('caps the age factor at PriorityMaxAge', () => {
    close(ageFactor(3.5 * 86_400_000, W.maxAgeMs), 0.5); // 3.5 d / 7 d
    close(ageFactor(14 * 86_400_000, W.maxAgeMs), 1); // min(14 d, 7 d) / 7 d
    close(ageFactor(-5, W.maxAgeMs), 0);
  });

  it('sizes jobs against the cluster, favoring small ones when asked', () => {
    close(jobSizeFactor(4000, 16000, false), 0.25); // 4 of 16 CPUs
    close(jobSizeFactor(4000, 16000, true), 0.75); // 1 - 0.25
  });

  it('weighs the factors and reports 0..1', () => {
    // age 0.5, fair share 0.25, size 0.75, partition 2/4 = 0.5, qos 50/100 = 0.5
    // 1000*0.5 + 10000*0.25 + 1000*0.75 + 1000*0.5 + 1000*0.5 = 4750; / 14000 = 0.3392857
    const b = weigh({ age: 0.5, fairShare: 0.25, jobSize: 0.75, partition: relative(2, 4), qos: relative(50, 100) }, W);
    close(b.priority, 4750 / 14000);
    close(b.weightedFairShare, 2500 / 14000);
    close(b.weightedAge + b.weightedFairShare + b.weightedJobSize + b.weightedPartition + b.weightedQos, b.priority);
    const w = weightsRow(W);
    close(w.weightedFairShare, 10000 / 14000);
  });
});
