// domain/validate.ts: ids, specs against the site's flavors and host-port range, resizes.
import { strict as assert } from 'node:assert';
import { status } from '@grpc/grpc-js';
import { parseFlavors } from '@lapis/platform';
import { InstanceSpec, PortProtocol } from '@lapis/proto/lapis/common/v1/common';
import { checkId, checkResize, checkSpec, defaultMountPath } from '../../src/domain/validate';
import { thrown } from './thrown';

const flavors = parseFlavors(
  {
    flavors: [
      { name: 'm1.tiny', cpus: 0.5, memory: '256Mi', pids: 256 },
      { name: 'g1.small', cpus: 4, memory: '16Gi', gpus: 1 },
    ],
  },
  'test',
);
const spec = (extra: Partial<InstanceSpec> = {}) =>
  InstanceSpec.fromPartial({ name: 'vm-1', image: 'busybox', flavor: 'm1.tiny', ...extra });
const fields = (fn: () => unknown) => thrown(fn).violations.map((v) => v.field);

describe('domain: checks of what callers send', () => {
  it('takes plain ids that are KV keys, container names and subject tokens', () => {
    assert.deepEqual(checkId('i-1_A', 'instance_id'), []);
    for (const bad of ['', 'a.b', 'a b', 'a/b', 'x'.repeat(65)])
      assert.deepEqual(
        checkId(bad, 'instance_id').map((v) => v.field),
        ['instance_id'],
        bad,
      );
  });

  it('works out resources from explicit cpu and memory where there is no flavor, and requires one or the other', () => {
    const explicit = { cpuMillis: 1500, memoryBytes: 2 ** 29, gpus: 0, pids: 64, diskBytes: 0 };
    assert.deepEqual(checkSpec(spec({ flavor: '', resources: explicit }), flavors, undefined), { flavor: undefined, resources: explicit });
    assert.deepEqual(
      fields(() => checkSpec(spec({ flavor: '', resources: { ...explicit, memoryBytes: 0 } }), flavors, undefined)),
      ['spec.flavor'],
    );
    assert.deepEqual(
      fields(() => checkSpec(undefined, flavors, undefined)),
      ['spec'],
    );
    assert.match(
      thrown(() => checkSpec(spec({ flavor: 'm9.huge' }), flavors, undefined)).violations[0]!.description,
      /this site has m1\.tiny, g1\.small/,
    );
  });

  it('publishes host ports only from the node range', () => {
    const ports = [{ containerPort: 80, hostPort: 0, protocol: PortProtocol.TCP }];
    assert.deepEqual(
      fields(() => checkSpec(spec({ ports }), flavors, undefined)),
      ['spec.ports[0].host_port'],
    );
    checkSpec(spec({ ports }), flavors, { min: 30000, max: 30010 });
    assert.deepEqual(
      fields(() => checkSpec(spec({ ports: [{ ...ports[0]!, hostPort: 29999 }] }), flavors, { min: 30000, max: 30010 })),
      ['spec.ports[0].host_port'],
    );
  });

  it('resizes to a flavor of the same GPU count, or to explicit cpu and memory of at least a minimum', () => {
    const current = { cpuMillis: 500, memoryBytes: 2 ** 28, gpus: 0, pids: 256, diskBytes: 7 };
    assert.deepEqual(checkResize('m1.tiny', undefined, flavors, { ...current, cpuMillis: 100 }), { ...current, cpuMillis: 500 });
    assert.deepEqual(checkResize('', { cpuMillis: 0, memoryBytes: 2 ** 30, gpus: 0, pids: 0, diskBytes: 0 }, flavors, current), {
      ...current,
      memoryBytes: 2 ** 30,
    });
    assert.deepEqual(
      fields(() => checkResize('', { cpuMillis: 5, memoryBytes: 2 ** 20, gpus: 0, pids: 0, diskBytes: 0 }, flavors, current)),
      ['resources.memory_bytes', 'resources.cpu_millis'],
    );
    assert.equal(thrown(() => checkResize('', undefined, flavors, current)).code, status.INVALID_ARGUMENT);
    assert.match(
      thrown(() => checkResize('g1.small', undefined, flavors, current)).violations[0]!.description,
      /devices cannot change while it runs/,
    );
  });

  it('mounts a volume at /mnt/<id> where no path is asked for', () => {
    assert.equal(defaultMountPath('vol-1'), '/mnt/vol-1');
  });
});
