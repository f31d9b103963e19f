import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { errorDetails } from '@lapis/platform';
import { DeviceKind } from '@lapis/proto/lapis/common/v1/common';
import type { Instance, Node } from '@lapis/proto/lapis/runtime/v1/runtime';
import { createOptions } from '../../src/adapters/docker-options';
import { grantDevices } from '../../src/domain/devices';
import { instanceSecurity } from '../../src/domain/security';
import { adminOf, baseSpec, dockerClient, exec, expectCode, leftovers, rpc, startRuntime, type Client, type Runtime } from '../harness';

const create = async (client: Client, name: string, extra: Record<string, unknown> = {}) =>
  (
    (await rpc(adminOf(client), adminOf(client).createInstance, {
      instanceId: '',
      spec: baseSpec(name, extra),
      preemptible: false,
      requestId: '',
    })) as { instance: Instance }
  ).instance;

describe('one network per project (real Docker bridges)', function () {
  let rt: Runtime;
  before(async () => (rt = await startRuntime()));
  after(async () => rt?.stop({ purge: true }));

  it('lets instances of one project reach each other by address and name; two projects cannot', async () => {
    const physics = rt.client('alice', 'physics');
    const chemistry = rt.client('alice', 'chemistry');
    const server = await create(physics, 'web', {
      command: ['sh', '-c', 'mkdir -p /www && echo physics-page > /www/index.html && exec httpd -f -p 8080 -h /www'],
    });
    const peer = await create(physics, 'peer');
    const stranger = await create(chemistry, 'stranger');
    const ip = server.addresses[0]!.ip;
    assert.notEqual(server.addresses[0]!.network, stranger.addresses[0]!.network, 'different networks');
    // An HTTP GET with busybox nc (busybox-static's wget crashes in this image).
    const fetch = async (from: Instance, host: string) => {
      const r = await exec(from.backendId, ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${host} 8080`]);
      return { code: r.out.includes('200 OK') ? 0 : 1, out: r.out.slice(r.out.indexOf('\r\n\r\n') + 4) };
    };
    let ok = { code: 1, out: '' };
    for (let i = 0; i < 20 && ok.code !== 0; i++) {
      ok = await fetch(peer, ip);
      if (ok.code !== 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(ok.out, 'physics-page\n');
    assert.equal((await fetch(peer, 'web')).out, 'physics-page\n', 'by name, on the project network');
    const blocked = await fetch(stranger, ip);
    assert.notEqual(blocked.code, 0, 'another project cannot reach it');
    const nc = await exec(stranger.backendId, ['sh', '-c', `nc -w 2 ${ip} 8080 </dev/null && echo open || echo closed`]);
    assert.match(nc.out, /closed/);
  });
});

describe('devices (a real device node; GPUs simulated: this machine has none)', function () {
  let rt: Runtime;
  let gpuNode: Runtime;
  let devDir: string;
  before(async () => {
    devDir = mkdtempSync(join(tmpdir(), 'lapis-dev-'));
    // Real character devices, made with mknod: the same major/minor as /dev/null (1:3) and /dev/zero (1:5).
    execFileSync('mknod', [join(devDir, 'lapis-test0'), 'c', '1', '3']);
    mkdirSync(join(devDir, 'infiniband'));
    execFileSync('mknod', [join(devDir, 'infiniband', 'uverbs0'), 'c', '1', '5']);
    // This sandbox has no CAP_SYS_RESOURCE, so the engine cannot raise memlock above the host's
    // hard limit (runc: "error setting rlimit type 8"): the running instance gets that limit,
    // and the default ("unlimited", -1) is checked in the create options below.
    const hardMemlock = /Max locked memory\s+\S+\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 'unlimited';
    rt = await startRuntime({
      env: {
        LAPIS_DEVICE_ALLOWLIST: `${join(devDir, 'lapis-test0')},/dev/fuse`,
        LAPIS_INFINIBAND_DIR: join(devDir, 'infiniband'),
        LAPIS_INFINIBAND_MEMLOCK: hardMemlock,
      },
    });
    // This node advertises a GPU that is not there (no GPU on this machine): only what is
    // asked of the engine can be checked, not a GPU working inside.
    gpuNode = await startRuntime({ env: { LAPIS_GPUS: 'nvidia:GPU-0f1e2d3c:Simulated-A100' } });
  });
  after(async () => {
    await rt?.stop({ purge: true });
    await gpuNode?.stop({ purge: true });
    rmSync(devDir, { recursive: true, force: true });
  });

  it('passes an allow-listed host device through: visible and usable inside', async () => {
    const alice = rt.client('alice', 'physics');
    const path = join(devDir, 'lapis-test0');
    const vm = await create(alice, 'dev-user', {
      devices: [{ kind: DeviceKind.GENERIC, vendor: '', count: 0, ids: [path], cdiNames: [] }],
    });
    const ls = (await exec(vm.backendId, ['ls', '-l', path])).out;
    assert.match(ls, /^c/, 'a character device inside');
    assert.equal((await exec(vm.backendId, ['sh', '-c', `echo hello > ${path}`])).code, 0, 'writable (it is a null device)');
    assert.deepEqual(
      vm.devices.map((d) => d.path),
      [path],
    );
    const denied = await expectCode(
      create(alice, 'dev-thief', { devices: [{ kind: DeviceKind.GENERIC, vendor: '', count: 0, ids: ['/dev/sda'], cdiNames: [] }] }),
      status.PERMISSION_DENIED,
      /device \/dev\/sda is not in this node's allow-list/,
    );
    assert.equal(errorDetails(denied).errorInfo?.reason, 'DEVICE_NOT_ALLOWED');
  });

  it('maps InfiniBand devices with IPC_LOCK and unlimited memlock (hpc.ib flavor)', async () => {
    const alice = rt.client('alice', 'physics');
    const vm = await create(alice, 'mpi-0', { flavor: 'hpc.ib' });
    const info = await dockerClient().getContainer(vm.backendId).inspect();
    assert.ok(info.HostConfig.CapAdd?.includes('IPC_LOCK'), 'IPC_LOCK beside the default set');
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    const memlock = rt.agent.settings.inventory.infinibandMemlock;
    assert.deepEqual(info.HostConfig.Ulimits, [{ Name: 'memlock', Soft: memlock, Hard: memlock }]);
    assert.match((await exec(vm.backendId, ['ls', '-l', join(devDir, 'infiniband', 'uverbs0')])).out, /^c/);
    assert.equal((await exec(vm.backendId, ['sh', '-c', 'ulimit -l'])).out.trim(), memlock === -1 ? 'unlimited' : String(memlock / 1024));
    // The default of a node is unlimited memlock.
    const grant = grantDevices(
      'ib-probe',
      [{ kind: DeviceKind.INFINIBAND, vendor: '', count: 0, ids: [], cdiNames: [] }],
      { ...rt.agent.settings.inventory, infinibandMemlock: -1 },
      new Set(),
    );
    const options = createOptions(
      {
        instance: { ...baseInstance('ib-probe'), spec: baseSpec('ib-probe') } as Instance,
        resources: { cpuMillis: 1000, memoryBytes: 2 ** 30, gpus: 0, pids: 0, diskBytes: 0 },
        image: 'x',
        grant,
        mountDir: devDir,
        metadataDir: devDir,
        network: 'bridge',
        security: instanceSecurity(undefined, grant.capAdd),
        hostIp: '127.0.0.1',
      },
      rt.node,
    );
    assert.deepEqual(options.HostConfig?.Ulimits, [{ Name: 'memlock', Soft: -1, Hard: -1 }]);
    assert.ok(options.HostConfig?.CapAdd?.includes('IPC_LOCK'));
    assert.deepEqual(options.HostConfig?.Devices, [
      {
        PathOnHost: join(devDir, 'infiniband', 'uverbs0'),
        PathInContainer: join(devDir, 'infiniband', 'uverbs0'),
        CgroupPermissions: 'rwm',
      },
    ]);
    // A node without InfiniBand refuses it.
    await expectCode(
      create(gpuNode.client('alice', 'physics'), 'mpi-1', { flavor: 'hpc.ib' }),
      status.FAILED_PRECONDITION,
      /this node has no InfiniBand devices/,
    );
  });

  it('asks the engine for the GPU of a GPU flavor (device request in the container inspect), and refuses GPUs on a node without', async () => {
    const before = await leftovers(rt.node, rt.stateDir);
    const noGpu = await expectCode(
      create(rt.client('alice', 'physics'), 'gpu-0', { flavor: 'g1.small' }),
      status.FAILED_PRECONDITION,
      /a GPU was asked for, but this node has no GPUs/,
    );
    assert.equal(errorDetails(noGpu).errorInfo?.reason, 'NO_GPU_ON_NODE');
    assert.deepEqual(await leftovers(rt.node, rt.stateDir), before);

    // The simulated GPU node: the engine here has no NVIDIA runtime, so the container is
    // created (that is where the device request is recorded) and starting it fails. The
    // request is read from the inspect data of a container made through the backend.
    const alice = gpuNode.client('alice', 'physics');
    const failed = await expectCode(create(alice, 'gpu-1', { flavor: 'g1.small' }), status.FAILED_PRECONDITION, /nvidia/);
    assert.ok(failed);
    assert.deepEqual((await leftovers(gpuNode.node, gpuNode.stateDir)).containers, [], 'nothing left after the failed start');
    const node = ((await rpc(alice, alice.getNode, { name: '' })) as { node: Node }).node;
    assert.equal(node.capacity?.gpus, 1);
    assert.equal(node.devices.find((d) => d.kind === DeviceKind.GPU)?.id, 'GPU-0f1e2d3c');
    assert.equal(node.devices.find((d) => d.kind === DeviceKind.GPU)?.allocatedTo, '', 'freed after the failure');

    // CDI names: only the node's own GPUs, given the node's way (here device requests, so the
    // engine's nvidia error again); anything else never reaches the engine.
    const cdi = (name: string) => ({ devices: [{ kind: DeviceKind.GPU, vendor: '', count: 0, ids: [], cdiNames: [name] }] });
    const all = await expectCode(
      create(alice, 'gpu-all', cdi('nvidia.com/gpu=all')),
      status.INVALID_ARGUMENT,
      /this node lists no GPU "nvidia.com\/gpu=all"/,
    );
    assert.deepEqual(
      errorDetails(all).violations.map((v) => v.field),
      ['devices[0].cdi_names[0]'],
    );
    await expectCode(create(alice, 'gpu-cdi', cdi('nvidia.com/gpu=GPU-0f1e2d3c')), status.FAILED_PRECONDITION, /nvidia/);
    assert.deepEqual((await leftovers(gpuNode.node, gpuNode.stateDir)).containers, []);

    const grant = grantDevices(
      'gpu-probe',
      [{ kind: DeviceKind.GPU, vendor: '', count: 1, ids: [], cdiNames: [] }],
      gpuNode.agent.settings.inventory,
      new Set(),
    );
    const instance = { ...baseInstance('gpu-probe'), spec: baseSpec('gpu-probe', { flavor: 'g1.small' }) } as Instance;
    const options = createOptions(
      {
        instance,
        resources: { cpuMillis: 4000, memoryBytes: 2 ** 30, gpus: 1, pids: 0, diskBytes: 0 },
        image: 'lapis/busybox:testenv',
        grant,
        mountDir: devDir,
        metadataDir: devDir,
        network: 'bridge',
        security: instanceSecurity(undefined, grant.capAdd),
        hostIp: '127.0.0.1',
      },
      gpuNode.node,
    );
    options.HostConfig!.Mounts = [];
    const container = await dockerClient().createContainer(options);
    try {
      const info = await container.inspect();
      assert.deepEqual(info.HostConfig.DeviceRequests, [
        { Driver: 'nvidia', Count: 0, DeviceIDs: ['GPU-0f1e2d3c'], Capabilities: [['gpu']], Options: {} },
      ]);
    } finally {
      await container.remove({ force: true });
    }
  });
});

function baseInstance(id: string): Partial<Instance> {
  return {
    id,
    project: 'physics',
    user: 'alice',
    imageDigest: '',
    requestId: '',
    attempt: 0,
    preemptible: false,
    devices: [],
    volumeAttachments: [],
    addresses: [],
  };
}
