// The control plane both clusters share: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler, started from the cached binaries (kube-tools.ts) with everything in one dir.
// kube.ts adds kwok (simulated nodes); cluster.ts adds a real node (kubelet, containerd, CNI).
import * as crypto from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { errorText, kubeconfigYaml, kubeRequest, waitHealthy, type KubeConnection } from './kube-api.js';
import type { KubeTools } from './kube-tools.js';
import { freePort, waitFor } from './ports.js';
import { spawnLogged, type Supervised } from './proc.js';

/** The API server's own certificate and the CA that signed it (and the clients' certificates). */
export interface ControlPlaneTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface ControlPlaneOptions {
  tools: KubeTools;
  /** Where every file and log goes (made by the caller). */
  dir: string;
  timeoutMs: number;
  /** The address kube-apiserver listens on and advertises; default 127.0.0.1. */
  bindAddress?: string;
  /** Serve with this certificate and accept client certificates of this CA; default self-signed. */
  tls?: ControlPlaneTls;
  /** More lines of the static token file (token,user,uid,"group"). */
  extraTokens?: string[];
  /** --authorization-mode; default RBAC. */
  authorizationMode?: string;
  /** Keep the `kubernetes` Service's endpoints (pods reach the API server through it); default off. */
  endpointReconciler?: boolean;
  apiserverArgs?: string[];
  controllerManagerArgs?: string[];
}

export interface ControlPlane {
  conn: KubeConnection & { token: string; server: string };
  kubeconfig: string;
  logs: Record<string, string>;
  /** Starts one more process, stopped with the rest (in reverse order). */
  launch(name: string, bin: string, args: string[], graceMs?: number): Supervised;
  /** Stops the one process started under this name (the others keep running). */
  stopProcess(name: string): Promise<void>;
  /** Throws when any process started here has ended. */
  guard(): void;
  pids(): number[];
  /** Stops every process, the last started first (etcd last). */
  stopAll(): Promise<void>;
}

/**
 * Starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler on free ports and
 * waits until each is healthy and the default ServiceAccount exists. On failure everything
 * started is stopped again before the error is thrown.
 */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const { tools, dir, timeoutMs } = opts;
  const bind = opts.bindAddress ?? '127.0.0.1';
  const procs: Array<{ name: string; proc: Supervised }> = [];
  const logs: Record<string, string> = {};
  const launch = (name: string, bin: string, args: string[], graceMs = 5000): Supervised => {
    const logFile = path.join(dir, `${name}.log`);
    logs[name] = logFile;
    const proc = spawnLogged(bin, args, { logFile, graceMs });
    procs.push({ name, proc });
    return proc;
  };
  const stopAll = async (): Promise<void> => {
    for (const { proc } of [...procs].reverse()) await proc.stop();
  };

  try {
    const [etcdPort, peerPort, apiPort, kcmPort, schedPort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = launch('etcd', tools.etcd, [
      '--name=lapis-test',
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=lapis-test=http://127.0.0.1:${peerPort}`,
      '--initial-cluster-state=new',
      // Test data: no fsync, and no compaction of a few minutes' history.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await waitFor(
      async () => {
        etcd.failIfExited();
        const res = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(2000) });
        const body = (await res.json()) as { health?: string };
        if (body.health !== 'true') throw new Error(`etcd /health: ${JSON.stringify(body)}`);
        return true;
      },
      { timeoutMs, what: `etcd to answer ${etcdUrl}/health (log: ${etcd.logFile})`, intervalMs: 100 },
    ).catch((e: unknown) => {
      throw new Error(`etcd did not become ready (log: ${etcd.logFile}): ${errorText(e)}`);
    });

    // kube-apiserver: a static admin token, a service-account key pair, its serving cert.
    const token = crypto.randomBytes(24).toString('hex');
    const tokenFile = path.join(dir, 'tokens.csv');
    await fsp.writeFile(tokenFile, [`${token},lapis-admin,lapis-admin,"system:masters"`, ...(opts.extraTokens ?? []), ''].join('\n'), {
      mode: 0o600,
    });
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const saKey = path.join(dir, 'sa.key');
    const saPub = path.join(dir, 'sa.pub');
    await fsp.writeFile(saKey, privateKey, { mode: 0o600 });
    await fsp.writeFile(saPub, publicKey);
    const certDir = path.join(dir, 'certs');
    await fsp.mkdir(certDir, { recursive: true });
    const server = `https://${bind}:${apiPort}`;
    const tlsArgs = opts.tls
      ? [`--tls-cert-file=${opts.tls.certFile}`, `--tls-private-key-file=${opts.tls.keyFile}`, `--client-ca-file=${opts.tls.caFile}`]
      : [];
    const apiserver = launch('kube-apiserver', tools.kubeApiserver, [
      `--etcd-servers=${etcdUrl}`,
      `--bind-address=${bind}`,
      `--advertise-address=${bind}`,
      `--secure-port=${apiPort}`,
      `--cert-dir=${certDir}`,
      ...tlsArgs,
      `--token-auth-file=${tokenFile}`,
      `--authorization-mode=${opts.authorizationMode ?? 'RBAC'}`,
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      '--profiling=false',
      `--endpoint-reconciler-type=${opts.endpointReconciler ? 'lease' : 'none'}`,
      ...(opts.apiserverArgs ?? []),
    ]);
    const conn = { server, token, insecure: true };
    await waitHealthy('kube-apiserver', apiserver, conn, '/readyz', timeoutMs);

    const kubeconfig = path.join(dir, 'kubeconfig');
    await fsp.writeFile(kubeconfig, kubeconfigYaml(server, token), { mode: 0o600 });

    // kube-controller-manager: Deployments -> ReplicaSets -> Pods, namespaces, service accounts.
    const kcm = launch('kube-controller-manager', tools.kubeControllerManager, [
      `--kubeconfig=${kubeconfig}`,
      '--leader-elect=false',
      '--controllers=*,-serviceaccount-token',
      `--service-account-private-key-file=${saKey}`,
      ...(opts.tls ? [`--root-ca-file=${opts.tls.caFile}`] : []),
      '--bind-address=127.0.0.1',
      `--secure-port=${kcmPort}`,
      `--cert-dir=${path.join(dir, 'kcm-certs')}`,
      '--kube-api-qps=200',
      '--kube-api-burst=400',
      '--concurrent-deployment-syncs=20',
      '--concurrent-replicaset-syncs=20',
      '--profiling=false',
      ...(opts.controllerManagerArgs ?? []),
    ]);
    // kube-scheduler: leader election off, a generous client rate limit.
    const schedConfig = path.join(dir, 'scheduler.yaml');
    await fsp.writeFile(
      schedConfig,
      [
        'apiVersion: kubescheduler.config.k8s.io/v1',
        'kind: KubeSchedulerConfiguration',
        'clientConnection:',
        `  kubeconfig: ${kubeconfig}`,
        '  qps: 500',
        '  burst: 1000',
        'leaderElection:',
        '  leaderElect: false',
        'enableProfiling: false',
        '',
      ].join('\n'),
    );
    const scheduler = launch('kube-scheduler', tools.kubeScheduler, [
      `--config=${schedConfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${schedPort}`,
      `--cert-dir=${path.join(dir, 'scheduler-certs')}`,
    ]);
    await Promise.all([
      waitHealthy('kube-controller-manager', kcm, { server: `https://127.0.0.1:${kcmPort}`, insecure: true }, '/healthz', timeoutMs),
      waitHealthy('kube-scheduler', scheduler, { server: `https://127.0.0.1:${schedPort}`, insecure: true }, '/healthz', timeoutMs),
    ]);
    // The service-account controller makes `default` in every namespace; wait for the first
    // one so that a test's first pod is not refused for lack of it.
    await waitFor(
      async () => {
        kcm.failIfExited();
        await kubeRequest(conn, 'GET', '/api/v1/namespaces/default/serviceaccounts/default', { timeoutMs: 5000 });
        return true;
      },
      { timeoutMs, what: `kube-controller-manager to create the default ServiceAccount (log: ${kcm.logFile})`, intervalMs: 250 },
    );
    return {
      conn,
      kubeconfig,
      logs,
      launch,
      async stopProcess(name) {
        for (const p of procs) if (p.name === name) await p.proc.stop();
      },
      guard() {
        for (const { proc } of procs) proc.failIfExited();
      },
      pids: () => procs.map(({ proc }) => proc.pid).filter((p): p is number => p !== undefined),
      stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
