// What an instance may do on its node, checked on real Docker: the created container's
// HostConfig, and inside running instances (raw sockets, mknod, no-new-privileges, httpd on
// port 80, a read-only root with a volume attached while it runs), and host ports only from
// the admin's range, bound to the admin's address.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { errorDetails } from '@lapis/platform';
import { PortProtocol } from '@lapis/proto/lapis/common/v1/common';
import type { Instance, Volume } from '@lapis/proto/lapis/runtime/v1/runtime';
import { adminOf, baseSpec, dockerClient, exec, expectCode, rpc, startRuntime, type Client, type Runtime } from '../harness';

const create = async (client: Client, name: string, extra: Record<string, unknown> = {}) =>
  (
    (await rpc(adminOf(client), adminOf(client).createInstance, {
      instanceId: '',
      spec: baseSpec(name, extra),
      preemptible: false,
      requestId: '',
    })) as { instance: Instance }
  ).instance;
const inspect = (vm: Instance) => dockerClient().getContainer(vm.backendId).inspect();
/** The effective capability set of the instance's first process, as a number. */
const effective = async (vm: Instance) =>
  BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec((await exec(vm.backendId, ['cat', '/proc/1/status'])).out)![1]}`);
const CAP = { CHOWN: 0n, NET_BIND_SERVICE: 10n, NET_RAW: 13n, SYS_CHROOT: 18n, MKNOD: 27n, AUDIT_WRITE: 29n, SETFCAP: 31n };
const has = (set: bigint, cap: bigint) => ((set >> cap) & 1n) === 1n;

/** An HTTP GET over TCP from the host; resolves with the body, or rejects when nothing answers. */
const httpGet = (host: string, port: number) =>
  new Promise<string>((resolve, reject) => {
    const socket = connect({ host, port }, () => socket.end('GET / HTTP/1.0\r\n\r\n'));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      resolve(text.slice(text.indexOf('\r\n\r\n') + 4));
    });
    socket.on('error', reject);
  });

const retry = async <T>(work: () => Promise<T>, ok: (value: T) => boolean): Promise<T> => {
  let last = await work().catch((e: Error) => e as never);
  for (let i = 0; i < 30 && !ok(last); i++) {
    await new Promise((r) => setTimeout(r, 100));
    last = await work().catch((e: Error) => e as never);
  }
  return last;
};

describe('what an instance may do (real Docker)', function () {
  let rt: Runtime;
  let dir: string;
  before(async () => {
    // The site's flavors: one like the repository's, one an admin gave NET_RAW, one read-only.
    dir = mkdtempSync(join(tmpdir(), 'lapis-sec-'));
    const flavors = join(dir, 'flavors.yaml');
    writeFileSync(
      flavors,
      [
        'flavors:',
        '  - { name: m1.tiny, cpus: 0.5, memory: 256Mi, pids: 256 }',
        '  - { name: net.tools, cpus: 0.5, memory: 256Mi, capabilities: [NET_RAW] }',
        '  - { name: ro.tiny, cpus: 0.5, memory: 256Mi, read_only_root: true }',
      ].join('\n'),
    );
    rt = await startRuntime({ env: { LAPIS_FLAVORS_FILE: flavors } });
  });
  after(async () => {
    await rt?.stop({ purge: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('drops every capability but the default set, sets no-new-privileges, and still serves httpd on port 80', async () => {
    const alice = rt.client('alice', 'physics');
    const web = await create(alice, 'web80', {
      command: ['sh', '-c', 'mkdir -p /www && echo on-80 > /www/index.html && exec httpd -f -p 80 -h /www'],
    });
    const peer = await create(alice, 'peer80');
    const info = await inspect(web);
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    assert.deepEqual([...(info.HostConfig.CapAdd ?? [])].sort(), [
      'CHOWN',
      'DAC_OVERRIDE',
      'FOWNER',
      'FSETID',
      'KILL',
      'NET_BIND_SERVICE',
      'SETGID',
      'SETUID',
      'SYS_CHROOT',
    ]);
    assert.deepEqual(info.HostConfig.SecurityOpt, ['no-new-privileges']);
    assert.equal(info.HostConfig.Privileged, false);
    assert.equal(info.HostConfig.ReadonlyRootfs, false, 'a writable root unless the flavor says otherwise');

    // Inside: the kernel's view of the running instance.
    const status1 = (await exec(peer.backendId, ['cat', '/proc/1/status'])).out;
    assert.match(status1, /NoNewPrivs:\s+1/);
    const caps = await effective(peer);
    assert.ok(has(caps, CAP.CHOWN) && has(caps, CAP.NET_BIND_SERVICE) && has(caps, CAP.SYS_CHROOT));
    for (const dropped of [CAP.NET_RAW, CAP.MKNOD, CAP.AUDIT_WRITE, CAP.SETFCAP])
      assert.ok(!has(caps, dropped), `capability ${dropped} dropped`);
    const arping = await exec(peer.backendId, ['sh', '-c', `arping -c 1 -w 1 -I eth0 ${web.addresses[0]!.ip} 2>&1`]);
    assert.notEqual(arping.code, 0);
    assert.match(arping.out, /Operation not permitted/, 'no packet sockets without NET_RAW');
    const ping = await exec(peer.backendId, ['sh', '-c', `ping -c 1 -W 1 ${web.addresses[0]!.ip} 2>&1`]);
    assert.match(ping.out, /permission denied/, 'no raw ICMP socket without NET_RAW');
    const mknod = await exec(peer.backendId, ['sh', '-c', 'mknod /tmp/null2 c 1 3 2>&1']);
    assert.notEqual(mknod.code, 0);
    assert.match(mknod.out, /Operation not permitted/);

    // A web server on port 80, reached from another instance of the project.
    const page = await retry(
      () => exec(peer.backendId, ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${web.addresses[0]!.ip} 80`]),
      (r) => typeof r === 'object' && r.out.includes('200 OK'),
    );
    assert.match(page.out, /on-80/);
  });

  it('gives an admin flavor its extra capability (NET_RAW) and nothing else beyond the default', async () => {
    const alice = rt.client('alice', 'physics');
    const vm = await create(alice, 'netdiag', { flavor: 'net.tools' });
    const info = await inspect(vm);
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    assert.ok(info.HostConfig.CapAdd?.includes('NET_RAW'));
    assert.ok(!info.HostConfig.CapAdd?.includes('MKNOD'));
    assert.deepEqual(info.HostConfig.SecurityOpt, ['no-new-privileges']);
    const caps = await effective(vm);
    assert.ok(has(caps, CAP.NET_RAW));
    assert.ok(!has(caps, CAP.MKNOD));
    const arping = await exec(vm.backendId, ['sh', '-c', `arping -c 1 -w 1 -I eth0 ${vm.addresses[0]!.ip.replace(/\.\d+$/, '.1')} 2>&1`]);
    assert.doesNotMatch(arping.out, /Operation not permitted/);
    assert.match(arping.out, /Sent 1 probe/);
  });

  it('runs a read-only-root flavor: / refuses writes, /tmp takes them, and a volume attached while it runs is writable', async () => {
    const alice = rt.client('alice', 'physics');
    const vm = await create(alice, 'readonly', { flavor: 'ro.tiny' });
    assert.equal((await inspect(vm)).HostConfig.ReadonlyRootfs, true);
    const root = await exec(vm.backendId, ['sh', '-c', 'echo x > /etc/probe 2>&1']);
    assert.notEqual(root.code, 0);
    assert.match(root.out, /Read-only file system/);
    assert.equal((await exec(vm.backendId, ['sh', '-c', 'echo x > /tmp/probe && echo x > /run/probe'])).code, 0);
    const vol = (
      (await rpc(alice, alice.createVolume, {
        name: 'ro-data',
        sizeBytes: 32 * 2 ** 20,
        filesystem: '',
        node: '',
        labels: {},
        requestId: '',
      })) as { volume: Volume }
    ).volume;
    await rpc(alice, alice.attachVolume, { volumeId: vol.id, instanceId: vm.id, mountPath: '/mnt/data', readOnly: false, requestId: '' });
    assert.equal((await exec(vm.backendId, ['sh', '-c', 'echo kept > /mnt/data/file && cat /mnt/data/file'])).out, 'kept\n');
    await rpc(alice, alice.detachVolume, { volumeId: vol.id, requestId: '' });
  });
});

describe('host ports: only from the admin range, on the admin address (real Docker)', function () {
  let open: Runtime;
  let closed: Runtime;
  // A range unlikely to be in use on this shared machine.
  const MIN = 38_611;
  const MAX = 38_612;
  before(async () => {
    open = await startRuntime({ env: { LAPIS_HOST_PORTS: `${MIN}-${MAX}`, LAPIS_HOST_PORT_ADDRESS: '127.0.0.1' } });
    closed = await startRuntime({ consume: false });
  });
  after(async () => {
    await open?.stop({ purge: true });
    await closed?.stop({ purge: true });
  });
  const port = (containerPort: number, hostPort: number) => ({ containerPort, hostPort, protocol: PortProtocol.TCP });
  const httpd = (page: string) => ['sh', '-c', `mkdir -p /www && echo ${page} > /www/index.html && exec httpd -f -p 8080 -h /www`];

  it('publishes no host port where the admin set no range', async () => {
    const alice = closed.client('alice', 'physics');
    for (const hostPort of [8080, 0]) {
      const e = await expectCode(
        create(alice, `p${hostPort}`, { ports: [port(8080, hostPort)] }),
        status.INVALID_ARGUMENT,
        /spec\.ports\[0\]\.host_port.*publishes no host ports/,
      );
      assert.deepEqual(
        errorDetails(e).violations.map((v) => v.field),
        ['spec.ports[0].host_port'],
      );
    }
  });

  it('refuses ports outside the range, binds inside it to the admin address, and never gives one port twice', async () => {
    const alice = open.client('alice', 'physics');
    for (const hostPort of [80, 2222, MAX + 1]) {
      await expectCode(
        create(alice, `out-${hostPort}`, { ports: [port(8080, hostPort)] }),
        status.INVALID_ARGUMENT,
        new RegExp(`spec\\.ports\\[0\\]\\.host_port.*${hostPort} is outside this site's range ${MIN}-${MAX}`),
      );
    }
    const web = await create(alice, 'pub', { command: httpd('published'), ports: [port(8080, MAX)] });
    const info = await inspect(web);
    assert.deepEqual(info.HostConfig.PortBindings, { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: String(MAX) }] });
    assert.equal(
      await retry(
        () => httpGet('127.0.0.1', MAX),
        (body) => body === 'published\n',
      ),
      'published\n',
    );

    // The same host port again on this node: refused, naming the field.
    const again = await expectCode(
      create(alice, 'pub-2', { ports: [port(8080, MAX)] }),
      status.RESOURCE_EXHAUSTED,
      /spec\.ports\[0\]\.host_port: host port \d+\/tcp is held by another instance/,
    );
    assert.equal(errorDetails(again).errorInfo?.reason, 'HOST_PORT_IN_USE');

    // 0: the node picks the free one of the range (not Docker's ephemeral ports), recorded in the spec.
    const picked = await create(alice, 'pick', { command: httpd('picked'), ports: [port(8080, 0)] });
    assert.equal(picked.spec?.ports[0]?.hostPort, MIN);
    assert.deepEqual((await inspect(picked)).HostConfig.PortBindings, { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: String(MIN) }] });
    assert.equal(
      await retry(
        () => httpGet('127.0.0.1', MIN),
        (body) => body === 'picked\n',
      ),
      'picked\n',
    );
    const full = await expectCode(
      create(alice, 'pick-2', { ports: [port(8080, 0)] }),
      status.RESOURCE_EXHAUSTED,
      /every host port of this node's range/,
    );
    assert.equal(errorDetails(full).errorInfo?.reason, 'HOST_PORTS_EXHAUSTED');

    // Once an instance is gone its port is free again.
    await rpc(alice, alice.deleteInstance, { instanceId: web.id, timeout: undefined, requestId: '' });
    const next = await create(alice, 'pub-3', { ports: [port(8080, MAX)] });
    assert.equal(next.spec?.ports[0]?.hostPort, MAX);
  });
});
