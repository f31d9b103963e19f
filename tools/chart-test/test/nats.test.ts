// The chart's NATS users, TLS and NetworkPolicies as `helm template` renders them, and the
// bundled server's rendered config run by a real nats-server (Debian's) with the rendered
// passwords. Needs helm and nats-server only, no control plane.
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { ClaimPlaced } from '@lapis/proto/lapis/events/v1/events';
import { EventBus } from '@lapis/platform';
import { testLog } from '@lapis/platform/testing';
import { freePort, makeTlsFiles, run, startNats, waitFor, type NatsServer } from '@lapis/testenv';
import { parseAllDocuments } from 'yaml';
import { chartNatsAuthorization, helmTemplate, NATS_AUTHORIZATION, passwordVariable } from '../src/render.js';

interface Obj {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  // The few fields the tests read; each is checked by an assertion.
  spec?: any;
}

const USERS = ['container-runtime', 'image-sync', 'scheduler', 'tosca-orchestrator', 'occi-gateway'];

async function render(dir: string, extra: Record<string, unknown> = {}): Promise<Obj[]> {
  const serviceToken = randomBytes(24).toString('hex');
  const values = {
    auth: {
      staticTokens: {
        tokens: [{ sha256: createHash('sha256').update(serviceToken).digest('hex'), user: 'lapis-services', roles: ['admin'] }],
      },
      serviceToken: { value: serviceToken },
    },
    imageSync: { siteRegistry: 'http://registry.lapis-test.svc:5000' },
    ...extra,
  };
  const file = path.join(dir, `values-${randomBytes(4).toString('hex')}.json`);
  await fs.writeFile(file, JSON.stringify(values));
  return parseAllDocuments(await helmTemplate(['-f', file]))
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

const find = (objects: Obj[], kind: string, name: string): Obj => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} rendered`);
  return o;
};
const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');

describe('charts/lapis: NATS users, TLS and NetworkPolicies', function () {
  this.timeout(120_000);
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lapis-chart-nats-'));
  });
  after(async () => {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('the chart carries the users and permissions the platform makes (regenerate with make k8s)', async () => {
    assert.equal(await fs.readFile(NATS_AUTHORIZATION, 'utf8'), chartNatsAuthorization());
  });

  it('every service logs in as its own user, gets only its own password, and checks the server against the CA', async () => {
    const objects = await render(dir);
    const workloads = objects.filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet');
    assert.deepEqual(workloads.map((w) => w.metadata.labels?.['app.kubernetes.io/component']).sort(), [...USERS].sort());
    for (const w of workloads) {
      const component = w.metadata.labels!['app.kubernetes.io/component']!;
      const pod = w.spec.template.spec;
      const env = Object.fromEntries((pod.containers[0].env as Array<{ name: string; value?: string }>).map((e) => [e.name, e.value]));
      assert.deepEqual(
        { user: env.LAPIS_NATS_USER, password: env.LAPIS_NATS_PASSWORD_FILE, ca: env.LAPIS_NATS_CA_FILE },
        { user: component, password: '/etc/lapis/nats/password', ca: '/etc/lapis/nats-tls/ca.crt' },
        component,
      );
      const volumes = pod.volumes as Array<{ name: string; secret?: { secretName: string; items: unknown[] } }>;
      assert.deepEqual(
        volumes.find((v) => v.name === 'nats-password')?.secret?.items,
        [{ key: component, path: 'password' }],
        `${component} mounts its own password only`,
      );
      assert.deepEqual(
        volumes.find((v) => v.name === 'nats-ca')?.secret?.items,
        [{ key: 'ca.crt', path: 'ca.crt' }],
        `${component} mounts the CA only, not the key`,
      );
    }
    const nats = find(objects, 'StatefulSet', 'lapis-nats').spec.template.spec.containers[0];
    assert.deepEqual(
      (nats.env as Array<{ name: string }>).map((e) => e.name),
      USERS.map(passwordVariable),
    );
  });

  it("runs the bundled NATS's rendered config on nats-server: users with the rendered passwords, placements from the scheduler only", async () => {
    const objects = await render(dir);
    const conf = find(objects, 'ConfigMap', 'lapis-nats').data!['nats.conf']!;
    const passwords = find(objects, 'Secret', 'lapis-nats-users').data!;
    const tls = find(objects, 'Secret', 'lapis-nats-tls').data!;
    // The rendered certificate is for the NATS Service's name and signed by the rendered CA.
    await fs.writeFile(path.join(dir, 'ca.crt'), decode(tls['ca.crt']!));
    await fs.writeFile(path.join(dir, 'tls.crt'), decode(tls['tls.crt']!));
    const verified = await run('openssl', [
      'verify',
      '-CAfile',
      path.join(dir, 'ca.crt'),
      '-verify_hostname',
      'lapis-nats.lapis.svc',
      path.join(dir, 'tls.crt'),
    ]);
    assert.match(verified.stdout, /: OK/);
    // Here the server listens on 127.0.0.1: a certificate for that name, testenv's store dir and
    // no fixed monitoring port.
    const local = await makeTlsFiles(path.join(dir, 'local-tls'));
    const config = conf
      .replace('/etc/nats/tls/tls.crt', local.certFile)
      .replace('/etc/nats/tls/tls.key', local.keyFile)
      .replace(/^\s*(http_port|store_dir):.*$/gm, '');
    assert.match(config, /authorization \{/);
    // nats-server parses a $VARIABLE's value as a config value: a password that starts with a
    // digit can stop it (one random password in six starts with one).
    for (const user of USERS)
      assert.match(decode(passwords[user]!), /^[A-Za-z][A-Za-z0-9]{31}$/, `${user}'s password starts with a letter`);
    const saved = { ...process.env };
    for (const user of USERS) process.env[passwordVariable(user)] = decode(passwords[user]!);
    let server: NatsServer;
    try {
      server = await startNats({ config });
    } finally {
      for (const user of USERS) if (saved[passwordVariable(user)] === undefined) delete process.env[passwordVariable(user)];
    }
    const buses: EventBus[] = [];
    try {
      const connectAs = async (user: string) => {
        const bus = await EventBus.connect({
          url: server.url,
          name: user,
          stream: 'LAPIS',
          log: testLog,
          caFile: local.caFile,
          credentials: { user, password: decode(passwords[user]!) },
        });
        buses.push(bus);
        return bus;
      };
      const placement = { $case: 'claimPlaced' as const, claimPlaced: ClaimPlaced.fromPartial({ claimId: 'c1', node: 'n1' }) };
      const scheduler = await connectAs('scheduler');
      assert.ok((await scheduler.publish(placement, 'n1')).seq > 0);
      const runtime = await connectAs('container-runtime');
      await assert.rejects(runtime.publish(placement, 'n1'), (e: Error & { code?: string }) => e.code === 'PERMISSIONS_VIOLATION');
      await assert.rejects(
        runtime.bucket('scheduler-claims', { encode: (v: string) => ({ finish: () => Buffer.from(v) }), decode: (b) => String(b) }),
        (e: Error & { code?: string }) => e.code === 'PERMISSIONS_VIOLATION',
      );
    } finally {
      await Promise.all(buses.map((b) => b.drain().catch(() => undefined)));
      await server.stop();
    }
  });

  it('NetworkPolicies: NATS from the Lapis pods only, the services from them and the listed clients; none when off', async () => {
    const clients = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'paas' } } }];
    const objects = await render(dir, { networkPolicy: { clients } });
    const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
    assert.deepEqual(policies.map((p) => p.metadata.name).sort(), ['lapis-nats', ...USERS.map((u) => `lapis-${u}`)].sort());
    const lapisPods = {
      podSelector: {
        matchLabels: { 'app.kubernetes.io/name': 'lapis', 'app.kubernetes.io/instance': 'lapis', 'app.kubernetes.io/part-of': 'lapis' },
      },
    };
    assert.deepEqual(find(objects, 'NetworkPolicy', 'lapis-nats').spec.ingress, [
      { from: [lapisPods], ports: [{ port: 4222, protocol: 'TCP' }] },
    ]);
    assert.deepEqual(find(objects, 'NetworkPolicy', 'lapis-occi-gateway').spec.ingress, [
      {
        from: [lapisPods, ...clients],
        ports: [
          { port: 50055, protocol: 'TCP' },
          { port: 8787, protocol: 'TCP' },
        ],
      },
      // The metrics port: from metrics.scrapers, or from anywhere when none are listed (the default).
      { ports: [{ port: 9464, protocol: 'TCP' }] },
    ]);
    assert.equal((await render(dir, { networkPolicy: { enabled: false } })).filter((o) => o.kind === 'NetworkPolicy').length, 0);
  });

  it('bundled.replicas 3: three servers routed through the headless Service, replicas 3 in every service; the rendered config forms a cluster on nats-server', async () => {
    const replicasOf = (objects: Obj[]) =>
      objects
        .filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet')
        .map(
          (o) =>
            (o.spec.template.spec.containers[0].env as Array<{ name: string; value?: string }>).find(
              (e) => e.name === 'LAPIS_NATS_REPLICAS',
            )?.value,
        );
    const single = await render(dir);
    assert.equal(find(single, 'StatefulSet', 'lapis-nats').spec.replicas, 1);
    assert.doesNotMatch(find(single, 'ConfigMap', 'lapis-nats').data!['nats.conf']!, /cluster \{/);
    assert.deepEqual(new Set(replicasOf(single)), new Set(['1']));

    const objects = await render(dir, { nats: { bundled: { replicas: 3 }, auth: { enabled: false }, tls: { enabled: false } } });
    const set = find(objects, 'StatefulSet', 'lapis-nats');
    assert.equal(set.spec.replicas, 3);
    assert.equal(set.spec.podManagementPolicy, 'Parallel', 'a server waits for a majority: all start at once');
    assert.deepEqual(
      find(objects, 'Service', 'lapis-nats-headless').spec.ports.map((p: { port: number }) => p.port),
      [4222, 8222, 6222],
    );
    assert.equal(find(objects, 'PodDisruptionBudget', 'lapis-nats').spec.maxUnavailable, 1);
    const natsPods = { podSelector: { matchLabels: find(objects, 'Service', 'lapis-nats').spec.selector } };
    assert.deepEqual(find(objects, 'NetworkPolicy', 'lapis-nats').spec.ingress[1], {
      from: [natsPods],
      ports: [{ port: 6222, protocol: 'TCP' }],
    });
    const replicas = replicasOf(objects);
    assert.equal(replicas.length, USERS.length);
    assert.deepEqual(new Set(replicas), new Set(['3']));
    assert.deepEqual(new Set(replicasOf(await render(dir, { nats: { url: 'nats://a:4222,nats://b:4222' } }))), new Set(['1']));

    // The rendered config on three real servers: the routes' pod names become loopback ports.
    const conf = find(objects, 'ConfigMap', 'lapis-nats').data!['nats.conf']!;
    const routes = /nats:\/\/lapis-nats-(\d)\.lapis-nats-headless\.lapis\.svc:6222/g;
    assert.equal(conf.match(routes)?.length, 3);
    const routePorts = [await freePort(), await freePort(), await freePort()];
    const servers: NatsServer[] = [];
    const saved = process.env.POD_NAME;
    let bus: EventBus | undefined;
    try {
      for (const [i, routePort] of routePorts.entries()) {
        const config = conf
          .replace(routes, (_, j: string) => `nats://127.0.0.1:${routePorts[Number(j)]}`)
          .replace('port: 6222', `listen: 127.0.0.1:${routePort}`)
          .replace(/^\s*(http_port|store_dir):.*$/gm, '');
        process.env.POD_NAME = `lapis-nats-${i}`; // as the pod's environment gives it
        servers.push(await startNats({ config, monitor: true }));
      }
      await waitFor(
        async () => (await Promise.all(servers.map((s) => fetch(`${s.monitorUrl}/healthz`).then((r) => r.ok)))).every(Boolean),
        { timeoutMs: 60_000, intervalMs: 250, what: 'the rendered cluster to elect its JetStream leader' },
      );
      bus = await EventBus.connect({
        url: servers.map((s) => s.url).join(','),
        name: 'chart-cluster',
        stream: 'LAPIS',
        log: testLog,
        replicas: 3,
      });
      const info = await bus.jsm.streams.info('LAPIS');
      assert.deepEqual(
        [info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((r) => r.name)].sort(),
        ['lapis-nats-0', 'lapis-nats-1', 'lapis-nats-2'],
        'each server named after its pod, all three holding the stream',
      );
    } finally {
      if (saved === undefined) delete process.env.POD_NAME;
      else process.env.POD_NAME = saved;
      await bus?.drain();
      await Promise.all(servers.map((s) => s.stop()));
    }
  });

  it('auth and TLS off: no users, no certificates; an external NATS gets credentials and the CA only from named Secrets', async () => {
    const off = await render(dir, { nats: { auth: { enabled: false }, tls: { enabled: false } } });
    assert.doesNotMatch(find(off, 'ConfigMap', 'lapis-nats').data!['nats.conf']!, /authorization|tls \{/);
    assert.ok(!off.some((o) => o.kind === 'Secret' && /nats/.test(o.metadata.name)));
    const scheduler = find(off, 'Deployment', 'lapis-scheduler').spec.template.spec.containers[0].env as Array<{ name: string }>;
    assert.ok(!scheduler.some((e) => e.name.startsWith('LAPIS_NATS_USER') || e.name === 'LAPIS_NATS_CA_FILE'));
    const external = await render(dir, {
      nats: { url: 'tls://nats.example.org:4222', auth: { existingSecret: 'site-nats-users' }, tls: { existingSecret: 'site-nats-tls' } },
    });
    assert.ok(
      !external.some((o) => o.metadata.name === 'lapis-nats' || (o.kind === 'Secret' && /nats/.test(o.metadata.name))),
      'nothing of the bundled NATS',
    );
    const volumes = find(external, 'Deployment', 'lapis-scheduler').spec.template.spec.volumes as Array<{
      name: string;
      secret?: { secretName: string };
    }>;
    assert.deepEqual(
      volumes.filter((v) => v.name.startsWith('nats-')).map((v) => v.secret?.secretName),
      ['site-nats-users', 'site-nats-tls'],
    );
  });
});
