// Claims that could never run are refused at submit, naming the field (real NATS, real gRPC):
// more CPU, memory, processes or devices than any node could have, device kinds the contract
// does not define, image references no registry would take.
import { strict as assert } from 'node:assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { errorDetails } from '@lapis/platform';
import { ClaimState } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import type { RunningScheduler } from '../../src/wiring';
import { client, startTestScheduler, unique, type Api } from './harness';

const GiB = 2 ** 30;

async function refusedFields(promise: Promise<unknown>): Promise<string[]> {
  try {
    await promise;
  } catch (error) {
    assert.equal(status[(error as ServiceError).code], 'INVALID_ARGUMENT', (error as ServiceError).details);
    return errorDetails(error as ServiceError)
      .violations.map((v) => v.field)
      .sort();
  }
  throw new Error('the claim was accepted');
}

describe('scheduler: claims that can never run are refused at submit', () => {
  let running: RunningScheduler;
  let alice: Api;

  before(async () => {
    // The site's admin lowers the CPU ceiling; the rest stays at the defaults.
    const dir = mkdtempSync(join(tmpdir(), 'sched-bounds-'));
    writeFileSync(join(dir, 'scheduler.yaml'), 'claim_ceiling: { cpus: 256 }\n');
    running = await startTestScheduler(unique('bounds').toLowerCase(), { LAPIS_SCHEDULER_CONFIG_FILE: join(dir, 'scheduler.yaml') });
    alice = client(`127.0.0.1:${running.port}`, 'alice-token', 'physics');
  });
  after(async () => {
    alice.close();
    await running.shutdown.run('test over');
  });

  const claim = (spec: Record<string, unknown>) =>
    alice.submitClaim({ spec: { name: 'vm', image: 'lapis/base:1', resources: { cpuMillis: 1000, memoryBytes: GiB }, ...spec } });

  it('refuses more CPU, memory, disk or processes than any node could have', async () => {
    assert.deepEqual(await refusedFields(claim({ resources: { cpuMillis: 9e15, memoryBytes: GiB } })), ['spec.resources.cpu_millis']);
    assert.deepEqual(
      await refusedFields(claim({ resources: { cpuMillis: 1000, memoryBytes: 2 ** 53 - 1, diskBytes: 2 ** 52, pids: 2 ** 32 - 1 } })),
      ['spec.resources.disk_bytes', 'spec.resources.memory_bytes', 'spec.resources.pids'],
    );
  });

  it('follows the ceiling the site sets', async () => {
    assert.deepEqual(await refusedFields(claim({ resources: { cpuMillis: 257_000, memoryBytes: GiB } })), ['spec.resources.cpu_millis']);
    const { claim: queued } = await claim({ resources: { cpuMillis: 256_000, memoryBytes: GiB } });
    assert.equal(queued?.state, ClaimState.PENDING, 'as large as the ceiling: it waits for room');
  });

  it('refuses unknown device kinds and more devices than a node could have', async () => {
    assert.deepEqual(await refusedFields(claim({ devices: [{ kind: 99, count: 1, ids: [], cdiNames: [], vendor: '' }] })), [
      'spec.devices[0].kind',
    ]);
    assert.deepEqual(await refusedFields(claim({ devices: [{ kind: 2, count: 1000, ids: [], cdiNames: [], vendor: '' }] })), [
      'spec.devices[0].count',
    ]);
  });

  it('refuses an image name no registry would take', async () => {
    assert.deepEqual(await refusedFields(claim({ image: `lapis/${'i'.repeat(10_000)}:1` })), ['spec.image']);
  });
});
