import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import { type LapisError, parseFlavors } from '@lapis/platform';
import { DeviceKind, InstanceSpec, InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import { containerLabels, secretsOf, withSecrets } from '../../src/domain/container';
import { grantDevices, parseGpuList, type NodeInventory } from '../../src/domain/devices';
import { checkDirectCreate, checkTenantResize, checkTenantRestart } from '../../src/domain/door';
import { requireState } from '../../src/domain/states';
import { checkMountPath, checkResize, checkSpec } from '../../src/domain/validate';
import { baseSpec } from '../harness';

const flavors = parseFlavors(
  {
    flavors: [
      { name: 'm1.tiny', cpus: 0.5, memory: '256Mi', pids: 256 },
      { name: 'g1.small', cpus: 4, memory: '16Gi', gpus: 1 },
    ],
  },
  'test',
);
const inventory = (extra: Partial<NodeInventory> = {}): NodeInventory => ({
  gpus: [],
  infiniband: [],
  allowlist: [],
  gpuMode: 'device-request',
  infinibandMemlock: -1,
  ...extra,
});
const thrown = (fn: () => unknown): LapisError => {
  try {
    fn();
  } catch (error) {
    return error as LapisError;
  }
  throw new Error('did not throw');
};

describe('domain: validation', () => {
  it('accepts a good spec and works out its resources from the flavor', () => {
    const { resources } = checkSpec(baseSpec('vm-1') as never, flavors, undefined);
    assert.equal(resources.cpuMillis, 500);
    assert.equal(resources.memoryBytes, 256 * 2 ** 20);
    assert.equal(resources.pids, 256);
  });

  it('names every bad field at once', () => {
    const error = thrown(() =>
      checkSpec(
        baseSpec('Bad_Name', {
          flavor: 'nope',
          image: '',
          environment: { LAPIS_X: '1', '1bad': 'x' },
          sshPublicKeys: ['not a key'],
        }) as never,
        flavors,
        undefined,
      ),
    );
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.deepEqual(error.violations.map((v) => v.field).sort(), [
      'spec.environment[1bad]',
      'spec.environment[LAPIS_X]',
      'spec.flavor',
      'spec.image',
      'spec.name',
      'spec.ssh_public_keys[0]',
    ]);
  });

  it('takes mount paths one level under /mnt only', () => {
    assert.deepEqual(checkMountPath('/mnt/data', 'p'), []);
    for (const bad of ['/mnt', '/mnt/', '/etc/x', '/mnt/a/b', '/mnt/..', 'mnt/x']) assert.equal(checkMountPath(bad, 'p').length, 1, bad);
  });

  it('resizes by flavor or explicit resources, not across GPU counts', () => {
    const current = { cpuMillis: 500, memoryBytes: 2 ** 28, gpus: 0, pids: 256, diskBytes: 0 };
    assert.equal(checkResize('', { cpuMillis: 1500, memoryBytes: 0, gpus: 0, pids: 0, diskBytes: 0 }, flavors, current).cpuMillis, 1500);
    assert.equal(thrown(() => checkResize('g1.small', undefined, flavors, current)).code, status.INVALID_ARGUMENT);
  });

  it('refuses an action in the wrong state, naming the state', () => {
    const error = thrown(() => requireState('stop', 'i-1', InstanceState.CREATING, [InstanceState.RUNNING]));
    assert.equal(error.code, status.FAILED_PRECONDITION);
    assert.match(error.message, /it is CREATING; stop needs RUNNING/);
  });
});

describe("domain: the scheduler is the tenants' door", () => {
  const alice = { user: 'alice', project: 'physics', admin: false };
  const root = { user: 'root', project: 'physics', admin: true };
  const res = (cpuMillis: number, memoryBytes: number, pids: number) => ({ cpuMillis, memoryBytes, gpus: 0, pids, diskBytes: 0 });

  it('leaves direct creates to admins', () => {
    const error = thrown(() => checkDirectCreate(alice));
    assert.equal(error.code, status.PERMISSION_DENIED);
    assert.equal(error.reason, 'USE_SCHEDULER');
    assert.match(error.message, /SubmitClaim/);
    checkDirectCreate(root);
  });

  it("bounds a tenant's resize by the placed size, or by what an admin gave since", () => {
    const placed = res(500, 2 ** 28, 256);
    checkTenantResize(alice, 'i-1', res(250, 2 ** 27, 256), placed, placed);
    checkTenantResize(alice, 'i-1', res(500, 2 ** 28, 256), placed, res(250, 2 ** 27, 256));
    const over = thrown(() => checkTenantResize(alice, 'i-1', res(64_000, 100 * 2 ** 30, 4_000_000), placed, placed));
    assert.equal(over.code, status.PERMISSION_DENIED);
    assert.match(over.message, /cpu_millis 64000 > 500, memory_bytes 107374182400 > 268435456, pids 4000000 > 256/);
    // No pids limit is the runtime's default (4096): more than a placed 256.
    assert.match(thrown(() => checkTenantResize(alice, 'i-1', res(500, 2 ** 28, 0), placed, placed)).message, /pids 4096 > 256/);
    // An admin made it larger: the tenant may shrink other limits and keep what it has.
    checkTenantResize(alice, 'i-1', res(250, 2 ** 28, 1024), placed, res(1000, 2 ** 30, 1024));
    // A record without a placed size: its current size is the bound.
    assert.equal(thrown(() => checkTenantResize(alice, 'i-1', res(1000, 2 ** 28, 256), undefined, placed)).reason, 'USE_SCHEDULER');
    checkTenantResize(root, 'i-1', res(64_000, 100 * 2 ** 30, 4_000_000), placed, placed);
  });

  it('lets a tenant start a stopped instance but not a failed one (its claim ended)', () => {
    checkTenantRestart(alice, 'start', 'i-1', InstanceState.STOPPED);
    assert.match(
      thrown(() => checkTenantRestart(alice, 'reboot', 'i-1', InstanceState.ERROR)).message,
      /cannot reboot instance i-1: it failed, which ended its claim/,
    );
    checkTenantRestart(root, 'start', 'i-1', InstanceState.ERROR);
  });
});

describe('domain: devices', () => {
  const gpus = parseGpuList('nvidia:GPU-a:A100,nvidia:GPU-b:A100');
  const gpu = (count: number, ids: string[] = []) => [{ kind: DeviceKind.GPU, vendor: '', count, ids, cdiNames: [] }];

  it('grants GPUs by count, skipping taken ones, as device requests or CDI names', () => {
    const grant = grantDevices('i-1', gpu(1), inventory({ gpus }), new Set(['GPU-a']));
    assert.deepEqual(grant.gpuRequests, [{ driver: 'nvidia', ids: ['GPU-b'] }]);
    assert.equal(grant.devices[0]?.allocatedTo, 'i-1');
    const cdi = grantDevices('i-1', gpu(2), inventory({ gpus, gpuMode: 'cdi' }), new Set());
    assert.deepEqual(cdi.cdiNames, ['nvidia.com/gpu=GPU-a', 'nvidia.com/gpu=GPU-b']);
  });

  it('refuses what the node lacks with the right code', () => {
    assert.equal(thrown(() => grantDevices('i', gpu(1), inventory(), new Set())).code, status.FAILED_PRECONDITION);
    assert.equal(thrown(() => grantDevices('i', gpu(3), inventory({ gpus }), new Set())).code, status.FAILED_PRECONDITION);
    assert.equal(thrown(() => grantDevices('i', gpu(2), inventory({ gpus }), new Set(['GPU-a']))).code, status.RESOURCE_EXHAUSTED);
    assert.equal(thrown(() => grantDevices('i', gpu(0, ['GPU-z']), inventory({ gpus }), new Set())).code, status.INVALID_ARGUMENT);
    const generic = [{ kind: DeviceKind.GENERIC, vendor: '', count: 0, ids: ['/dev/kvm'], cdiNames: [] }];
    assert.equal(
      thrown(() => grantDevices('i', generic, inventory({ allowlist: ['/dev/fuse'] }), new Set())).code,
      status.PERMISSION_DENIED,
    );
  });

  // No GPU here: the node's inventory is simulated (LAPIS_GPUS), as in the integration tests.
  it('takes CDI names only for GPUs the node lists, counted like ids (in use, twice, no GPUs)', () => {
    const cdi = (...cdiNames: string[]) => [{ kind: DeviceKind.GPU, vendor: '', count: 0, ids: [], cdiNames }];
    for (const name of ['nvidia.com/gpu=all', 'nvidia.com/gpu=GPU-z', 'vendor.com/fpga=0']) {
      const error = thrown(() => grantDevices('i', cdi(name), inventory({ gpus, gpuMode: 'cdi' }), new Set()));
      assert.equal(error.code, status.INVALID_ARGUMENT, name);
      assert.deepEqual(
        error.violations.map((v) => v.field),
        ['devices[0].cdi_names[0]'],
      );
    }
    const granted = grantDevices('i-1', cdi('nvidia.com/gpu=GPU-b'), inventory({ gpus, gpuMode: 'cdi' }), new Set());
    assert.deepEqual(granted.cdiNames, ['nvidia.com/gpu=GPU-b']);
    assert.deepEqual(
      granted.devices.map((d) => [d.id, d.allocatedTo]),
      [['GPU-b', 'i-1']],
      'held under its id, so heartbeats and other instances see it taken',
    );
    // A node that gives GPUs by device request gives the named GPU that way.
    assert.deepEqual(grantDevices('i-1', cdi('nvidia.com/gpu=GPU-a'), inventory({ gpus }), new Set()).gpuRequests, [
      { driver: 'nvidia', ids: ['GPU-a'] },
    ]);
    assert.equal(
      thrown(() => grantDevices('i', cdi('nvidia.com/gpu=GPU-a'), inventory({ gpus, gpuMode: 'cdi' }), new Set(['GPU-a']))).code,
      status.RESOURCE_EXHAUSTED,
    );
    assert.equal(
      thrown(() => grantDevices('i', cdi('nvidia.com/gpu=GPU-a', 'nvidia.com/gpu=GPU-a'), inventory({ gpus, gpuMode: 'cdi' }), new Set()))
        .code,
      status.RESOURCE_EXHAUSTED,
    );
    assert.equal(thrown(() => grantDevices('i', cdi('nvidia.com/gpu=GPU-a'), inventory(), new Set())).code, status.FAILED_PRECONDITION);
  });
});

describe('domain: the container of an instance', () => {
  const instance = {
    id: 'i-1',
    project: 'Physics Lab',
    user: 'alice',
    spec: { ...baseSpec('vm-1'), labels: { team: 'a' } },
    imageDigest: 'sha256:abc',
    requestId: 'r-1',
    attempt: 2,
    preemptible: true,
  } as unknown as Instance;

  it('labels the container with everything needed to adopt it', () => {
    const labels = containerLabels(instance, 'node-1');
    assert.equal(labels['lapis.instance-id'], 'i-1');
    assert.equal(labels['lapis.project'], 'Physics Lab');
    assert.equal(labels['lapis.request-id'], 'r-1');
    assert.equal(labels['lapis.attempt'], '2');
    assert.equal(labels.team, 'a');
    assert.ok(labels['lapis.spec']);
  });

  it('keeps secrets out of the spec label; the secrets kept apart make it whole again', () => {
    const spec = InstanceSpec.fromPartial({
      ...baseSpec('vm-2'),
      environment: { TOKEN: 's3cret-env' },
      userData: Buffer.from('s3cret-ud'),
      sshPublicKeys: ['ssh-ed25519 s3cret-key'],
    });
    const labels = containerLabels({ ...instance, spec } as Instance, 'node-1');
    const fromLabel = InstanceSpec.decode(Buffer.from(labels['lapis.spec']!, 'base64'));
    assert.ok(!Object.values(labels).some((v) => `${v} ${Buffer.from(v, 'base64').toString('latin1')}`.includes('s3cret')));
    assert.deepEqual([fromLabel.environment, fromLabel.userData.length, fromLabel.sshPublicKeys], [{}, 0, []]);
    const kept = InstanceSpec.decode(InstanceSpec.encode(secretsOf(spec)).finish());
    assert.deepEqual(withSecrets(fromLabel, kept), InstanceSpec.decode(InstanceSpec.encode(spec).finish()));
  });
});
