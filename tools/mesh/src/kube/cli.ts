#!/usr/bin/env node
// `make kube-up` / `make kube-down`: Lapis installed with Helm on a real one-node Kubernetes
// cluster on this machine, with the example deployed through it.
//   up      starts it (a detached supervisor), shows progress, prints where everything is
//   down    stops it: the cluster goes with everything in it, the host is put back
//   status  says whether it runs and where
// The supervisor (`serve`) keeps .lapis/kube.json up to date; its log is .lapis/kube.log.
import { join } from 'node:path';
import { cleanupStaleCluster, type DockerEngine, ensureDocker } from '@lapis/testenv';
import { MESH_TOKENS, REPO_ROOT } from '../mesh';
import { alive, Supervisor } from '../supervisor';
import { deployExampleInCluster } from './example';
import { type LapisOnKube, NAMESPACE, RELEASE, startLapisOnKube } from './install';

const DIR = join(REPO_ROOT, '.lapis');
const supervisor = new Supervisor({
  name: 'Lapis on Kubernetes',
  headline: 'Lapis runs on a one-node Kubernetes cluster on this machine',
  upCommand: 'make kube-up',
  downCommand: 'make kube-down',
  statusFile: join(DIR, 'kube.json'),
  logFile: join(DIR, 'kube.log'),
  script: __filename,
});

async function serve(): Promise<void> {
  const { status, progress } = supervisor.begin();
  let lapis: LapisOnKube | undefined;
  let engine: DockerEngine | undefined;
  const stopAll = async () => {
    await lapis?.stop().catch(() => {});
    if (lapis?.cluster.leftovers.length) process.stdout.write(`could not undo on the host: ${lapis.cluster.leftovers.join('; ')}\n`);
    await engine?.stop().catch(() => {});
  };
  const stop = async () => {
    status.phase = 'stopping';
    supervisor.write(status);
    await stopAll();
    supervisor.forget();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  try {
    engine = await ensureDocker();
    lapis = await startLapisOnKube(engine, progress);
    const { cluster, registries, installed, zipkin } = lapis;
    status.summary = {
      kubeconfig: `${cluster.kubeconfig} (export KUBECONFIG=${cluster.kubeconfig})`,
      release: `${RELEASE} in namespace ${NAMESPACE} (helm -n ${NAMESPACE} status ${RELEASE})`,
      ...Object.fromEntries(Object.entries(installed.addresses).map(([name, address]) => [`${name} (gRPC)`, address])),
      'OCCI (HTTP)': installed.occiUrl || '(none)',
      'site registry': registries.site.url,
      'trace viewer': `${zipkin.url}/zipkin/ (on the node bridge: the pods send their spans there)`,
      'user token': `${MESH_TOKENS.alice.token} (projects ${MESH_TOKENS.alice.projects.join(', ')}); admin: ${MESH_TOKENS.admin.token}`,
      logs: `kubectl -n ${NAMESPACE} logs deploy/${RELEASE}-<service>; the cluster's own in ${cluster.dir}`,
    };
    supervisor.write(status);
    const example = await deployExampleInCluster(cluster, installed, zipkin.url, progress);
    // An output over the mirrors it was not given (EXAMPLE_INPUTS) stays an unresolved expression.
    const outputs = Object.fromEntries(
      Object.entries(example.outputs).map(([k, v]) => [
        k,
        typeof v === 'string' ? v : '(none: deployed without mirrors on one 2-core node)',
      ]),
    );
    status.outputs = {
      ...outputs,
      deployment: example.deploymentId,
      'web pod': example.pod,
      'web claims': example.claims,
      trace: `${example.trace.url} (${example.trace.spans.length} spans; pods ${example.trace.pods.join(', ')})`,
    };
    status.phase = 'ready';
    supervisor.write(status);
  } catch (error) {
    status.phase = 'failed';
    status.error = error instanceof Error ? error.message : String(error);
    supervisor.write(status);
    await stopAll();
    process.exit(1);
  }
}

async function down(): Promise<number> {
  const status = supervisor.read();
  if (!status || !alive(status.pid)) {
    supervisor.forget();
    const cleaned = await cleanupStaleCluster((line) => process.stdout.write(`  ${line}\n`));
    process.stdout.write(
      cleaned ? 'Lapis on Kubernetes was not running; removed what its cluster left.\n' : 'Lapis on Kubernetes is not running.\n',
    );
    return 0;
  }
  process.stdout.write(
    `Stopping Lapis on Kubernetes (pid ${status.pid}): the cluster with every pod and claim, the registries; the host is put back...\n`,
  );
  const said = await supervisor.stop(status, /could not undo/);
  // Stopped while it was still starting, the supervisor had no cluster to stop yet: its state file says what to undo.
  await cleanupStaleCluster((line) => process.stdout.write(`  ${line}\n`));
  for (const line of said) process.stdout.write(`  ${line}\n`);
  supervisor.forget();
  process.stdout.write('Stopped.\n');
  return 0;
}

supervisor.main({ serve, down }, 'lapis-kube');
