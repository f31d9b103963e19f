// domain/observed.ts: what the engine's view of a workload makes of an instance record.
import { strict as assert } from 'node:assert';
import { Backend, InstanceSpec, InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { Instance, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { containerLabels, LABEL, secretsOf } from '../../src/domain/container';
import { adoptFromLabels, applyExit, applyObserved, claimState, type Observed } from '../../src/domain/observed';

const at = new Date('2026-12-07T12:00:00Z');
const observed = (extra: Partial<Observed> = {}): Observed => ({
  backendId: 'c-1',
  instanceId: 'i-1',
  labels: {},
  running: false,
  status: 'exited',
  exitCode: 0,
  oomKilled: false,
  error: '',
  addresses: [],
  ...extra,
});
const record = () =>
  Instance.fromPartial({
    id: 'i-1',
    state: InstanceState.RUNNING,
    backendId: 'c-1',
    addresses: [{ network: 'n', ip: '10.0.0.2' }],
  } as never);

describe('domain: an observed workload as the instance state', () => {
  it('records a running workload RUNNING with its addresses and start time', () => {
    const i = record();
    const startedAt = new Date('2026-12-07T11:59:00Z');
    applyObserved(i, observed({ running: true, addresses: [{ network: 'p', ip: '10.0.0.9' }] as never, startedAt }), 'started', false, at);
    assert.deepEqual([i.state, i.stateReason, i.startTime, i.addresses.length], [InstanceState.RUNNING, 'started', startedAt, 1]);
    applyObserved(i, observed({ running: true }), 'rebooted', false, at);
    assert.equal(i.startTime, at, 'no start time from the engine: now');
  });

  it('records a paused workload SUSPENDED, keeping its addresses, and RUNNING once it runs on', () => {
    const i = record();
    applyObserved(i, observed({ running: true, status: 'paused', addresses: [{ network: 'p', ip: '10.0.0.9' }] as never }), 'x', false, at);
    assert.deepEqual([i.state, i.stateReason, i.addresses[0]?.ip], [InstanceState.SUSPENDED, 'suspended', '10.0.0.9']);
    applyObserved(i, observed({ running: true, status: 'running' }), 'resumed', false, at);
    assert.deepEqual([i.state, i.stateReason], [InstanceState.RUNNING, 'resumed']);
  });

  it('tells an OOM kill, a crash, an engine error and a clean stop apart', () => {
    const cases: Array<[Partial<Observed>, boolean, InstanceState, string]> = [
      [{ oomKilled: true, exitCode: 137 }, false, InstanceState.ERROR, 'OOMKilled'],
      [{ exitCode: 137 }, true, InstanceState.ERROR, 'OOMKilled'],
      [{ exitCode: 3 }, false, InstanceState.ERROR, 'exited with code 3'],
      [{ error: 'no such file: /bin/sh' }, false, InstanceState.ERROR, 'no such file: /bin/sh'],
      [{ exitCode: 0 }, false, InstanceState.STOPPED, 'stopped'],
    ];
    for (const [seen, oom, state, reason] of cases) {
      const i = record();
      applyObserved(i, observed(seen), 'stopped', oom, at);
      assert.deepEqual(
        [InstanceState[i.state], i.stateReason, i.exitCode],
        [InstanceState[state], reason, seen.exitCode ?? 0],
        JSON.stringify(seen),
      );
      assert.equal(i.backendId, 'c-1', 'the workload is still there');
    }
  });

  it('marks an instance without a workload ERROR "container vanished" and forgets the workload', () => {
    const i = record();
    applyObserved(i, undefined, 'started', false, at);
    assert.deepEqual([i.state, i.stateReason, i.backendId, i.addresses], [InstanceState.ERROR, 'container vanished', '', []]);
  });

  it('reads an exit from the engine events: OOM and non-zero codes are crashes, 0 a shutdown', () => {
    const exit = (code: number, oom: boolean) => {
      const i = record();
      applyExit(i, code, oom);
      return [InstanceState[i.state], i.stateReason, i.exitCode];
    };
    assert.deepEqual(exit(137, true), ['ERROR', 'OOMKilled', 137]);
    assert.deepEqual(exit(0, true), ['ERROR', 'OOMKilled', 0]);
    assert.deepEqual(exit(1, false), ['ERROR', 'exited with code 1', 1]);
    assert.deepEqual(exit(0, false), ['STOPPED', 'exited with code 0', 0]);
  });
});

describe('domain: adopting a workload from its labels', () => {
  const spec = InstanceSpec.fromPartial({
    name: 'vm-1',
    flavor: 'm1.tiny',
    image: 'busybox',
    environment: { TOKEN: 'secret' },
    sshPublicKeys: ['ssh-ed25519 AAA k'],
  });
  const original = Instance.fromPartial({
    id: 'i-7',
    project: 'physics',
    user: 'alice',
    spec,
    imageDigest: 'sha256:abc',
    requestId: 'r-7',
    attempt: 3,
    preemptible: true,
  });
  const labels = containerLabels(original, 'node-1');

  it('rebuilds the record from the labels and the kept secrets, in the state the engine shows', () => {
    const kept = InstanceSpec.encode(secretsOf(spec)).finish();
    const adopted = adoptFromLabels(observed({ backendId: 'c-7', labels, running: true }), 'node-1', Backend.DOCKER, kept, at)!;
    assert.deepEqual(
      [
        adopted.id,
        adopted.project,
        adopted.user,
        adopted.imageDigest,
        adopted.requestId,
        adopted.attempt,
        adopted.preemptible,
        adopted.backendId,
        adopted.node,
      ],
      ['i-7', 'physics', 'alice', 'sha256:abc', 'r-7', 3, true, 'c-7', 'node-1'],
    );
    assert.deepEqual(
      [adopted.spec?.name, adopted.spec?.environment, adopted.spec?.sshPublicKeys],
      ['vm-1', { TOKEN: 'secret' }, ['ssh-ed25519 AAA k']],
    );
    assert.deepEqual([adopted.state, adopted.stateReason], [InstanceState.RUNNING, 'adopted from its container labels']);
    assert.equal(adopted.placedResources, undefined, 'not in the labels: a tenant resizes within what it has');
  });

  it('adopts without secrets where none were kept, and a stopped workload as STOPPED', () => {
    const adopted = adoptFromLabels(observed({ labels }), 'node-1', Backend.KUBERNETES, undefined, at)!;
    assert.deepEqual(adopted.spec?.environment, {});
    assert.deepEqual([adopted.state, adopted.backend], [InstanceState.STOPPED, Backend.KUBERNETES]);
  });

  it('refuses labels that are not a Lapis instance, or a spec label that does not decode', () => {
    assert.equal(adoptFromLabels(observed({ labels: {} }), 'node-1', Backend.DOCKER, undefined), undefined);
    const { [LABEL.project]: _, ...withoutProject } = labels;
    assert.equal(adoptFromLabels(observed({ labels: withoutProject }), 'node-1', Backend.DOCKER, undefined), undefined);
    assert.equal(
      adoptFromLabels(
        observed({ labels: { ...labels, [LABEL.spec]: Buffer.from([0xff, 0xff, 0xff]).toString('base64') } }),
        'node-1',
        Backend.DOCKER,
        undefined,
      ),
      undefined,
    );
  });
});

describe("domain: a claim's phase as a volume's state", () => {
  it('Bound is AVAILABLE, Pending CREATING with the reason, Lost and Missing ERROR', () => {
    assert.deepEqual(claimState({ phase: 'Bound', message: 'ignored' }), { state: VolumeState.AVAILABLE, stateReason: '' });
    assert.deepEqual(claimState({ phase: 'Pending', message: 'waiting for first consumer' }), {
      state: VolumeState.CREATING,
      stateReason: 'waiting for first consumer',
    });
    assert.deepEqual(claimState({ phase: 'Lost', message: 'its volume is gone' }), {
      state: VolumeState.ERROR,
      stateReason: 'its volume is gone',
    });
    assert.deepEqual(claimState({ phase: 'Missing', message: 'no claim' }), { state: VolumeState.ERROR, stateReason: 'no claim' });
  });
});
