// @lapis/testenv: the real dependencies of Lapis, started on this machine for tests and
// for the local run (see DESIGN.md, "Real dependencies, also in tests").
export { ensureCommands, findCommand, installPackages, NO_APT_ENV } from './apt.js';
export { freePort, GiveUp, tryConnect, waitFor, waitForPort, type WaitOptions } from './ports.js';
export {
  CommandError,
  forgetOnExit,
  removeOnExit,
  run,
  spawnLogged,
  tailFile,
  type ExitInfo,
  type RunOptions,
  type RunResult,
  type SpawnLoggedOptions,
  type Supervised,
} from './proc.js';
export { makeTlsFiles, startNats, TEST_NATS_URL_ENV, type NatsServer, type StartNatsOptions } from './nats.js';
export { startNatsCluster, type NatsCluster, type StartNatsClusterOptions } from './nats-cluster.js';
export {
  DEFAULT_DOCKER_SOCKET,
  docker,
  dockerApi,
  ensureDocker,
  pingDocker,
  sharedDocker,
  stopSharedDocker,
  type DockerEngine,
  type EnsureDockerOptions,
} from './docker.js';
export { allowInsecureRegistry } from './docker-insecure.js';
export { startRegistry, type Registry, type RegistryAuth, type StartRegistryOptions } from './registry.js';
export { BASE_IMAGE, BASE_IMAGE_USER, ensureBaseImage, isStaticElf } from './image.js';
export { TESTENV_CACHE_ENV } from './gobuild.js';
export {
  ensurePrometheus,
  PROMETHEUS_VERSION,
  prometheusDir,
  promtoolCheckRules,
  startPrometheus,
  type EnsurePrometheusOptions,
  type PrometheusServer,
  type PrometheusTools,
  type PromSample,
  type ScrapeTarget,
  type StartPrometheusOptions,
} from './prometheus.js';
export { ensureGrpcurl, grpcurlDir, GRPCURL_VERSION, type EnsureGrpcurlOptions, type Grpcurl } from './grpcurl.js';
export {
  ensureKubeTools,
  helm,
  kubectl,
  KubeApiError,
  kubeRequest,
  kubeToolsDir,
  KUBE_VERSIONS,
  KWOK_NODE_ANNOTATION,
  KWOK_TOLERATION,
  startKube,
  stagingReplacements,
  type EnsureKubeToolsOptions,
  type Kube,
  type KubeConnection,
  type KubeNodeOptions,
  type KubeRequestOptions,
  type KubeTools,
  type StartKubeOptions,
} from './kube.js';
export { CLUSTER_STATE_FILE, cleanupStaleCluster, startCluster, type Cluster, type StartClusterOptions } from './cluster.js';
export { CLUSTER_IMAGES, CLUSTER_VERSIONS, clusterToolsDir, ensureClusterTools, type ClusterTools } from './cluster-tools.js';
export { hostDifferences, mountsUnder, ourChains, snapshotHost, splitRule, type HostSnapshot } from './cluster-host.js';
export { NODE_NETWORK } from './cluster-node.js';
export { describePod, podProblem, waitPodsReady, waitRolloutReady } from './cluster-wait.js';
export { writeImageArchive } from './image-archive.js';
export {
  startSlurm,
  SLURM_NODE,
  SLURM_PARTITION,
  type SbatchOptions,
  type SlurmCluster,
  type SlurmCommand,
  type SlurmJob,
  type StartSlurmOptions,
} from './slurm.js';
