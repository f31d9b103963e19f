// The claim ceiling: what no node could ever have, worked examples.
import { strict as assert } from 'node:assert';
import { parse } from 'yaml';
import { beyondCeiling, DEFAULT_CEILING } from '../../src/domain/ceiling';
import { parseSettings } from '../../src/config';

const res = (over: Partial<{ cpuMillis: number; memoryBytes: number; gpus: number; pids: number; diskBytes: number }> = {}) => ({
  cpuMillis: 1000,
  memoryBytes: 2 ** 30,
  gpus: 0,
  pids: 0,
  diskBytes: 0,
  ...over,
});
const device = (kind: number, count: number, ids: string[] = []) => ({ kind, count, ids, cdiNames: [], vendor: '' });
const fields = (...args: Parameters<typeof beyondCeiling>) => beyondCeiling(...args).map((v) => v.field);

describe('claim ceiling', () => {
  it('takes what a large node could run, up to the ceiling itself', () => {
    assert.deepEqual(
      fields(res({ cpuMillis: 4096 * 1000, memoryBytes: 64 * 2 ** 40, gpus: 64, pids: 4_194_304 }), [device(1, 8)], DEFAULT_CEILING),
      [],
    );
    assert.deepEqual(fields(undefined, [], DEFAULT_CEILING), []);
  });

  it('names each resource beyond it', () => {
    assert.deepEqual(fields(res({ cpuMillis: 9e15, gpus: 65, diskBytes: 2 ** 53 - 1 }), [], DEFAULT_CEILING), [
      'spec.resources.cpu_millis',
      'spec.resources.gpus',
      'spec.resources.disk_bytes',
    ]);
  });

  it('counts devices per request and in all (ids count as devices)', () => {
    assert.deepEqual(fields(res(), [device(2, 65)], DEFAULT_CEILING), ['spec.devices[0].count']);
    const many = Array.from({ length: 65 }, (_, i) => String(i));
    assert.deepEqual(fields(res(), [device(3, 0, many)], DEFAULT_CEILING), ['spec.devices']);
    assert.deepEqual(fields(res(), [device(2, 40), device(3, 40)], DEFAULT_CEILING), ['spec.devices']);
  });

  it('is set by the site as claim_ceiling, defaults kept for what it leaves out', () => {
    const s = parseSettings(parse('claim_ceiling: { cpus: 128, memory: 1Ti, devices: 4 }'), 'test');
    assert.deepEqual(s.ceiling, { ...DEFAULT_CEILING, cpu: 128_000, mem: 2 ** 40, devices: 4 });
    assert.deepEqual(parseSettings({}, 'test').ceiling, DEFAULT_CEILING);
    assert.throws(() => parseSettings(parse('claim_ceiling: { memory: lots }'), 'test'), /claim_ceiling\.memory/);
  });
});
