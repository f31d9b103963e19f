// The Kubernetes backend: an instance is a Pod (one container) in the agent's namespace, with
// requests = limits from the flavor (nvidia.com/gpu for GPUs), its user data and SSH keys in a
// Secret mounted at /etc/lapis (its environment's values come from the same Secret), and what
// Lapis knows of it, less those secrets, in labels (lapis.dev/...) and annotations (the Docker
// backend's labels, so the agent adopts pods the same way).
// A Lapis volume is a PersistentVolumeClaim (labels lapis.dev/volume-id, project, node),
// mounted by the pods of the instances created with it.
// A pod cannot be stopped and started again, rebooted or resized in place: the agent deletes it
// and creates it anew from the instance record (`recreates`). Volumes cannot be added to a
// running pod: attaching one answers FAILED_PRECONDITION naming why.
import type * as k8s from '@kubernetes/client-node';
import { failedPrecondition, notFound, resourceExhausted, type Logger } from '@lapis/platform';
import { Backend, type Resources } from '@lapis/proto/lapis/common/v1/common';
import { type Volume, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { containerLabels, instanceEnvironment, LABEL, type ContainerPlan } from '../domain/container';
import { WRITABLE_DIRS } from '../domain/security';
import type {
  ClaimStatus,
  EngineEvent,
  ExecRequest,
  ExecResult,
  LogChunk,
  LogOptions,
  Observed,
  RuntimeBackend,
  VolumeClaims,
} from './backend';
import { podExec } from './kubernetes-exec';
import { claimName, GPU_RESOURCE, KUBE_LABEL, labelValue, podName } from './kubernetes-names';

const KWOK_TAINT = 'kwok.x-k8s.io/node';
const CONTAINER = 'instance';

export interface KubernetesOptions {
  /** kubeconfig file; empty: in-cluster service account, else the default loading rules. */
  kubeconfig: string;
  namespace: string;
  /** Tolerate kwok's fake-node taint (tests and simulations only). */
  tolerateKwok: boolean;
  /** The Kubernetes node every pod runs on (one agent a node); empty: the cluster's scheduler chooses. */
  kubeNode?: string;
  /** How long start() waits for a pod to run (default 45 s, under a client's usual minute). */
  startTimeoutMs?: number;
  /** StorageClass of the volumes' claims; empty: the cluster's default class. */
  storageClass?: string;
  /** Pods get their own user namespace (hostUsers: false), where the cluster supports it. */
  userNamespaces?: boolean;
}

const codeOf = (error: unknown) => (error as { code?: number }).code;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reads an object until the API server answers 404 (true) or `timeoutMs` passes (false). */
async function gone(read: () => Promise<unknown>, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(200)) {
    try {
      await read();
    } catch (error) {
      if (codeOf(error) === 404) return true;
      throw error;
    }
  }
  return false;
}

type Client = typeof k8s;

export class KubernetesBackend implements RuntimeBackend {
  readonly kind = Backend.KUBERNETES;
  readonly volumeAttachRefusal =
    "this node runs instances as Kubernetes Pods, and a Pod's volumes are fixed when it is created: Kubernetes cannot add one to a running Pod or take one away (give volumes in the instance's spec.volumes when creating it)";
  readonly recreates = true;
  readonly suspendRefusal =
    'this node runs instances as Kubernetes Pods, and Kubernetes has no pause for a Pod: an instance here cannot be suspended (stop it instead: its Pod is deleted, and made anew on start)';
  readonly networkRefusal =
    "this node runs instances as Kubernetes Pods, and a Pod's network interfaces are fixed when it is created (its CNI sets them up): Kubernetes cannot add one to a running Pod or take one away";
  readonly claims: VolumeClaims = {
    claimName,
    create: (volume) => this.createClaim(volume),
    status: (volumeId) => this.claimStatus(volumeId),
    delete: (volumeId) => this.deleteClaim(volumeId),
    list: () => this.listClaims(),
  };
  /** Pods this backend deletes (stop, remove): their deletion is no "destroy" event. */
  private readonly deleting = new Set<string>();
  private loaded?: Promise<{ lib: Client; kc: k8s.KubeConfig; core: k8s.CoreV1Api }>;

  constructor(
    private readonly options: KubernetesOptions,
    private readonly node: string,
    private readonly log: Logger,
  ) {}

  get namespace(): string {
    return this.options.namespace;
  }

  /** The client library is ESM only: loaded with a dynamic import on first use. */
  private client() {
    this.loaded ??= (async () => {
      const lib = (await import('@kubernetes/client-node')) as Client;
      const kc = new lib.KubeConfig();
      if (this.options.kubeconfig) kc.loadFromFile(this.options.kubeconfig);
      else kc.loadFromDefault();
      return { lib, kc, core: kc.makeApiClient(lib.CoreV1Api) };
    })();
    return this.loaded;
  }

  private selector(): string {
    return `${KUBE_LABEL.managed}=true,${KUBE_LABEL.node}=${labelValue(this.node)}`;
  }

  /** Registries pull by digest where the catalogue gave one: the pod cannot run a moved tag. */
  async localImage(reference: string, digest: string): Promise<string> {
    if (!digest || reference.includes('@')) return reference;
    const slash = reference.lastIndexOf('/');
    const colon = reference.lastIndexOf(':');
    const repository = colon > slash ? reference.slice(0, colon) : reference;
    return `${repository}@${digest}`;
  }

  async cachedImages(): Promise<string[]> {
    return [];
  }

  /** Instances share the namespace; isolation between projects is NetworkPolicy's (not made here). */
  async ensureNetwork(): Promise<string> {
    return this.options.namespace;
  }

  async releaseNetwork(): Promise<void> {}

  async create(plan: ContainerPlan): Promise<string> {
    const { core } = await this.client();
    const { instance, resources } = plan;
    const spec = instance.spec!;
    const name = podName(instance.id, instance.attempt);
    const namespace = this.options.namespace;
    const labels: Record<string, string> = {
      [KUBE_LABEL.managed]: 'true',
      [KUBE_LABEL.instanceId]: labelValue(instance.id),
      [KUBE_LABEL.project]: labelValue(instance.project),
      [KUBE_LABEL.user]: labelValue(instance.user),
      [KUBE_LABEL.flavor]: labelValue(spec.flavor),
      [KUBE_LABEL.node]: labelValue(this.node),
      [KUBE_LABEL.attempt]: String(instance.attempt),
    };
    const quantities: Record<string, string> = {
      cpu: `${Math.max(1, resources.cpuMillis)}m`,
      memory: String(resources.memoryBytes),
      ...(resources.gpus ? { [GPU_RESOURCE]: String(resources.gpus) } : {}),
    };
    const claims = (plan.volumes ?? []).map((v, i) => ({
      name: `volume-${i}`,
      claim: claimName(v.volumeId),
      mountPath: v.mountPath,
      readOnly: v.readOnly,
    }));
    // Values that are secrets come from the instance's Secret: a pod spec is read by whoever may list pods.
    const secretName = `${name}-metadata`;
    const secretEnv = new Set([...Object.keys(spec.environment), 'LAPIS_USER_DATA', 'LAPIS_SSH_PUBLIC_KEYS']);
    const envData: Record<string, string> = {};
    const env = instanceEnvironment(instance).map((line): k8s.V1EnvVar => {
      const eq = line.indexOf('=');
      const [envName, value] = [line.slice(0, eq), line.slice(eq + 1)];
      if (!secretEnv.has(envName)) return { name: envName, value };
      envData[`env.${envName}`] = value;
      return { name: envName, valueFrom: { secretKeyRef: { name: secretName, key: `env.${envName}` } } };
    });
    // Made before the pod, so the pod never starts without it; owned by the pod once it exists.
    const secret: k8s.V1Secret = {
      metadata: { name: secretName, namespace, labels },
      type: 'Opaque',
      data: Object.fromEntries(
        Object.entries({ ...envData, 'ssh-keys': spec.sshPublicKeys.join('\n'), 'instance-id': instance.id }).map(([k, v]) => [
          k,
          Buffer.from(v).toString('base64'),
        ]),
      ),
    };
    secret.data!['user-data'] = Buffer.from(spec.userData).toString('base64');
    await core.createNamespacedSecret({ namespace, body: secret }).catch(async (error: unknown) => {
      if (codeOf(error) !== 409) throw kubeError(error, 'create the Secret with user data, keys and environment');
      await core.replaceNamespacedSecret({ name: secretName, namespace, body: secret });
    });
    const { security } = plan;
    // A read-only root keeps /tmp and /run writable, in memory (as Docker's tmpfs).
    const writable = security.readOnlyRoot ? WRITABLE_DIRS.map((path, i) => ({ name: `writable-${i}`, path })) : [];
    const pod: k8s.V1Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace, labels, annotations: containerLabels(instance, this.node) },
      spec: {
        hostname: labelValue(spec.name.toLowerCase()).replace(/[_.]/g, '-') || undefined,
        restartPolicy: spec.restartOnFailure ? 'OnFailure' : 'Never',
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        containers: [
          {
            name: CONTAINER,
            image: plan.image,
            ...(spec.command.length ? { command: [spec.command[0]!], args: spec.command.slice(1) } : {}),
            env,
            resources: { requests: quantities, limits: quantities },
            ports: spec.ports.map((p) => ({
              containerPort: p.containerPort,
              protocol: p.protocol === 2 ? 'UDP' : 'TCP',
              ...(p.hostPort ? { hostPort: p.hostPort, hostIP: plan.hostIp } : {}),
            })),
            // The same limits as on Docker (domain/security.ts).
            securityContext: {
              privileged: false,
              allowPrivilegeEscalation: false,
              capabilities: { drop: ['ALL'], add: security.capabilities },
              readOnlyRootFilesystem: security.readOnlyRoot,
            },
            volumeMounts: [
              { name: 'lapis-metadata', mountPath: '/etc/lapis', readOnly: true },
              ...claims.map((c) => ({ name: c.name, mountPath: c.mountPath, readOnly: c.readOnly })),
              ...writable.map((w) => ({ name: w.name, mountPath: w.path })),
            ],
          },
        ],
        // Docker applies its default seccomp profile; a Pod gets the runtime's only when asked.
        securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
        ...(this.options.userNamespaces ? { hostUsers: false } : {}),
        volumes: [
          {
            name: 'lapis-metadata',
            secret: { secretName, defaultMode: 0o400, items: ['user-data', 'ssh-keys', 'instance-id'].map((key) => ({ key, path: key })) },
          },
          ...claims.map((c) => ({ name: c.name, persistentVolumeClaim: { claimName: c.claim, readOnly: c.readOnly } })),
          ...writable.map((w) => ({ name: w.name, emptyDir: { medium: 'Memory' } })),
        ],
        ...(this.options.kubeNode ? { nodeSelector: { 'kubernetes.io/hostname': this.options.kubeNode } } : {}),
        ...(this.options.tolerateKwok ? { tolerations: [{ key: KWOK_TAINT, operator: 'Exists', effect: 'NoSchedule' }] } : {}),
      },
    };
    const created = await core.createNamespacedPod({ namespace, body: pod }).catch(async (error: unknown) => {
      await core.deleteNamespacedSecret({ name: secretName, namespace }).catch(() => undefined);
      throw kubeError(error, 'create the pod');
    });
    // Owned by the pod, so the garbage collector removes it with the pod (deletePod removes it too).
    secret.metadata!.ownerReferences = [{ apiVersion: 'v1', kind: 'Pod', name, uid: created.metadata!.uid!, blockOwnerDeletion: false }];
    await core.replaceNamespacedSecret({ name: secretName, namespace, body: secret }).catch((error: unknown) => {
      this.log.warn({ pod: name, err: error }, 'making the pod own its Secret failed; deleting the pod deletes it');
    });
    return name;
  }

  /** A pod starts when it is created: waits until it runs (or ended, or the wait runs out). */
  async start(id: string): Promise<void> {
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 45_000);
    for (;;) {
      const pod = await this.readPod(id);
      if (!pod) throw failedPrecondition(`pod ${id} does not exist (deleted while it was starting)`, 'ENGINE_REFUSED');
      const phase = pod.status?.phase;
      if (phase && phase !== 'Pending') return;
      if (Date.now() > deadline) {
        const why = pod.status?.conditions?.find((c) => c.status === 'False' && c.message)?.message ?? 'still Pending';
        throw failedPrecondition(`pod ${id} did not start: ${why}`, 'START_FAILED');
      }
      await sleep(250);
    }
  }

  /** ExecInInstance: through the pod's exec subresource (kubernetes-exec.ts). */
  async exec(id: string, request: ExecRequest): Promise<ExecResult> {
    const { lib, kc } = await this.client();
    return podExec({ exec: new lib.Exec(kc), namespace: this.options.namespace, pod: id, container: CONTAINER }, request);
  }

  /** Stopping a pod is deleting it (grace period timeoutS); it cannot be started again. */
  async stop(id: string, timeoutS: number): Promise<void> {
    await this.deletePod(id, timeoutS);
  }

  /** Not used (`recreates`: the agent deletes the pod and creates it anew). */
  async restart(id: string): Promise<void> {
    throw failedPrecondition(
      `pod ${id} cannot be rebooted in place: Kubernetes restarts a pod's container only when it fails`,
      'NOT_SUPPORTED_ON_KUBERNETES',
    );
  }

  async remove(id: string): Promise<void> {
    await this.deletePod(id, 0);
  }

  /** Not used (`recreates`: the agent makes the pod anew with the new resources). */
  async resize(id: string, _resources: Resources): Promise<void> {
    throw failedPrecondition(
      `pod ${id} cannot be resized by this backend: a pod's resources are fixed when it is created`,
      'NOT_SUPPORTED_ON_KUBERNETES',
    );
  }

  async inspect(id: string): Promise<Observed | undefined> {
    const pod = await this.readPod(id);
    return pod && observe(pod);
  }

  async list(): Promise<Observed[]> {
    const { core } = await this.client();
    const pods = await core.listNamespacedPod({ namespace: this.options.namespace, labelSelector: this.selector() });
    return pods.items.filter((p) => !p.metadata?.deletionTimestamp).map(observe);
  }

  /** The container's log so far (following is not offered by this backend yet). */
  async *logs(id: string, options: LogOptions): AsyncIterable<LogChunk> {
    const { core } = await this.client();
    const text = await core
      .readNamespacedPodLog({
        name: id,
        namespace: this.options.namespace,
        container: CONTAINER,
        timestamps: true,
        ...(options.tailLines ? { tailLines: options.tailLines } : {}),
        ...(options.since ? { sinceSeconds: Math.max(1, Math.ceil((Date.now() - options.since.getTime()) / 1000)) } : {}),
      })
      .catch((error: unknown) => {
        if (codeOf(error) === 404) throw notFound(`pod ${id} not found`, 'POD_NOT_FOUND');
        throw kubeError(error, 'read the log');
      });
    for (const line of String(text).split('\n')) {
      if (!line) continue;
      const space = line.indexOf(' ');
      const time = space > 0 ? new Date(line.slice(0, space)) : undefined;
      if (time && !Number.isNaN(time.getTime())) yield { stream: 'stdout', data: Buffer.from(`${line.slice(space + 1)}\n`), time };
      else yield { stream: 'stdout', data: Buffer.from(`${line}\n`) };
    }
  }

  /**
   * Watches this node's pods and turns their phases into the Docker backend's events: Running
   * is "start", Succeeded/Failed is "die" (with the exit code; "oom" first when OOMKilled),
   * a deleted pod is "destroy". What happened while the agent was away is the reconcile's work.
   */
  watch(onEvent: (event: EngineEvent) => void): () => void {
    let stopped = false;
    let current: AbortController | undefined;
    const phases = new Map<string, string>();
    const handle = (type: string, pod: k8s.V1Pod) => {
      const name = pod.metadata?.name ?? '';
      const instanceId = pod.metadata?.annotations?.[LABEL.instanceId];
      if (!name || !instanceId) return;
      const known = phases.get(name);
      if (type === 'DELETED') {
        phases.delete(name);
        if (this.deleting.delete(name)) return;
        onEvent({ instanceId, backendId: name, action: 'destroy' });
        return;
      }
      const phase = pod.status?.phase ?? 'Pending';
      phases.set(name, phase);
      if (known === undefined && type === 'ADDED' && phase !== 'Pending') return; // already there when the watch began
      if (known === phase) return;
      if (phase === 'Running') onEvent({ instanceId, backendId: name, action: 'start' });
      if (phase === 'Succeeded' || phase === 'Failed') {
        const o = observe(pod);
        if (o.oomKilled) onEvent({ instanceId, backendId: name, action: 'oom' });
        onEvent({ instanceId, backendId: name, action: 'die', exitCode: o.exitCode });
      }
    };
    const connect = async () => {
      while (!stopped) {
        try {
          const { lib, kc } = await this.client();
          const done = new Promise<void>((resolve) => {
            void new lib.Watch(kc)
              .watch(
                `/api/v1/namespaces/${this.options.namespace}/pods`,
                { labelSelector: this.selector() },
                (type, obj) => handle(type, obj as k8s.V1Pod),
                (error) => {
                  if (error && !stopped && (error as Error).name !== 'AbortError')
                    this.log.warn({ err: error }, 'pod watch ended; reconnecting');
                  resolve();
                },
              )
              .then((controller) => {
                current = controller;
                if (stopped) controller.abort();
              })
              .catch((error: Error) => {
                if (!stopped) this.log.warn({ err: error }, 'pod watch failed; reconnecting');
                resolve();
              });
          });
          await done;
        } catch (error) {
          if (!stopped) this.log.warn({ err: error }, 'pod watch failed; reconnecting');
        }
        if (!stopped) await new Promise((r) => setTimeout(r, 500));
      }
    };
    void connect();
    return () => {
      stopped = true;
      current?.abort();
    };
  }

  // ---------------------------------------------------------------- volumes as claims

  /** A claim for the volume: ReadWriteOnce, its size, the configured StorageClass, Lapis labels. */
  private async createClaim(volume: Volume): Promise<void> {
    const { core } = await this.client();
    const namespace = this.options.namespace;
    const name = claimName(volume.id);
    const body: k8s.V1PersistentVolumeClaim = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: {
        name,
        namespace,
        labels: {
          [KUBE_LABEL.managed]: 'true',
          [KUBE_LABEL.volumeId]: labelValue(volume.id),
          [KUBE_LABEL.volumeName]: labelValue(volume.name),
          [KUBE_LABEL.project]: labelValue(volume.project),
          [KUBE_LABEL.node]: labelValue(this.node),
        },
        annotations: {
          [KUBE_LABEL.volumeId]: volume.id,
          [KUBE_LABEL.project]: volume.project,
          [KUBE_LABEL.volumeName]: volume.name,
          [KUBE_LABEL.sizeBytes]: String(volume.sizeBytes),
        },
      },
      spec: {
        accessModes: ['ReadWriteOnce'],
        volumeMode: 'Filesystem',
        resources: { requests: { storage: String(volume.sizeBytes) } },
        ...(this.options.storageClass ? { storageClassName: this.options.storageClass } : {}),
      },
    };
    await core.createNamespacedPersistentVolumeClaim({ namespace, body }).catch(async (error: unknown) => {
      if (codeOf(error) === 409) {
        // Ours from an earlier try (volume ids are random), unless another volume id holds it.
        const existing = await core.readNamespacedPersistentVolumeClaim({ name, namespace });
        if (existing.metadata?.annotations?.[KUBE_LABEL.volumeId] === volume.id) return;
      }
      const e = kubeError(error, `create the PersistentVolumeClaim ${name}`);
      if (codeOf(error) === 403 && /quota/i.test(e.message)) throw resourceExhausted(e.message, 'VOLUME_QUOTA');
      throw e;
    });
  }

  private async claimStatus(volumeId: string): Promise<ClaimStatus> {
    const { core } = await this.client();
    const namespace = this.options.namespace;
    const name = claimName(volumeId);
    let claim: k8s.V1PersistentVolumeClaim;
    try {
      claim = await core.readNamespacedPersistentVolumeClaim({ name, namespace });
    } catch (error) {
      if (codeOf(error) === 404)
        return { phase: 'Missing', message: `PersistentVolumeClaim ${name} does not exist (deleted outside Lapis?)` };
      throw kubeError(error, `read the PersistentVolumeClaim ${name}`);
    }
    const phase = (claim.status?.phase ?? 'Pending') as ClaimStatus['phase'];
    const condition = claim.status?.conditions?.find((c) => c.message)?.message;
    const storageClass = claim.spec?.storageClassName ? `StorageClass ${claim.spec.storageClassName}` : 'the default StorageClass';
    const message =
      phase === 'Bound'
        ? `PersistentVolumeClaim ${name} is Bound to PersistentVolume ${claim.spec?.volumeName ?? ''}`
        : phase === 'Lost'
          ? `PersistentVolumeClaim ${name} lost its PersistentVolume ${claim.spec?.volumeName ?? ''}`
          : `PersistentVolumeClaim ${name} is Pending: ${condition ?? `no PersistentVolume bound yet (${storageClass} provisions one, or binds when the first pod uses it)`}`;
    return { phase, message: claim.metadata?.deletionTimestamp ? `PersistentVolumeClaim ${name} is being deleted` : message };
  }

  /** Pods of the namespace (Lapis's or not) that have not ended and mount the claim. */
  private async claimUsers(name: string): Promise<string[]> {
    const { core } = await this.client();
    const pods = await core.listNamespacedPod({ namespace: this.options.namespace });
    return pods.items
      .filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed')
      .filter((p) => p.spec?.volumes?.some((v) => v.persistentVolumeClaim?.claimName === name))
      .map((p) => p.metadata?.name ?? '');
  }

  /** Deletes the claim (refused while a pod uses it) and waits until it is gone. */
  private async deleteClaim(volumeId: string): Promise<void> {
    const { core } = await this.client();
    const namespace = this.options.namespace;
    const name = claimName(volumeId);
    const { phase } = await this.claimStatus(volumeId);
    if (phase === 'Missing') return;
    const usedBy = await this.claimUsers(name);
    if (usedBy.length) {
      throw failedPrecondition(
        `volume ${volumeId}: its PersistentVolumeClaim ${name} is used by pod ${usedBy.join(', ')}; delete the instance first`,
        'VOLUME_IN_USE',
      );
    }
    await core.deleteNamespacedPersistentVolumeClaim({ name, namespace }).catch((error: unknown) => {
      if (codeOf(error) !== 404) throw kubeError(error, `delete the PersistentVolumeClaim ${name}`);
    });
    if (!(await gone(() => core.readNamespacedPersistentVolumeClaim({ name, namespace }), 30_000))) {
      throw failedPrecondition(
        `PersistentVolumeClaim ${name} was not gone 30 s after its deletion (a pod still uses it?)`,
        'ENGINE_REFUSED',
      );
    }
  }

  private async listClaims(): Promise<Volume[]> {
    const { core } = await this.client();
    const claims = await core.listNamespacedPersistentVolumeClaim({ namespace: this.options.namespace, labelSelector: this.selector() });
    return claims.items
      .filter((c) => c.metadata?.annotations?.[KUBE_LABEL.volumeId] && !c.metadata.deletionTimestamp)
      .map((c) => {
        const a = c.metadata!.annotations!;
        return {
          id: a[KUBE_LABEL.volumeId]!,
          name: a[KUBE_LABEL.volumeName] ?? '',
          project: a[KUBE_LABEL.project] ?? '',
          sizeBytes: Number(a[KUBE_LABEL.sizeBytes] ?? 0) || 0,
          filesystem: 'ext4',
          node: this.node,
          state: VolumeState.CREATING,
          stateReason: '',
          attachment: undefined,
          labels: {},
          createTime: c.metadata?.creationTimestamp ? new Date(c.metadata.creationTimestamp) : new Date(),
        };
      });
  }

  private async readPod(name: string): Promise<k8s.V1Pod | undefined> {
    const { core } = await this.client();
    try {
      const pod = await core.readNamespacedPod({ name, namespace: this.options.namespace });
      return pod.metadata?.deletionTimestamp ? undefined : pod;
    } catch (error) {
      if (codeOf(error) === 404) return undefined;
      throw error;
    }
  }

  /** Deletes the pod (and its Secret) and waits until it is gone. */
  private async deletePod(name: string, graceS: number): Promise<void> {
    const { core } = await this.client();
    const namespace = this.options.namespace;
    this.deleting.add(name);
    try {
      await core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: graceS });
    } catch (error) {
      this.deleting.delete(name);
      if (codeOf(error) !== 404) throw kubeError(error, 'delete the pod');
    }
    await core.deleteNamespacedSecret({ name: `${name}-metadata`, namespace }).catch((error: unknown) => {
      if (codeOf(error) !== 404) this.log.warn({ pod: name, err: error }, "deleting the pod's Secret failed");
    });
    if (!(await gone(() => core.readNamespacedPod({ name, namespace }), (graceS + 30) * 1000))) {
      throw failedPrecondition(`pod ${name} was not gone ${graceS + 30} s after its deletion`, 'ENGINE_REFUSED');
    }
  }
}

function observe(pod: k8s.V1Pod): Observed {
  const phase = pod.status?.phase ?? 'Pending';
  const state = pod.status?.containerStatuses?.find((c) => c.name === CONTAINER)?.state;
  const terminated = state?.terminated;
  const status = { Pending: 'created', Running: 'running', Succeeded: 'exited', Failed: 'exited' }[phase] ?? phase.toLowerCase();
  return {
    backendId: pod.metadata?.name ?? '',
    instanceId: pod.metadata?.annotations?.[LABEL.instanceId] ?? '',
    labels: pod.metadata?.annotations ?? {},
    running: phase === 'Running',
    status,
    exitCode: terminated?.exitCode ?? (phase === 'Failed' ? 1 : 0),
    oomKilled: terminated?.reason === 'OOMKilled',
    error: (phase === 'Failed' || phase === 'Pending' ? (pod.status?.message ?? terminated?.message ?? terminated?.reason) : '') ?? '',
    addresses: pod.status?.podIP ? [{ network: pod.metadata?.namespace ?? '', ip: pod.status.podIP, mac: '' }] : [],
    ...(pod.status?.startTime ? { startedAt: new Date(pod.status.startTime) } : {}),
  };
}

function kubeError(error: unknown, action: string): Error {
  const body = (error as { body?: unknown }).body;
  let message = (error as Error).message;
  try {
    const parsed = (typeof body === 'string' ? JSON.parse(body) : body) as { message?: string } | undefined;
    if (parsed?.message) message = parsed.message;
  } catch {
    // keep the exception's message
  }
  return failedPrecondition(`Kubernetes could not ${action}: ${message}`, 'ENGINE_REFUSED');
}
