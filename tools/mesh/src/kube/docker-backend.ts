// The runtime's Docker backend on the real cluster: `helm upgrade` to the chart's DaemonSet
// (one privileged agent per node) driving the host's Docker engine through its socket, in place
// of the kubernetes backend's Deployment. The node gives the agent what a site's Docker node
// must (charts/lapis/README.md, "On Kubernetes"):
// - the engine pulls from the site registry: plain HTTP here, so it is in the engine's
//   insecure-registries while the backend runs;
// - the agent's state dir on a shared mount (its Bidirectional mount needs one): systemd hosts
//   have / shared, this machine's / is private, so the dir is bound onto itself and made shared
//   (under the cluster's dir: the cluster's teardown unmounts it with everything below).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { allowInsecureRegistry, helm, kubectl, mountsUnder, run, waitFor, waitPodsReady } from '@lapis/testenv';
import { CHART, HEARTBEAT_MS, NAMESPACE, RELEASE, type LapisOnKube } from './install';

export interface DockerBackend {
  /** The agent's state dir on the host. */
  stateDir: string;
  /** The engine no longer pulls from the site registry over plain HTTP. */
  undo(): Promise<void>;
}

export async function useDockerBackend(lapis: LapisOnKube, say: (line: string) => void): Promise<DockerBackend> {
  const { cluster, engine, registries } = lapis;
  const stateDir = join(cluster.dir, 'lapis-runtime');
  mkdirSync(stateDir, { recursive: true });
  if (!mountsUnder([stateDir]).includes(stateDir)) await run('mount', ['--bind', stateDir, stateDir]); // once: a second would hide the first
  await run('mount', ['--make-shared', stateDir]);
  say(`letting the host's Docker engine pull from the site registry ${registries.site.host} over plain HTTP`);
  const undo = await allowInsecureRegistry(engine, registries.site.host);
  try {
    const file = join(cluster.dir, 'lapis-install', 'docker-backend.json');
    const values = {
      containerRuntime: { backend: 'docker', docker: { socketPath: engine.socketPath, stateDir } },
    };
    writeFileSync(file, JSON.stringify(values, null, 2));
    say('helm upgrade: the runtime becomes a DaemonSet on the Docker backend');
    await helm(['upgrade', RELEASE, CHART, '-n', NAMESPACE, '--reuse-values', '-f', file], cluster, { timeoutMs: 120_000 });
    const component = 'app.kubernetes.io/component=container-runtime';
    await waitFor(
      async () => {
        const { stdout } = await kubectl(['get', 'pods', '-n', NAMESPACE, '-l', component, '-o', 'json'], cluster);
        const pods = (JSON.parse(stdout) as { items: Array<{ metadata: { labels?: Record<string, string> } }> }).items;
        return pods.length > 0 && pods.every((p) => p.metadata.labels?.['lapis.dev/runtime-backend'] === 'docker');
      },
      { timeoutMs: 120_000, what: "the kubernetes backend's runtime pod to be gone", intervalMs: 1000 },
    );
    await waitPodsReady(cluster, NAMESPACE, { min: 6, timeoutMs: 180_000 });
    // The scheduler places only on nodes heard from lately: the gone agent's node is down
    // after 3 of its heartbeats, and only the DaemonSet's node is left.
    await new Promise((r) => setTimeout(r, 3 * HEARTBEAT_MS + 1000));
    return { stateDir, undo };
  } catch (e) {
    await undo().catch(() => {});
    throw e;
  }
}
