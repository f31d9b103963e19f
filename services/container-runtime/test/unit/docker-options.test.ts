// The Docker backend's create options: what an instance's plan becomes in dockerode's terms.
import { strict as assert } from 'node:assert';
import type { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import { cgroupLimits, containerName, createOptions, projectNetworkName } from '../../src/adapters/docker-options';
import { podName } from '../../src/adapters/kubernetes-names';
import { emptyGrant } from '../../src/domain/devices';
import { instanceSecurity } from '../../src/domain/security';
import { baseSpec } from '../harness';

describe('docker options: the container of an instance', () => {
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

  it('names a later attempt’s container and pod apart from the first (a lost node’s copy may still exist)', () => {
    assert.equal(containerName('i-1'), 'lapis-i-1');
    assert.equal(containerName('i-1', 1), 'lapis-i-1');
    assert.equal(containerName('i-1', 2), 'lapis-i-1-2');
    assert.equal(podName('I_1'), 'lapis-i-1');
    assert.equal(podName('I_1', 3), 'lapis-i-1-3');
    const long = podName('x'.repeat(80), 12);
    assert.equal(long.length, 63);
    assert.ok(long.endsWith('x-12'), long);
  });

  it('sets cgroup limits by quota, so a limit above the host CPU count is valid', () => {
    assert.deepEqual(cgroupLimits({ cpuMillis: 8000, memoryBytes: 2 ** 30, gpus: 0, pids: 0, diskBytes: 0 }), {
      CpuPeriod: 100_000,
      CpuQuota: 800_000,
      Memory: 2 ** 30,
      MemorySwap: 2 ** 30,
    });
  });

  it('mounts /mnt rslave and /etc/lapis read-only, joins the project network by name', () => {
    const options = createOptions(
      {
        instance,
        resources: { cpuMillis: 500, memoryBytes: 2 ** 28, gpus: 0, pids: 0, diskBytes: 0 },
        image: 'sha256:img',
        grant: emptyGrant(),
        mountDir: '/s/mnt',
        metadataDir: '/s/etc',
        network: projectNetworkName('Physics Lab'),
        security: instanceSecurity(undefined, []),
        hostIp: '127.0.0.1',
      },
      'node-1',
    );
    assert.equal(options.HostConfig?.NetworkMode, 'lapis-project-physics-lab');
    assert.deepEqual(options.HostConfig?.Mounts?.[0], {
      Type: 'bind',
      Source: '/s/mnt',
      Target: '/mnt',
      BindOptions: { Propagation: 'rslave' },
    });
    assert.equal(options.HostConfig?.Mounts?.[1]?.ReadOnly, true);
    assert.equal(options.HostConfig?.PidsLimit, 4096, 'the site default when the flavor sets none');
    assert.equal(options.Hostname, 'vm-1');
  });
});
