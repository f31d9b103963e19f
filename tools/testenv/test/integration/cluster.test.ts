import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CLUSTER_IMAGES,
  hostDifferences,
  kubectl,
  mountsUnder,
  NODE_NETWORK,
  splitRule,
  startCluster,
  waitFor,
  waitPodsReady,
  type Cluster,
} from '../../src/index.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// Other work on this machine (Docker containers of other tests) makes and removes links of its own.
const othersLinks = (name: string): boolean => /^(veth|br-|docker)/.test(name);

/** A web server whose page lives on a claim, behind a Service: pod, Service, PVC in one go. */
function webApp(ns: string): string {
  return `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: ${ns}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ${ns}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: ${CLUSTER_IMAGES.busybox}
        imagePullPolicy: Never
        command: [sh, -c, 'echo "hello from $(hostname)" > /data/index.html && exec httpd -f -p 8080 -h /data']
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /index.html, port: 8080}, periodSeconds: 1}
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ${ns}}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`;
}

describe('testenv: a real one-node cluster (kubelet, containerd, CNI, kube-proxy, CoreDNS, local-path)', function () {
  this.timeout(180_000);
  let cluster: Cluster | undefined;
  const ns = 'cluster-test';

  before(async function () {
    // Builds nothing when `lapis-testenv prepare` ran (make test); otherwise the first build is long.
    this.timeout(60 * 60_000);
    const started = Date.now();
    cluster = await startCluster({ progress: (line) => console.error(line) });
    console.error(`      real cluster up in ${Date.now() - started} ms`);
  });

  after(async function () {
    this.timeout(180_000);
    await cluster?.stop(); // also after a failure: the host must not keep any of it
  });

  it('splitRule keeps quoted comments whole', function () {
    assert.deepEqual(splitRule('-A KUBE-SERVICES -m comment --comment "kubernetes service \\"x\\"" -j KUBE-SVC-1'), [
      '-A',
      'KUBE-SERVICES',
      '-m',
      'comment',
      '--comment',
      'kubernetes service "x"',
      '-j',
      'KUBE-SVC-1',
    ]);
  });

  it('runs a pod on a claim the provisioner binds, behind a Service that answers from the host and by name from a pod', async function () {
    const c = cluster as Cluster;
    await kubectl(['create', 'namespace', ns], c);
    await kubectl(['apply', '-f', '-'], c, { input: webApp(ns) });
    await waitPodsReady(c, ns, { selector: 'app=web', timeoutMs: 120_000 });

    const pvc = JSON.parse((await kubectl(['get', 'pvc', '-n', ns, 'data', '-o', 'json'], c)).stdout) as {
      status: { phase: string };
      spec: { volumeName: string };
    };
    assert.equal(pvc.status.phase, 'Bound');
    const pv = JSON.parse((await kubectl(['get', 'pv', pvc.spec.volumeName, '-o', 'json'], c)).stdout) as {
      spec: { hostPath?: { path: string } };
    };
    const hostPath = pv.spec.hostPath?.path ?? '';
    assert.ok(hostPath.startsWith(c.volumeDir), `the volume ${hostPath} is under ${c.volumeDir}`);
    const page = fs.readFileSync(path.join(hostPath, 'index.html'), 'utf8');
    assert.match(page, /^hello from web-/);

    const svc = JSON.parse((await kubectl(['get', 'svc', '-n', ns, 'web', '-o', 'json'], c)).stdout) as { spec: { clusterIP: string } };
    let body = '';
    await waitFor(
      async () => {
        body = await (await fetch(`http://${svc.spec.clusterIP}/index.html`, { signal: AbortSignal.timeout(2000) })).text();
        return true;
      },
      { timeoutMs: 30_000, what: `the Service ${svc.spec.clusterIP}:80 to answer from the host`, intervalMs: 500 },
    );
    assert.equal(body, page);

    // From inside a pod: CoreDNS resolves the Service's name, kube-proxy routes to it.
    const pod = (await kubectl(['get', 'pods', '-n', ns, '-l', 'app=web', '-o', 'jsonpath={.items[0].metadata.name}'], c)).stdout;
    const viaDns = await kubectl(['exec', '-n', ns, pod, '--', 'wget', '-qO-', `http://web.${ns}.svc.cluster.local/index.html`], c, {
      timeoutMs: 30_000,
    });
    assert.equal(viaDns.stdout, page);
  });

  it('a pod that cannot start ends the wait at once, naming the pod, its reason and its last log lines', async function () {
    const c = cluster as Cluster;
    const bad = 'cluster-test-bad';
    await kubectl(['create', 'namespace', bad], c);
    const pod = (name: string, image: string, command: string[]) =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: bad, labels: { case: name } },
        spec: {
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 0,
          containers: [{ name: 'main', image, imagePullPolicy: 'Never', command }],
        },
      });
    await kubectl(['apply', '-f', '-'], c, { input: pod('no-image', 'lapis.local/not-there:1', ['true']) });
    const started = Date.now();
    await assert.rejects(
      waitPodsReady(c, bad, { selector: 'case=no-image', timeoutMs: 60_000 }),
      /pod cluster-test-bad\/no-image: container main: ErrImageNeverPull/,
    );
    await kubectl(['apply', '-f', '-'], c, {
      input: pod('crash', CLUSTER_IMAGES.busybox, ['sh', '-c', 'echo the config file is missing; exit 3']),
    });
    await assert.rejects(waitPodsReady(c, bad, { selector: 'case=crash', timeoutMs: 60_000 }), (e: Error) => {
      assert.match(e.message, /pod cluster-test-bad\/crash: container main: CrashLoopBackOff \(\d+ restarts, last exit 3/);
      assert.match(e.message, /the config file is missing/);
      return true;
    });
    assert.ok(Date.now() - started < 50_000, 'well before the timeout');
    await kubectl(['delete', 'namespace', bad, '--wait=false'], c);
  });

  it('stops, removing its processes, mounts, chains, bridge and cgroups, and puts the sysctls back', async function () {
    const c = cluster as Cluster;
    // The claim goes first, so that the provisioner removes its directory (reclaim: Delete).
    await kubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=90s'], c, { timeoutMs: 100_000 });
    await waitFor(async () => (await kubectl(['get', 'pv', '-o', 'name'], c)).stdout.trim() === '', {
      timeoutMs: 60_000,
      what: 'the PV to be deleted',
      intervalMs: 500,
    });
    const { pids, dir } = c;
    await c.stop();
    assert.deepEqual(c.leftovers, []);
    assert.deepEqual(pids.filter(alive), [], 'every component has exited');
    assert.deepEqual(mountsUnder([dir]), []);
    assert.equal(fs.existsSync(dir), false);
    assert.deepEqual(await hostDifferences(c.hostBefore, othersLinks), []);
    assert.equal(fs.existsSync(`/sys/class/net/${NODE_NETWORK.bridge}`), false);
  });
});
