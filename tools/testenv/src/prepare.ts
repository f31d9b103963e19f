// What a test run needs that takes long to make, made before the first test starts: a hook's
// timeout is no place for a first build of Kubernetes (10-15 minutes on 2 cores). `make test`
// runs this first (`lapis-testenv prepare`); on a machine that has everything it takes a
// second or two, apart from the service images, which follow the tree and are rebuilt.
import * as path from 'node:path';
import { ensureCommands } from './apt.js';
import { ensureDocker } from './docker.js';
import { ensureGrpcurl } from './grpcurl.js';
import { ensureBaseImage } from './image.js';
import { clusterToolsDir, ensureClusterTools } from './cluster-tools.js';
import { ensureKubeTools, kubeToolsDir } from './kube-tools.js';
import { ensurePrometheus, prometheusDir } from './prometheus.js';
import { run } from './proc.js';

/** Every Debian package a test may need, by a command it brings: one apt-get for all that are missing. */
const COMMANDS = {
  'nats-server': 'nats-server',
  dockerd: 'docker.io',
  docker: 'docker.io',
  'docker-registry': 'docker-registry',
  htpasswd: 'apache2-utils',
  slurmctld: 'slurm-wlm',
  slurmd: 'slurm-wlm',
  munged: 'munge',
  debootstrap: 'debootstrap',
  openssl: 'openssl',
} as const;

export interface PrepareOptions {
  /** Where to say what is happening (one line at a time). */
  progress: (line: string) => void;
  /** Also build the service images with images/build.sh (the image tests need them). */
  images: boolean;
  /** The repository root (for images/build.sh). */
  root: string;
}

/** Runs `work`, saying every minute that it still runs (a first Go build is long and silent). */
async function withHeartbeat<T>(what: string, progress: (line: string) => void, work: () => Promise<T>): Promise<T> {
  const started = Date.now();
  const timer = setInterval(() => progress(`@lapis/testenv: still ${what} (${Math.round((Date.now() - started) / 60_000)} min)`), 60_000);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

export async function prepareTestRun(opts: PrepareOptions): Promise<void> {
  const say = opts.progress;
  const started = Date.now();
  say('@lapis/testenv: preparing the test run (Debian packages, Docker, the base image, Kubernetes tools, grpcurl, Prometheus, images)');
  await ensureCommands(COMMANDS);

  const engine = await ensureDocker();
  try {
    await ensureBaseImage(undefined, { engine });
    await withHeartbeat('building the Kubernetes tools', say, () =>
      ensureKubeTools({
        progress: (line) => {
          say(line);
          if (line.includes('building kube-apiserver') || line.includes('building helm')) {
            say(`@lapis/testenv: a first build takes 10-15 minutes on 2 cores; it is cached in ${kubeToolsDir()}`);
          }
        },
      }),
    );
    await withHeartbeat('building the Kubernetes node tools', say, () =>
      ensureClusterTools({
        progress: (line) => {
          say(line);
          if (line.includes('building kubelet'))
            say(
              `@lapis/testenv: the node's tools (kubelet, kube-proxy, CoreDNS, local-path, nats-server) take about 5 more minutes the first time; cached in ${clusterToolsDir()}`,
            );
        },
      }),
    );
    await ensureGrpcurl({ progress: say });
    await withHeartbeat('building Prometheus', say, () =>
      ensurePrometheus({
        progress: (line) => {
          say(line);
          if (line.includes('building prometheus'))
            say(`@lapis/testenv: a first build of Prometheus takes about 9 minutes on 2 cores; cached in ${prometheusDir()}`);
        },
      }),
    );
    if (opts.images) {
      say('@lapis/testenv: building the service images (images/build.sh; the first run also makes the Debian base, a few minutes)');
      await withHeartbeat('building the service images', say, () =>
        run(path.join(opts.root, 'images', 'build.sh'), [], {
          cwd: opts.root,
          timeoutMs: 30 * 60_000,
          env: { ...process.env, DOCKER_HOST: `unix://${engine.socketPath}` },
        }),
      );
    }
  } finally {
    // An engine we started here is stopped: the test run starts (and stops) its own.
    await engine.stop();
  }
  say(`@lapis/testenv: test run prepared in ${Math.round((Date.now() - started) / 1000)} s`);
}
