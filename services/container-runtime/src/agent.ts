// The node agent: instances and volumes of one node, kept in KV (compare-and-set), driven
// through a backend (Docker here), announced as events. gRPC handlers and the placement
// consumers both come here, so a placement and a direct call take the same path.
import { createHash, randomUUID } from 'node:crypto';
import {
  alreadyExists,
  BucketMirror,
  failedPrecondition,
  invalidArgument,
  LapisError,
  notFound,
  resourceExhausted,
  RetryLater,
  type EventBus,
  type HostPortRange,
  type Logger,
  type RunningConsumer,
  runtimeConsumers,
} from '@lapis/platform';
import {
  DeviceKind,
  InstanceState,
  type Flavor,
  type InstanceSpec,
  type NodeDevice,
  type Resources,
  Backend,
} from '@lapis/proto/lapis/common/v1/common';
import type { Event } from '@lapis/proto/lapis/events/v1/events';
import { InstanceSpec as InstanceSpecCodec } from '@lapis/proto/lapis/common/v1/common';
import { Instance as InstanceCodec, type Instance, type Node, NodeState, type Volume, type VolumeAttachment, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import type { ClaimStatus, EngineEvent, LogChunk, NodeStorage, Observed, RuntimeBackend } from './adapters/backend';
import type { ImageResolver } from './adapters/images';
import type { Store } from './adapters/store';
import { LABEL, secretsOf, withSecrets, type ContainerPlan } from './domain/container';
import { grantDevices, type NodeInventory } from './domain/devices';
import { checkDirectCreate, checkTenantResize, checkTenantRestart, type Scope } from './domain/door';
import { HOLDS_ROOM, requireState, stateName, TERMINAL } from './domain/states';
import { checkId, checkMountPath, checkResize, checkSpec, defaultMountPath } from './domain/validate';
import { LogFollows } from './log-follows';
import { assignHostPorts, heldHostPorts } from './domain/ports';
import { instanceSecurity } from './domain/security';

export type { Scope };

export interface AgentSettings {
  node: string;
  partition: string;
  capacity: Resources;
  inventory: NodeInventory;
  heartbeatMs: number;
  stopTimeoutS: number;
  minVolumeBytes: number;
  maxVolumeBytes: number;
  /** Host ports instances may publish (LAPIS_HOST_PORTS); undefined: none. */
  hostPorts?: HostPortRange;
  /** Address host ports are bound to (LAPIS_HOST_PORT_ADDRESS). */
  hostPortAddress: string;
  /** Most a project's volumes on this node add up to; 0 = no limit. */
  maxProjectVolumeBytes?: number;
}

export interface AgentDeps {
  bus: EventBus;
  store: Store;
  backend: RuntimeBackend;
  host: NodeStorage;
  images: ImageResolver;
  flavors: readonly Flavor[];
  log: Logger;
}

export interface CreateInstanceInput {
  id: string;
  project: string;
  user: string;
  spec: InstanceSpec | undefined;
  preemptible: boolean;
  requestId: string;
  attempt: number;
}

const now = () => new Date();
const HOST_PORTS_LOCK = 'host-ports';
/** Placements, cancellations and preemptions handled at once by one node agent. */
const PARALLEL_EVENTS = 8;

/** Serializes work per key (an instance, a volume). */
class KeyedLocks {
  private readonly tails = new Map<string, Promise<unknown>>();
  async with<T>(keys: string[], work: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    const previous = sorted.map((k) => this.tails.get(k) ?? Promise.resolve());
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    for (const key of sorted) this.tails.set(key, mine);
    await Promise.all(previous.map((p) => p.catch(() => undefined)));
    try {
      return await work();
    } finally {
      release();
      for (const key of sorted) if (this.tails.get(key) === mine) this.tails.delete(key);
    }
  }
}

export class Agent {
  readonly node: string;
  private readonly locks = new KeyedLocks();
  /** Instances whose container Lapis itself is stopping or removing: their "die" is expected. */
  private readonly quiet = new Set<string>();
  private readonly oomKilled = new Set<string>();
  private consumers: RunningConsumer[] = [];
  private unwatch?: () => void;
  private heartbeatTimer?: NodeJS.Timeout;
  private heartbeatSoon?: NodeJS.Timeout;
  private readonly background = new Set<Promise<unknown>>();
  private stopped = false;
  private readonly index: BucketMirror<Instance>;
  private cachedImages: { at: number; digests: string[] } = { at: 0, digests: [] };
  /** One engine log stream per followed instance (where the backend can follow logs). */
  readonly logFollows?: LogFollows;

  constructor(
    readonly settings: AgentSettings,
    private readonly deps: AgentDeps,
  ) {
    this.node = settings.node;
    this.index = new BucketMirror(deps.store.instances, (bytes) => InstanceCodec.decode(bytes));
    if (deps.backend.followLogs) this.logFollows = new LogFollows(deps.backend, deps.backend.followLogs.bind(deps.backend));
  }

  get store(): Store {
    return this.deps.store;
  }

  /** Reconciles with the engine and the host, then takes placements and watches the engine. */
  async start(options: { consume?: boolean } = {}): Promise<void> {
    await this.deps.host.init();
    await this.index.start();
    this.unwatch = this.deps.backend.watch((event) => this.track(this.onEngineEvent(event)));
    await this.reconcile();
    if (options.consume !== false) await this.startConsumers();
    await this.heartbeat();
    this.heartbeatTimer = setInterval(() => {
      this.track(this.heartbeat());
      if (this.deps.backend.claims) this.track(this.refreshPendingVolumes());
    }, this.settings.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  /** Stops taking work; instances, volumes and mounts stay as they are (a restart adopts them). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.heartbeatSoon);
    await Promise.all(this.consumers.map((c) => c.stop()));
    this.consumers = [];
    this.unwatch?.();
    this.index.stop();
    await Promise.all([...this.background].map((p) => p.catch(() => undefined)));
  }

  private track(promise: Promise<unknown>): void {
    const p = promise.catch((error) => this.deps.log.error({ err: error }, 'background work failed'));
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }

  // ---------------------------------------------------------------- placements

  private async startConsumers(): Promise<void> {
    const { bus } = this.deps;
    // The names NATS permissions are made from (platform nats/access.ts).
    const own = runtimeConsumers(this.node);
    // Instances are made and removed side by side (a slow image pull or a grace period holds up
    // no other instance); the events of one instance stay in order.
    const byInstance = (e: Event) => {
      const p = e.payload;
      return p?.$case === 'claimPlaced' ? p.claimPlaced.claimId : p?.$case === 'claimCancelled' ? p.claimCancelled.claimId : p?.$case === 'preemptionNotice' ? p.preemptionNotice.instanceId : '';
    };
    const parallel = { limit: PARALLEL_EVENTS, key: byInstance };
    this.consumers.push(
      await bus.consume({ ...own.placed, handler: (e) => this.onPlaced(e), ackWaitMs: 120_000, parallel }),
      await bus.consume({ ...own.cancelled, handler: (e) => this.onCancelled(e), parallel }),
      await bus.consume({ ...own.preempt, handler: (e, d) => this.onPreempt(e, d.working), ackWaitMs: 60_000, parallel }),
    );
  }

  private async onPlaced(event: Event): Promise<void> {
    if (event.payload?.$case !== 'claimPlaced') return;
    const placed = event.payload.claimPlaced;
    const input: CreateInstanceInput = {
      id: placed.claimId,
      project: placed.project,
      user: placed.user,
      spec: placed.spec,
      preemptible: placed.preemptible,
      requestId: placed.requestId || `${placed.claimId}.${placed.attempt}`,
      attempt: placed.attempt || 1,
    };
    try {
      await this.createInstance(input, { user: placed.user, project: placed.project, admin: true });
    } catch (error) {
      if (!(error instanceof LapisError)) throw new RetryLater(`placement ${placed.claimId}: ${(error as Error).message}`, 2_000);
      if (error.code === 14 /* UNAVAILABLE */) throw new RetryLater(error.message, 2_000);
      // A placement that cannot run: the instance is recorded as ERROR so the scheduler frees its room.
      await this.recordRejected(input, error.message);
    }
  }

  private async onCancelled(event: Event): Promise<void> {
    if (event.payload?.$case !== 'claimCancelled') return;
    const { claimId } = event.payload.claimCancelled;
    const current = await this.store.instances.get(claimId);
    if (!current || current.value.node !== this.node || TERMINAL.has(current.value.state)) return;
    await this.deleteInstance(claimId, this.settings.stopTimeoutS, '', adminScope);
  }

  private async onPreempt(event: Event, working: () => void): Promise<void> {
    if (event.payload?.$case !== 'preemptionNotice') return;
    const notice = event.payload.preemptionNotice;
    const current = await this.store.instances.get(notice.instanceId);
    if (!current || current.value.node !== this.node || TERMINAL.has(current.value.state)) return;
    const graceS = Math.max(0, (notice.gracePeriod?.seconds ?? 0) + Math.round((notice.gracePeriod?.nanos ?? 0) / 1e9));
    const ticker = setInterval(working, 10_000);
    try {
      await this.teardown(notice.instanceId, graceS, InstanceState.PREEMPTED, `preempted for claim ${notice.forClaimId}`);
    } finally {
      clearInterval(ticker);
    }
  }

  private async recordRejected(input: CreateInstanceInput, reason: string): Promise<void> {
    const existing = await this.store.instances.get(input.id);
    if (existing && !TERMINAL.has(existing.value.state) && existing.value.state !== InstanceState.ERROR) return;
    const instance = this.newInstance(input, '', { cpuMillis: 0, memoryBytes: 0, gpus: 0, pids: 0, diskBytes: 0 });
    instance.state = InstanceState.ERROR;
    instance.stateReason = reason;
    instance.generation = (existing?.value.generation ?? 0) + 1;
    await this.write(instance, existing?.revision);
    await this.announce(instance, existing?.value.state ?? InstanceState.SCHEDULED);
  }

  // ---------------------------------------------------------------- instances

  private newInstance(input: CreateInstanceInput, digest: string, resources: Resources): Instance {
    const spec = input.spec!;
    return {
      id: input.id,
      project: input.project,
      user: input.user,
      spec: { ...spec, resources },
      placedResources: resources,
      imageDigest: digest,
      node: this.node,
      backend: this.deps.backend.kind,
      state: InstanceState.CREATING,
      stateReason: '',
      addresses: [],
      volumeAttachments: [],
      devices: [],
      preemptible: input.preemptible,
      requestId: input.requestId,
      createTime: now(),
      startTime: undefined,
      updateTime: now(),
      backendId: '',
      exitCode: 0,
      generation: 1,
      attempt: input.attempt,
    };
  }

  async createInstance(input: CreateInstanceInput, scope: Scope): Promise<Instance> {
    // Placements come with an admin scope; a direct call only from an admin or a service. So no
    // tenant ever names an instance, and a taken id tells no tenant what another project has.
    checkDirectCreate(scope);
    if (!input.id) input.id = `i-${randomUUID().replace(/-/g, '').slice(0, 20)}`;
    const idProblems = checkId(input.id, 'instance_id');
    if (idProblems.length) throw invalidArgument(idProblems);
    if (input.requestId) {
      const earlier = await this.findRequest('CreateInstance', scope, input.requestId);
      if (earlier) {
        const instance = await this.store.instances.get(earlier);
        if (instance) return instance.value;
      }
    }
    const { resources, flavor } = checkSpec(input.spec, this.deps.flavors, this.settings.hostPorts);
    const spec = input.spec!;
    // Creates that publish host ports go one at a time, so two cannot both see a port free.
    return this.locks.with([`i:${input.id}`, ...(spec.ports.length ? [HOST_PORTS_LOCK] : [])], async () => {
      const existing = await this.store.instances.get(input.id);
      if (existing) {
        const e = existing.value;
        if (input.requestId && e.requestId === input.requestId && e.attempt === input.attempt) return e;
        const replaceable = TERMINAL.has(e.state) || (e.state === InstanceState.ERROR && !e.backendId);
        if (!replaceable || input.attempt <= e.attempt) {
          throw alreadyExists(`instance ${input.id} already exists (${stateName(e.state)})`, 'INSTANCE_EXISTS');
        }
      }
      const sameName = (await this.listAll()).find(
        (i) => i.project === input.project && i.spec?.name === spec.name && i.id !== input.id && !TERMINAL.has(i.state),
      );
      if (sameName) throw alreadyExists(`project ${input.project} already has an instance named "${spec.name}" (${sameName.id})`, 'NAME_TAKEN');
      // Everything that can be refused is checked before anything is made.
      const image = await this.deps.images.resolve(spec.image);
      const imageId = await this.deps.backend.localImage(image.reference, image.digest);
      const requests = [...(this.deps.flavors.find((f) => f.name === spec.flavor)?.devices ?? []), ...spec.devices];
      const taken = new Set((await this.listAll()).filter((i) => i.node === this.node && HOLDS_ROOM.has(i.state)).flatMap((i) => i.devices.map((d) => d.id)));
      const grant = grantDevices(input.id, requests, this.settings.inventory, taken);
      const ports = spec.ports.length ? assignHostPorts(spec.ports, this.settings.hostPorts, await this.heldHostPorts(input.id)) : [];
      const mounts = await this.checkInitialVolumes(spec, input.project);

      const instance = this.newInstance({ ...input, spec: { ...spec, ports } }, image.digest || imageId, resources);
      instance.devices = grant.devices;
      instance.generation = (existing?.value.generation ?? 0) + 1;
      let revision = await this.write(instance, existing?.revision).catch((error) => {
        throw alreadyExists(`instance ${input.id} already exists: ${(error as Error).message}`, 'INSTANCE_EXISTS');
      });
      if (input.requestId) await this.rememberRequest('CreateInstance', scope, input.requestId, input.id);
      await this.announce(instance, existing?.value.state ?? InstanceState.SCHEDULED);
      try {
        const network = await this.deps.backend.ensureNetwork(input.project);
        const dirs = await this.instanceDirs(instance);
        // Engine-kept volumes (PVCs) are given to the workload when it is made; block files after it runs.
        const claims = !!this.deps.backend.claims;
        if (claims) {
          for (const mount of mounts) instance.volumeAttachments.push(await this.mountVolume(mount.volume, instance, mount.mountPath, mount.readOnly));
        }
        const security = instanceSecurity(flavor, grant.capAdd);
        instance.backendId = await this.deps.backend.create({ instance, resources, image: imageId, grant, ...dirs, network, volumes: planVolumes(instance), security, hostIp: this.settings.hostPortAddress });
        revision = await this.write(instance, revision);
        await this.deps.backend.start(instance.backendId);
        const observed = await this.deps.backend.inspect(instance.backendId);
        if (!observed?.running) throw failedPrecondition(`container of ${input.id} stopped at once: ${observed?.error || `exit code ${observed?.exitCode}`}`, 'START_FAILED');
        if (!claims) {
          for (const mount of mounts) {
            const attachment = await this.mountVolume(mount.volume, instance, mount.mountPath, mount.readOnly);
            instance.volumeAttachments.push(attachment);
          }
        }
        Object.assign(instance, {
          state: InstanceState.RUNNING,
          addresses: observed.addresses,
          startTime: observed.startedAt ?? now(),
          updateTime: now(),
          generation: instance.generation + 1,
        });
        await this.write(instance, revision);
        await this.announce(instance, InstanceState.CREATING);
        return instance;
      } catch (error) {
        const reason = error instanceof LapisError ? error.message : `creating the container failed: ${(error as Error).message}`;
        this.deps.log.warn({ instance: input.id, err: (error as Error).message }, 'create failed; cleaning up');
        await this.cleanup(instance).catch((e) => this.deps.log.error({ err: e }, 'cleanup after a failed create failed'));
        await this.setState(input.id, (i) => {
          i.state = InstanceState.ERROR;
          i.stateReason = reason;
          i.backendId = '';
          i.volumeAttachments = [];
          i.addresses = [];
        });
        if (error instanceof LapisError) throw error;
        throw failedPrecondition(reason, 'CREATE_FAILED');
      }
    });
  }

  /** Host ports the node's other instances hold: every one not gone (a stopped container keeps its ports). */
  private async heldHostPorts(except: string): Promise<Set<string>> {
    const holders = (await this.listAll()).filter((i) => i.id !== except && i.node === this.node && !TERMINAL.has(i.state) && !(i.state === InstanceState.ERROR && !i.backendId));
    return new Set(holders.flatMap((i) => heldHostPorts(i.spec?.ports ?? [])));
  }

  private async checkInitialVolumes(spec: InstanceSpec, project: string) {
    const result: Array<{ volume: Volume; mountPath: string; readOnly: boolean }> = [];
    const refusal = this.deps.backend.volumeAttachRefusal;
    if (refusal && !this.deps.backend.claims && spec.volumes.length) {
      throw failedPrecondition(`spec.volumes: this node's backend does not take Lapis volumes; ${refusal}`, 'VOLUMES_NOT_SUPPORTED');
    }
    for (const [i, m] of spec.volumes.entries()) {
      let volume = (await this.store.volumes.get(m.volumeId))?.value;
      if (!volume || volume.project !== project || volume.state === VolumeState.DELETING) {
        throw notFound(`spec.volumes[${i}]: volume ${m.volumeId} not found in project ${project}`, 'VOLUME_NOT_FOUND');
      }
      volume = await this.refreshVolume(volume);
      this.checkAttachable(volume, this.node);
      const mountPath = m.mountPath || defaultMountPath(volume.id);
      if (result.some((r) => r.volume.id === volume!.id)) throw invalidArgument([{ field: `spec.volumes[${i}].volume_id`, description: `volume ${volume.id} is named twice` }]);
      if (result.some((r) => r.mountPath === mountPath)) throw invalidArgument([{ field: `spec.volumes[${i}].mount_path`, description: `two volumes at ${mountPath}` }]);
      result.push({ volume, mountPath, readOnly: m.readOnly });
    }
    return result;
  }

  /** Removes everything an instance has on the node: volumes detached, container, mounts, network. */
  private async cleanup(instance: Instance): Promise<void> {
    // Block files are unmounted before the container goes; claims are released after the pod is gone.
    const claims = !!this.deps.backend.claims;
    if (!claims) await this.releaseVolumes(instance);
    this.quiet.add(instance.id);
    try {
      const containers = (await this.deps.backend.list()).filter((o) => o.instanceId === instance.id);
      for (const c of containers) await this.deps.backend.remove(c.backendId);
      if (instance.backendId) await this.deps.backend.remove(instance.backendId);
    } finally {
      setTimeout(() => this.quiet.delete(instance.id), 2_000).unref();
    }
    if (claims) await this.releaseVolumes(instance);
    else await this.deps.host.releaseInstance(instance.id);
    const others = (await this.listAll()).some((i) => i.id !== instance.id && i.project === instance.project && i.node === this.node && i.backendId && !TERMINAL.has(i.state));
    if (!others) await this.deps.backend.releaseNetwork(instance.project);
  }

  /**
   * The instance's mount point and metadata directory on the node. An engine that keeps volumes
   * itself (Pods, PVCs; the agent a non-root Deployment) needs neither: nothing is made or mounted.
   */
  private async instanceDirs(instance: Instance): Promise<{ mountDir: string; metadataDir: string }> {
    if (this.deps.backend.claims) return { mountDir: '', metadataDir: '' };
    return this.deps.host.prepareInstance(instance.id, metadataFiles(instance), InstanceSpecCodec.encode(secretsOf(instance.spec!)).finish());
  }

  private async releaseVolumes(instance: Instance): Promise<void> {
    for (const attachment of instance.volumeAttachments) await this.unmountVolume(attachment.volumeId, instance.id);
    // Volumes whose record says attached here but the instance record does not list (a crash between writes).
    for (const v of await this.volumesAttachedTo(instance.id)) await this.unmountVolume(v.id, instance.id);
  }

  async getInstance(id: string, scope: Scope): Promise<Instance> {
    const found = await this.store.instances.get(id);
    if (!found || !visible(found.value.project, scope)) throw notFound(`instance ${id} not found`, 'INSTANCE_NOT_FOUND');
    return found.value;
  }

  async listInstances(scope: Scope, filter: { project: string; state: InstanceState; node: string }): Promise<Instance[]> {
    const project = scope.admin ? filter.project : scope.project;
    return (await this.listAll())
      .filter((i) => (!project || i.project === project) && (!filter.node || i.node === filter.node))
      .filter((i) => (filter.state ? i.state === filter.state : i.state !== InstanceState.DELETED))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  private async listAll(): Promise<Instance[]> {
    return this.index.values();
  }

  /** Writes an instance with compare-and-set (create when `revision` is undefined) and notes it in the index. */
  private async write(instance: Instance, revision: number | undefined): Promise<number> {
    const next = revision === undefined ? await this.store.instances.create(instance.id, instance) : await this.store.instances.update(instance.id, instance, revision);
    this.index.note(instance.id, structuredClone(instance), next);
    return next;
  }

  /** The instance of this node, in scope, locked; replays a mutation already done under the request id. */
  private async mutation(
    method: string,
    id: string,
    requestId: string,
    scope: Scope,
    work: (instance: Instance) => Promise<Instance>,
  ): Promise<Instance> {
    if (requestId && (await this.findRequest(method, scope, requestId)) === id) return this.getInstance(id, scope);
    return this.locks.with([`i:${id}`], async () => {
      const instance = await this.getInstance(id, scope);
      if (instance.node !== this.node) {
        throw failedPrecondition(`instance ${id} runs on node ${instance.node}; this is node ${this.node}`, 'WRONG_NODE', { node: instance.node });
      }
      const result = await work(instance);
      if (requestId) await this.rememberRequest(method, scope, requestId, id);
      return result;
    });
  }

  async startInstance(id: string, requestId: string, scope: Scope): Promise<Instance> {
    return this.mutation('StartInstance', id, requestId, scope, async (instance) => {
      if (instance.state === InstanceState.RUNNING) return instance;
      requireState('start', id, instance.state, [InstanceState.STOPPED, InstanceState.ERROR]);
      checkTenantRestart(scope, 'start', id, instance.state);
      if (!instance.backendId) throw failedPrecondition(`instance ${id} has no container (${instance.stateReason}); delete it`, 'NO_CONTAINER');
      if (this.deps.backend.recreates) return this.remake(instance, 'start', this.settings.stopTimeoutS, instance.spec!, 'started');
      await this.deps.backend.start(instance.backendId);
      return this.observe(id, 'started');
    });
  }

  async stopInstance(id: string, timeoutS: number, requestId: string, scope: Scope): Promise<Instance> {
    return this.mutation('StopInstance', id, requestId, scope, async (instance) => {
      if (instance.state === InstanceState.STOPPED) return instance;
      requireState('stop', id, instance.state, [InstanceState.RUNNING, InstanceState.ERROR]);
      this.quiet.add(id);
      try {
        await this.deps.backend.stop(instance.backendId, timeoutS);
        const observed = await this.deps.backend.inspect(instance.backendId);
        return await this.setState(id, (i) => {
          i.state = InstanceState.STOPPED;
          i.stateReason = 'stopped';
          i.exitCode = observed?.exitCode ?? 0;
        });
      } finally {
        this.quiet.delete(id);
      }
    });
  }

  async rebootInstance(id: string, timeoutS: number, requestId: string, scope: Scope): Promise<Instance> {
    return this.mutation('RebootInstance', id, requestId, scope, async (instance) => {
      requireState('reboot', id, instance.state, [InstanceState.RUNNING, InstanceState.STOPPED, InstanceState.ERROR]);
      checkTenantRestart(scope, 'reboot', id, instance.state);
      if (this.deps.backend.recreates) {
        if (!instance.backendId) throw failedPrecondition(`instance ${id} has no container (${instance.stateReason}); delete it`, 'NO_CONTAINER');
        return this.remake(instance, 'reboot', timeoutS, instance.spec!, 'rebooted');
      }
      this.quiet.add(id);
      try {
        await this.deps.backend.restart(instance.backendId, timeoutS);
        return await this.observe(id, 'rebooted');
      } finally {
        this.quiet.delete(id);
      }
    });
  }

  async resizeInstance(id: string, flavor: string, resources: Resources | undefined, requestId: string, scope: Scope): Promise<Instance> {
    return this.mutation('ResizeInstance', id, requestId, scope, async (instance) => {
      requireState('resize', id, instance.state, [InstanceState.RUNNING, InstanceState.STOPPED]);
      const next = checkResize(flavor, resources, this.deps.flavors, instance.spec!.resources!);
      checkTenantResize(scope, id, next, instance.placedResources, instance.spec!.resources!);
      if (this.deps.backend.recreates && instance.state === InstanceState.RUNNING) {
        return this.remake(instance, 'resize', this.settings.stopTimeoutS, { ...instance.spec!, resources: next, ...(flavor ? { flavor } : {}) }, `resized to ${flavor || 'new resources'}`);
      }
      // A stopped pod-backed instance has no pod: the next start makes it with the new resources.
      if (!this.deps.backend.recreates) await this.deps.backend.resize(instance.backendId, next);
      return this.setState(
        id,
        (i) => {
          i.spec = { ...i.spec!, resources: next, ...(flavor ? { flavor } : {}) };
        },
        { announceAlways: true },
      );
    });
  }

  /**
   * For engines that cannot change a workload in place (Pods): deletes the instance's workload
   * (grace `timeoutS`) and makes it anew from the record with `spec`: same id, volumes and
   * devices. Each step is a state change with its event (STOPPED, then RUNNING with the
   * generation bumped). When the new one cannot run, a resize makes the old spec again (and
   * answers FAILED_PRECONDITION); otherwise the instance is ERROR (which ends its claim), and
   * an admin's StartInstance tries again.
   */
  private async remake(instance: Instance, action: string, timeoutS: number, spec: InstanceSpec, reason: string): Promise<Instance> {
    const { backend } = this.deps;
    const id = instance.id;
    this.quiet.add(id);
    try {
      if (instance.backendId && (await backend.inspect(instance.backendId))) {
        await backend.stop(instance.backendId, timeoutS);
        if (instance.state !== InstanceState.STOPPED) {
          await this.setState(id, (i) => {
            i.state = InstanceState.STOPPED;
            i.stateReason = `${action}: the pod is deleted and made anew`;
            i.addresses = [];
          });
        }
      }
      try {
        return await this.makeWorkload(id, spec, reason);
      } catch (error) {
        const why = (error as Error).message;
        if (action === 'resize') {
          const old = await this.makeWorkload(id, instance.spec!, `${action} failed, runs with its previous resources: ${why}`).catch(() => undefined);
          if (old) throw failedPrecondition(`cannot resize instance ${id}: ${why}; it runs again with its previous resources`, 'RESIZE_FAILED');
        }
        await this.setState(id, (i) => {
          i.state = InstanceState.ERROR;
          i.stateReason = `${action} failed: ${why}`;
          i.addresses = [];
        });
        if (error instanceof LapisError) throw error;
        throw failedPrecondition(`cannot ${action} instance ${id}: ${why}`, 'START_FAILED');
      }
    } finally {
      setTimeout(() => this.quiet.delete(id), 2_000).unref();
    }
  }

  /** Creates the instance's workload from its record with `spec`, waits until it runs, records RUNNING. */
  private async makeWorkload(id: string, spec: InstanceSpec, reason: string): Promise<Instance> {
    const { backend } = this.deps;
    const current = (await this.store.instances.get(id))!.value;
    const plan = await this.planFor({ ...current, spec });
    const backendId = await backend.create(plan);
    try {
      await backend.start(backendId);
      const observed = await backend.inspect(backendId);
      if (!observed?.running) throw failedPrecondition(`the new pod of ${id} stopped at once: ${observed?.error || `exit code ${observed?.exitCode}`}`, 'START_FAILED');
      return await this.setState(
        id,
        (i) => {
          i.spec = spec;
          i.backendId = backendId;
          applyObserved(i, observed, reason, false);
        },
        { announceAlways: true },
      );
    } catch (error) {
      this.quiet.add(id);
      await backend.remove(backendId).catch((e: Error) => this.deps.log.warn({ instance: id, err: e.message }, 'removing a workload that did not start failed'));
      throw error;
    }
  }

  /** What the engine needs to make the instance's workload again: image by the recorded digest, its volumes. */
  private async planFor(instance: Instance): Promise<ContainerPlan> {
    const spec = instance.spec!;
    const image = await this.deps.images.resolve(spec.image);
    const digest = instance.imageDigest.startsWith('sha256:') ? instance.imageDigest : image.digest;
    return {
      instance,
      resources: spec.resources!,
      image: await this.deps.backend.localImage(image.reference, digest),
      grant: { gpuRequests: [], cdiNames: [], paths: [], capAdd: [], devices: instance.devices },
      ...(await this.instanceDirs(instance)),
      network: await this.deps.backend.ensureNetwork(instance.project),
      volumes: planVolumes(instance),
      // The flavor as the site defines it now, and IPC_LOCK where InfiniBand was granted.
      security: instanceSecurity(
        this.deps.flavors.find((f) => f.name === spec.flavor),
        instance.devices.some((d) => d.kind === DeviceKind.INFINIBAND) ? ['IPC_LOCK'] : [],
      ),
      hostIp: this.settings.hostPortAddress,
    };
  }

  async deleteInstance(id: string, timeoutS: number, requestId: string, scope: Scope): Promise<Instance> {
    const current = await this.getInstance(id, scope);
    // Deleted or preempted: nothing of it is left on the node; deleting it again changes nothing.
    if (TERMINAL.has(current.state)) return current;
    return this.mutation('DeleteInstance', id, requestId, scope, async (instance) => {
      if (TERMINAL.has(instance.state)) return instance;
      requireState('delete', id, instance.state, [InstanceState.RUNNING, InstanceState.STOPPED, InstanceState.ERROR, InstanceState.CREATING]);
      return this.teardownLocked(instance, timeoutS, InstanceState.DELETED, 'deleted');
    });
  }

  private async teardown(id: string, timeoutS: number, state: InstanceState, reason: string): Promise<Instance> {
    return this.locks.with([`i:${id}`], async () => {
      const instance = (await this.store.instances.get(id))!.value;
      if (TERMINAL.has(instance.state)) return instance;
      return this.teardownLocked(instance, timeoutS, state, reason);
    });
  }

  /** Stops gracefully (SIGTERM, then kill after the timeout), removes everything, records `state`. */
  private async teardownLocked(instance: Instance, timeoutS: number, state: InstanceState, reason: string): Promise<Instance> {
    this.quiet.add(instance.id);
    if (instance.backendId && (await this.deps.backend.inspect(instance.backendId))?.running) {
      await this.deps.backend.stop(instance.backendId, timeoutS);
    }
    await this.cleanup(instance);
    return this.setState(instance.id, (i) => {
      i.state = state;
      i.stateReason = reason;
      i.addresses = [];
      i.volumeAttachments = [];
      i.devices = i.devices.map((d) => ({ ...d, allocatedTo: '' }));
    });
  }

  /** Reads the container and records RUNNING/STOPPED/ERROR from it. */
  private async observe(id: string, reason: string): Promise<Instance> {
    const instance = (await this.store.instances.get(id))!.value;
    const observed = instance.backendId ? await this.deps.backend.inspect(instance.backendId) : undefined;
    return this.setState(id, (i) => applyObserved(i, observed, reason, this.oomKilled.has(id)));
  }

  /** Read-modify-write of an instance; announces the change when the state moved. */
  private async setState(id: string, change: (instance: Instance) => void, options: { announceAlways?: boolean } = {}): Promise<Instance> {
    let previous = InstanceState.UNSPECIFIED;
    let changed = false;
    const result = await this.store.instances.mutate(id, (current) => {
      if (!current) return undefined;
      previous = current.state;
      const next = { ...current, spec: current.spec ? { ...current.spec } : undefined };
      change(next);
      changed = next.state !== previous || !!options.announceAlways;
      next.updateTime = now();
      if (changed) next.generation = current.generation + 1;
      return next;
    });
    if (!result) throw notFound(`instance ${id} not found`, 'INSTANCE_NOT_FOUND');
    this.index.note(id, structuredClone(result.value), result.revision);
    if (changed) await this.announce(result.value, previous);
    return result.value;
  }

  private async announce(instance: Instance, previous: InstanceState): Promise<void> {
    const id = `${instance.id}.${stateName(instance.state)}.${instance.generation}`;
    const payload = {
      $case: 'instanceStateChanged' as const,
      instanceStateChanged: {
        instanceId: instance.id,
        project: instance.project,
        node: instance.node,
        state: instance.state,
        previousState: previous,
        reason: instance.stateReason,
        addresses: instance.addresses,
        exitCode: instance.exitCode,
        resources: instance.spec?.resources,
      },
    };
    for (let attempt = 1; ; attempt++) {
      try {
        await this.deps.bus.publish(payload, instance.id, id);
        break;
      } catch (error) {
        if (attempt >= 3) {
          this.deps.log.error({ err: error, event: id }, 'instance event not published');
          break;
        }
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
    this.heartbeatLater();
  }

  async *logs(id: string, options: { follow: boolean; tailLines: number; since?: Date; signal: AbortSignal }, scope: Scope): AsyncIterable<LogChunk> {
    const instance = await this.getInstance(id, scope);
    if (instance.node !== this.node) throw failedPrecondition(`instance ${id} runs on node ${instance.node}; this is node ${this.node}`, 'WRONG_NODE');
    if (!instance.backendId) throw failedPrecondition(`instance ${id} has no container (${stateName(instance.state)})`, 'NO_CONTAINER');
    if (options.follow && this.logFollows) yield* this.logFollows.follow(instance.backendId, options);
    else yield* this.deps.backend.logs(instance.backendId, options);
  }

  // ---------------------------------------------------------------- engine events

  private async onEngineEvent(event: EngineEvent): Promise<void> {
    if (this.stopped) return;
    if (event.action === 'oom') {
      this.oomKilled.add(event.instanceId);
      return;
    }
    if (this.quiet.has(event.instanceId)) return;
    await this.locks.with([`i:${event.instanceId}`], async () => {
      if (this.quiet.has(event.instanceId)) return;
      const current = (await this.store.instances.get(event.instanceId))?.value;
      if (!current || current.node !== this.node || current.backendId !== event.backendId) return;
      if (event.action === 'destroy') {
        if (!TERMINAL.has(current.state)) {
          await this.setState(current.id, (i) => {
            i.state = InstanceState.ERROR;
            i.stateReason = 'container removed outside Lapis';
            i.backendId = '';
            i.addresses = [];
          });
        }
        return;
      }
      if (event.action === 'die' && (current.state === InstanceState.RUNNING || current.state === InstanceState.ERROR)) {
        const oom = this.oomKilled.delete(current.id);
        const observed = await this.deps.backend.inspect(event.backendId);
        const exitCode = event.exitCode ?? observed?.exitCode ?? 0;
        await this.setState(current.id, (i) => {
          i.exitCode = exitCode;
          if (oom || observed?.oomKilled) {
            i.state = InstanceState.ERROR;
            i.stateReason = 'OOMKilled';
          } else if (exitCode !== 0) {
            i.state = InstanceState.ERROR;
            i.stateReason = `exited with code ${exitCode}`;
          } else {
            i.state = InstanceState.STOPPED;
            i.stateReason = 'exited with code 0';
          }
        });
      } else if (event.action === 'start' && (current.state === InstanceState.ERROR || current.state === InstanceState.STOPPED)) {
        const observed = await this.deps.backend.inspect(event.backendId);
        if (observed?.running) await this.setState(current.id, (i) => applyObserved(i, observed, 'restarted', false));
      }
    });
  }

  // ---------------------------------------------------------------- volumes

  async createVolume(input: { name: string; sizeBytes: number; filesystem: string; node: string; labels: Record<string, string>; requestId: string }, scope: Scope): Promise<Volume> {
    if (input.requestId) {
      const earlier = await this.findRequest('CreateVolume', scope, input.requestId);
      const volume = earlier ? await this.store.volumes.get(earlier) : undefined;
      if (volume) return volume.value;
    }
    const v = [] as Array<{ field: string; description: string }>;
    if (!/^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/.test(input.name)) v.push({ field: 'name', description: `"${input.name}" is not a valid name: lower case letters, digits, ".", "-", "_", 1 to 63 characters` });
    const filesystem = input.filesystem || 'ext4';
    if (filesystem !== 'ext4') v.push({ field: 'filesystem', description: `"${filesystem}" is not supported; use ext4` });
    if (input.sizeBytes < this.settings.minVolumeBytes) v.push({ field: 'size_bytes', description: `${input.sizeBytes} is too small; at least ${this.settings.minVolumeBytes}` });
    if (input.sizeBytes > this.settings.maxVolumeBytes) v.push({ field: 'size_bytes', description: `${input.sizeBytes} is larger than the largest volume this node makes (${this.settings.maxVolumeBytes})` });
    if (v.length) throw invalidArgument(v);
    if (input.node && input.node !== this.node) throw failedPrecondition(`this agent serves node ${this.node}, not ${input.node}: ask that node's agent`, 'WRONG_NODE');
    const { claims } = this.deps.backend;
    // Claims: the cluster's storage (and its quotas) decides, not this node's disk.
    const free = claims ? Infinity : await this.deps.host.freeBytes();
    if (input.sizeBytes > free) throw resourceExhausted(`size_bytes ${input.sizeBytes} is more than the ${free} bytes free on node ${this.node}`, 'DISK_FULL');
    // One project's creates one at a time, so two cannot both pass the name and size checks.
    const made = await this.locks.with([`volumes:${scope.project}`], async () => {
      const mine = (await this.store.volumes.list()).filter((e) => e.value.project === scope.project).map((e) => e.value);
      if (mine.some((m) => m.name === input.name)) throw alreadyExists(`project ${scope.project} already has a volume named "${input.name}"`, 'NAME_TAKEN');
      // Volumes are outside the scheduler's quotas: this bounds what a project holds on the node.
      const limit = this.settings.maxProjectVolumeBytes ?? 0;
      const held = mine.filter((m) => m.node === this.node).reduce((sum, m) => sum + m.sizeBytes, 0);
      if (limit && held + input.sizeBytes > limit) {
        throw resourceExhausted(
          `project ${scope.project} has ${held} bytes of volumes on node ${this.node}; ${input.sizeBytes} more would pass its limit of ${limit}: delete volumes it no longer needs`,
          'VOLUME_QUOTA',
        );
      }
      const volume: Volume = {
        id: `vol-${randomUUID().replace(/-/g, '').slice(0, 16)}`,
        name: input.name,
        project: scope.project,
        sizeBytes: input.sizeBytes,
        filesystem,
        node: this.node,
        state: VolumeState.CREATING,
        stateReason: '',
        attachment: undefined,
        labels: input.labels,
        createTime: now(),
      };
      return { volume, revision: await this.store.volumes.create(volume.id, volume) };
    });
    const { volume, revision } = made;
    this.creatingVolumes.add(volume.id);
    try {
      return await this.makeVolume(volume, revision, input.requestId, scope);
    } finally {
      this.creatingVolumes.delete(volume.id);
    }
  }

  /** Volumes being made by CreateVolume: their claim may not exist yet, so no refresh reads it. */
  private readonly creatingVolumes = new Set<string>();

  private async makeVolume(volume: Volume, revision: number, requestId: string, scope: Scope): Promise<Volume> {
    const { claims } = this.deps.backend;
    try {
      if (claims) await claims.create(volume);
      else await this.deps.host.createVolumeFile(volume.id, volume.sizeBytes, volume.filesystem);
    } catch (error) {
      await this.store.volumes.delete(volume.id);
      if (error instanceof LapisError && error.code !== 9 /* FAILED_PRECONDITION */) throw error;
      throw failedPrecondition(`cannot make volume ${volume.name}: ${(error as Error).message}`, 'VOLUME_CREATE_FAILED');
    }
    volume.state = VolumeState.AVAILABLE;
    if (claims) {
      // A provisioner usually binds within moments; a Pending claim is CREATING (a WaitForFirstConsumer
      // class binds only when an instance uses it, which CreateInstance allows).
      let claim = await claims.status(volume.id);
      for (let waited = 0; claim.phase === 'Pending' && waited < 3_000; waited += 250) {
        await new Promise((r) => setTimeout(r, 250));
        claim = await claims.status(volume.id);
      }
      Object.assign(volume, claimState(claim));
    }
    await this.store.volumes.update(volume.id, volume, revision);
    if (requestId) await this.rememberRequest('CreateVolume', scope, requestId, volume.id);
    await this.announceVolume(volume);
    return volume;
  }

  async getVolume(id: string, scope: Scope): Promise<Volume> {
    const found = await this.store.volumes.get(id);
    if (!found || !visible(found.value.project, scope)) throw notFound(`volume ${id} not found`, 'VOLUME_NOT_FOUND');
    return this.refreshVolume(found.value).catch((error: Error) => {
      this.deps.log.warn({ volume: id, err: error.message }, "cannot read the volume's claim; answering the recorded state");
      return found.value;
    });
  }

  /** Pending claims are looked at every heartbeat, so that their binding is announced without a read. */
  private async refreshPendingVolumes(): Promise<void> {
    const pending = (await this.store.volumes.list()).map((e) => e.value).filter((v) => v.node === this.node && v.state === VolumeState.CREATING);
    for (const volume of pending) await this.refreshVolume(volume).catch((error: Error) => this.deps.log.warn({ volume: volume.id, err: error.message }, 'cannot read the claim'));
  }

  /** A claim-backed volume of this node with its state read from its claim's phase (recorded and announced when it moved). */
  private async refreshVolume(volume: Volume): Promise<Volume> {
    const { claims } = this.deps.backend;
    if (!claims || volume.node !== this.node || volume.state === VolumeState.DELETING || this.creatingVolumes.has(volume.id)) return volume;
    const claim = await claims.status(volume.id);
    const seen = claimState(claim);
    const attached = volume.state === VolumeState.ATTACHED;
    if ((attached ? VolumeState.ATTACHED : seen.state) === volume.state && seen.stateReason === volume.stateReason) return volume;
    let moved = false;
    const result = await this.store.volumes.mutate(volume.id, (v) => {
      if (!v || v.state === VolumeState.DELETING) return undefined;
      const next = { ...v, stateReason: seen.stateReason, ...(v.state === VolumeState.ATTACHED ? {} : { state: seen.state }) };
      moved = next.state !== v.state;
      return next;
    });
    if (!result) return volume;
    if (moved) await this.announceVolume(result.value);
    return result.value;
  }

  async listVolumes(scope: Scope, filter: { project: string; state: VolumeState; instanceId: string }): Promise<Volume[]> {
    const project = scope.admin ? filter.project : scope.project;
    const mine = (await this.store.volumes.list()).map((e) => e.value).filter((v) => !project || v.project === project);
    const fresh = await Promise.all(mine.map((v) => this.refreshVolume(v).catch(() => v)));
    return fresh
      .filter((v) => !filter.state || v.state === filter.state)
      .filter((v) => !filter.instanceId || v.attachment?.instanceId === filter.instanceId)
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  async deleteVolume(id: string, requestId: string, scope: Scope): Promise<Volume> {
    if (requestId && (await this.findRequest('DeleteVolume', scope, requestId)) === id) {
      return { ...(await this.getVolumeOrDeleted(id)), state: VolumeState.DELETING };
    }
    return this.locks.with([`v:${id}`], async () => {
      const volume = await this.getVolume(id, scope);
      if (volume.node !== this.node) throw failedPrecondition(`volume ${id} is on node ${volume.node}; this is node ${this.node}`, 'WRONG_NODE');
      if (volume.state === VolumeState.ATTACHED) {
        throw failedPrecondition(`volume ${id} is attached to instance ${volume.attachment?.instanceId}; detach it first`, 'VOLUME_ATTACHED');
      }
      if (this.deps.backend.claims) {
        await this.deps.backend.claims.delete(id);
      } else {
        await this.deps.host.freeLoops(id);
        await this.deps.host.deleteVolumeFile(id);
      }
      await this.store.volumes.delete(id);
      if (requestId) await this.rememberRequest('DeleteVolume', scope, requestId, id);
      const deleted = { ...volume, state: VolumeState.DELETING };
      this.deletedVolumes.set(id, deleted);
      await this.announceVolume(deleted);
      return deleted;
    });
  }

  private readonly deletedVolumes = new Map<string, Volume>();
  private async getVolumeOrDeleted(id: string): Promise<Volume> {
    const v = this.deletedVolumes.get(id) ?? (await this.store.volumes.get(id))?.value;
    if (!v) throw notFound(`volume ${id} not found`, 'VOLUME_NOT_FOUND');
    return v;
  }

  private checkAttachable(volume: Volume, instanceNode: string): void {
    if (volume.state === VolumeState.ATTACHED) {
      throw failedPrecondition(`volume ${volume.id} is already attached to instance ${volume.attachment?.instanceId}`, 'VOLUME_ALREADY_ATTACHED', {
        instance: volume.attachment?.instanceId ?? '',
      });
    }
    // A Pending claim (CREATING) may be given to a new pod: a WaitForFirstConsumer class binds it then.
    const pendingClaim = !!this.deps.backend.claims && volume.state === VolumeState.CREATING;
    if (volume.state !== VolumeState.AVAILABLE && !pendingClaim) {
      throw failedPrecondition(`volume ${volume.id} is ${VolumeState[volume.state]}, not AVAILABLE${volume.stateReason ? ` (${volume.stateReason})` : ''}`, 'VOLUME_NOT_AVAILABLE');
    }
    if (volume.node !== instanceNode) {
      throw failedPrecondition(`volume ${volume.id} is on node ${volume.node} and the instance on node ${instanceNode}: a volume attaches only on its own node`, 'VOLUME_ON_ANOTHER_NODE');
    }
    if (volume.node !== this.node) throw failedPrecondition(`volume ${volume.id} is on node ${volume.node}; this is node ${this.node}`, 'WRONG_NODE');
  }

  async attachVolume(input: { volumeId: string; instanceId: string; mountPath: string; readOnly: boolean; requestId: string }, scope: Scope): Promise<Volume> {
    if (input.requestId && (await this.findRequest('AttachVolume', scope, input.requestId)) === input.volumeId) return this.getVolume(input.volumeId, scope);
    const mountPath = input.mountPath || defaultMountPath(input.volumeId);
    const problems = checkMountPath(mountPath, 'mount_path');
    if (problems.length) throw invalidArgument(problems);
    const refusal = this.deps.backend.volumeAttachRefusal;
    if (refusal) {
      // Another project's instance is not found, whatever state it is in.
      await this.getVolume(input.volumeId, scope);
      await this.getInstance(input.instanceId, scope);
      await this.refuseWhileRunning('attach', input.volumeId, input.instanceId, refusal);
    }
    return this.locks.with([`v:${input.volumeId}`, `i:${input.instanceId}`], async () => {
      const volume = await this.getVolume(input.volumeId, scope);
      const instance = await this.getInstance(input.instanceId, scope);
      if (instance.project !== volume.project) throw failedPrecondition(`volume ${volume.id} belongs to project ${volume.project}, the instance to ${instance.project}`, 'OTHER_PROJECT');
      this.checkAttachable(volume, instance.node);
      requireState('attach a volume to', instance.id, instance.state, refusal ? [InstanceState.STOPPED] : [InstanceState.RUNNING, InstanceState.STOPPED]);
      if (instance.volumeAttachments.some((a) => a.mountPath === mountPath)) {
        throw failedPrecondition(`instance ${instance.id} already has a volume at ${mountPath}`, 'MOUNT_PATH_TAKEN');
      }
      const attachment = await this.mountVolume(volume, instance, mountPath, input.readOnly);
      await this.setState(instance.id, (i) => {
        i.volumeAttachments = [...i.volumeAttachments, attachment];
      });
      if (input.requestId) await this.rememberRequest('AttachVolume', scope, input.requestId, volume.id);
      return (await this.store.volumes.get(volume.id))!.value;
    });
  }

  /**
   * Where volumes cannot change on a running workload: refused, except (engines with claims) for
   * a stopped instance, which has no pod: the change is recorded and its next pod has it.
   */
  private async refuseWhileRunning(action: 'attach' | 'detach', volumeId: string, instanceId: string, refusal: string): Promise<void> {
    const instance = this.deps.backend.claims ? (await this.store.instances.get(instanceId))?.value : undefined;
    if (this.deps.backend.claims && (!instance || instance.state === InstanceState.STOPPED)) return;
    const hint = this.deps.backend.claims ? `; stop the instance, ${action} the volume and start it again: its new pod has the change` : '';
    throw failedPrecondition(
      `cannot ${action} volume ${volumeId} ${action === 'attach' ? 'to' : 'from'} instance ${instanceId} while it runs: ${refusal}${hint}`,
      action === 'attach' ? 'ATTACH_NOT_SUPPORTED' : 'DETACH_NOT_SUPPORTED',
    );
  }

  /** Mounts into the running instance and records the volume ATTACHED; leaves nothing on failure. */
  private async mountVolume(volume: Volume, instance: Instance, mountPath: string, readOnly: boolean): Promise<VolumeAttachment> {
    const name = mountPath.slice(mountPath.lastIndexOf('/') + 1);
    const attachment: VolumeAttachment = { volumeId: volume.id, instanceId: instance.id, mountPath, readOnly, attachTime: now() };
    const claims = !!this.deps.backend.claims;
    const claimed = await this.store.volumes.mutate(volume.id, (v) => {
      if (!v || (v.state !== VolumeState.AVAILABLE && !(claims && v.state === VolumeState.CREATING))) {
        throw failedPrecondition(`volume ${volume.id} is no longer available`, 'VOLUME_NOT_AVAILABLE');
      }
      return { ...v, state: VolumeState.ATTACHED, attachment };
    });
    try {
      // A claim is mounted by the pod the instance is created with (ContainerPlan.volumes).
      if (!claims) await this.deps.host.attach(volume.id, instance.id, name, readOnly);
    } catch (error) {
      await this.store.volumes.mutate(volume.id, (v) => v && { ...v, state: VolumeState.AVAILABLE, attachment: undefined });
      throw failedPrecondition(`cannot attach volume ${volume.id}: ${(error as Error).message}`, 'ATTACH_FAILED');
    }
    await this.announceVolume(claimed!.value);
    return attachment;
  }

  async detachVolume(volumeId: string, requestId: string, scope: Scope): Promise<Volume> {
    if (requestId && (await this.findRequest('DetachVolume', scope, requestId)) === volumeId) return this.getVolume(volumeId, scope);
    const first = await this.getVolume(volumeId, scope);
    const instanceId = first.attachment?.instanceId ?? '';
    const refusal = this.deps.backend.volumeAttachRefusal;
    if (refusal && instanceId) await this.refuseWhileRunning('detach', volumeId, instanceId, refusal);
    return this.locks.with([`v:${volumeId}`, ...(instanceId ? [`i:${instanceId}`] : [])], async () => {
      const volume = await this.getVolume(volumeId, scope);
      if (volume.state !== VolumeState.ATTACHED || !volume.attachment) {
        throw failedPrecondition(`volume ${volumeId} is not attached (it is ${VolumeState[volume.state]})`, 'VOLUME_NOT_ATTACHED');
      }
      if (refusal) {
        const holder = (await this.store.instances.get(volume.attachment.instanceId))?.value;
        if (holder && holder.state !== InstanceState.STOPPED && !TERMINAL.has(holder.state)) await this.refuseWhileRunning('detach', volumeId, holder.id, refusal);
      }
      if (volume.node !== this.node) throw failedPrecondition(`volume ${volumeId} is on node ${volume.node}; this is node ${this.node}`, 'WRONG_NODE');
      const detached = await this.unmountVolume(volumeId, volume.attachment.instanceId);
      await this.setState(volume.attachment.instanceId, (i) => {
        i.volumeAttachments = i.volumeAttachments.filter((a) => a.volumeId !== volumeId);
      }).catch(() => undefined);
      if (requestId) await this.rememberRequest('DetachVolume', scope, requestId, volumeId);
      return detached;
    });
  }

  /** Unmounts, frees the loop device and records the volume AVAILABLE. */
  private async unmountVolume(volumeId: string, instanceId: string): Promise<Volume> {
    const volume = (await this.store.volumes.get(volumeId))?.value;
    const mountPath = volume?.attachment?.instanceId === instanceId ? volume.attachment.mountPath : '';
    const name = mountPath ? mountPath.slice(mountPath.lastIndexOf('/') + 1) : '';
    const { claims } = this.deps.backend;
    // A claim is released when the pod that mounted it is gone: nothing to unmount on the node.
    const claim = claims ? await claims.status(volumeId).catch(() => undefined) : undefined;
    if (!claims) {
      if (name) await this.deps.host.detach(volumeId, instanceId, name);
      else await this.deps.host.freeLoops(volumeId);
    }
    const result = await this.store.volumes.mutate(volumeId, (v) => {
      if (!v || v.attachment?.instanceId !== instanceId) return undefined;
      const released = { ...v, state: VolumeState.AVAILABLE, attachment: undefined };
      return claim ? { ...released, ...claimState(claim) } : released;
    });
    if (result && volume?.state === VolumeState.ATTACHED) await this.announceVolume(result.value);
    return result!.value;
  }

  private async volumesAttachedTo(instanceId: string): Promise<Volume[]> {
    return (await this.store.volumes.list()).map((e) => e.value).filter((v) => v.attachment?.instanceId === instanceId);
  }

  private async announceVolume(volume: Volume): Promise<void> {
    await this.deps.bus
      .publish(
        {
          $case: 'volumeStateChanged',
          volumeStateChanged: {
            volumeId: volume.id,
            project: volume.project,
            node: volume.node,
            state: volume.state,
            instanceId: volume.attachment?.instanceId ?? '',
            mountPath: volume.attachment?.mountPath ?? '',
          },
        },
        volume.id,
      )
      .catch((error) => this.deps.log.error({ err: error, volume: volume.id }, 'volume event not published'));
  }

  // ---------------------------------------------------------------- idempotency

  private requestKey(method: string, scope: Scope, requestId: string): string {
    return `${method}.${createHash('sha256').update(`${scope.project}\0${requestId}`).digest('hex').slice(0, 40)}`;
  }

  private async findRequest(method: string, scope: Scope, requestId: string): Promise<string | undefined> {
    return (await this.store.requests.get(this.requestKey(method, scope, requestId)))?.value;
  }

  private async rememberRequest(method: string, scope: Scope, requestId: string, id: string): Promise<void> {
    await this.store.requests.put(this.requestKey(method, scope, requestId), id);
  }

  // ---------------------------------------------------------------- node

  async nodeRecord(): Promise<Node> {
    const instances = (await this.listAll()).filter((i) => i.node === this.node && HOLDS_ROOM.has(i.state));
    const allocated = instances.reduce(
      (sum, i) => {
        const r = i.spec?.resources;
        return {
          cpuMillis: sum.cpuMillis + (r?.cpuMillis ?? 0),
          memoryBytes: sum.memoryBytes + (r?.memoryBytes ?? 0),
          gpus: sum.gpus + i.devices.filter((d) => d.kind === DeviceKind.GPU).length,
          pids: sum.pids + (r?.pids ?? 0),
          diskBytes: sum.diskBytes + (r?.diskBytes ?? 0),
        };
      },
      { cpuMillis: 0, memoryBytes: 0, gpus: 0, pids: 0, diskBytes: 0 },
    );
    const holder = new Map(instances.flatMap((i) => i.devices.map((d) => [d.id, i.id] as const)));
    const { inventory } = this.settings;
    const devices: NodeDevice[] = [
      ...inventory.gpus.map((g) => ({ ...g, allocatedTo: holder.get(g.id) ?? '' })),
      ...inventory.infiniband.map((p) => ({ kind: DeviceKind.INFINIBAND, vendor: '', id: p.split('/').pop()!, path: p, model: '', allocatedTo: '' })),
      ...inventory.allowlist.map((p) => ({ kind: DeviceKind.GENERIC, vendor: '', id: p, path: p, model: '', allocatedTo: '' })),
    ];
    return {
      name: this.node,
      backend: this.deps.backend.kind,
      partition: this.settings.partition,
      state: NodeState.READY,
      capacity: { ...this.settings.capacity, gpus: inventory.gpus.length },
      allocated,
      devices,
      cachedImages: await this.imagesOnNode(),
      labels: {},
      heartbeatTime: now(),
      instanceCount: instances.length,
    };
  }

  /** The engine's image digests, read at most every 30 s (a heartbeat per change must stay cheap). */
  private async imagesOnNode(): Promise<string[]> {
    if (Date.now() - this.cachedImages.at > 30_000) {
      this.cachedImages = { at: Date.now(), digests: await this.deps.backend.cachedImages().catch(() => this.cachedImages.digests) };
    }
    return this.cachedImages.digests;
  }

  private heartbeatLater(): void {
    if (this.stopped || this.heartbeatSoon) return;
    this.heartbeatSoon = setTimeout(() => {
      this.heartbeatSoon = undefined;
      this.track(this.heartbeat());
    }, 250);
    this.heartbeatSoon.unref();
  }

  async heartbeat(): Promise<Node> {
    const node = await this.nodeRecord();
    await this.store.nodes.put(this.node, node);
    await this.deps.bus.publish({ $case: 'nodeHeartbeat', nodeHeartbeat: { node } }, this.node);
    return node;
  }

  async getNode(name: string): Promise<Node> {
    if (!name || name === this.node) return this.nodeRecord();
    const found = await this.store.nodes.get(name);
    if (!found) throw notFound(`node ${name} not found`, 'NODE_NOT_FOUND');
    return found.value;
  }

  async listNodes(partition: string): Promise<Node[]> {
    const nodes = (await this.store.nodes.list()).map((e) => (e.key === this.node ? undefined : e.value)).filter((n): n is Node => !!n);
    nodes.push(await this.nodeRecord());
    return nodes.filter((n) => !partition || n.partition === partition).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  // ---------------------------------------------------------------- reconcile

  /**
   * Makes the store, the engine and the host agree, after a restart or a crash: containers
   * are adopted by their labels, instances whose container vanished are marked, and
   * containers, mounts and loop devices that no instance owns are removed.
   */
  async reconcile(): Promise<{ adopted: string[]; vanished: string[]; removedContainers: string[]; removedMounts: string[]; freedLoops: string[]; adoptedVolumes: string[] }> {
    const report = {
      adopted: [] as string[],
      vanished: [] as string[],
      removedContainers: [] as string[],
      removedMounts: [] as string[],
      freedLoops: [] as string[],
      adoptedVolumes: [] as string[],
    };
    const { backend, host, store } = this.deps;
    const observed = await backend.list();
    const records = new Map((await this.listAll()).filter((i) => i.node === this.node).map((i) => [i.id, i]));
    const live = new Set<string>();
    for (const container of observed) {
      await this.locks.with([`i:${container.instanceId}`], async () => {
        const record = records.get(container.instanceId);
        if (!record) {
          const secrets = backend.claims ? undefined : await host.keptSecrets(container.instanceId);
          const adopted = adoptFromLabels(container, this.node, backend.kind, secrets);
          if (!adopted) {
            await backend.remove(container.backendId);
            report.removedContainers.push(container.backendId);
            return;
          }
          await this.write(adopted, undefined);
          await this.announce(adopted, InstanceState.UNSPECIFIED);
          records.set(adopted.id, adopted);
          live.add(adopted.id);
          report.adopted.push(adopted.id);
          return;
        }
        if (TERMINAL.has(record.state) || (record.backendId && record.backendId !== container.backendId) || record.state === InstanceState.CREATING) {
          // Deleted (or being created when the agent died): nothing may stay of it.
          this.quiet.add(record.id);
          await backend.remove(container.backendId);
          report.removedContainers.push(container.backendId);
          if (record.state === InstanceState.CREATING) {
            await this.cleanup(record);
            await this.setState(record.id, (i) => {
              i.state = InstanceState.ERROR;
              i.stateReason = 'the agent restarted while creating it';
              i.backendId = '';
              i.volumeAttachments = [];
            });
          }
          setTimeout(() => this.quiet.delete(record.id), 2_000).unref();
          return;
        }
        live.add(record.id);
        const expected = record.state === InstanceState.STOPPED && !container.running ? record.state : undefined;
        if (!expected) await this.setState(record.id, (i) => applyObserved(i, container, 'found on agent start', false));
      });
    }
    for (const record of records.values()) {
      if (live.has(record.id) || TERMINAL.has(record.state)) continue;
      if (record.state === InstanceState.ERROR && !record.backendId) continue;
      // A stopped pod-backed instance has no pod: StartInstance makes one.
      if (backend.recreates && record.state === InstanceState.STOPPED && record.backendId) {
        live.add(record.id);
        continue;
      }
      await this.locks.with([`i:${record.id}`], async () => {
        await this.cleanup({ ...record, backendId: '' });
        await this.setState(record.id, (i) => {
          i.state = InstanceState.ERROR;
          i.stateReason = record.state === InstanceState.CREATING ? 'the agent restarted while creating it' : 'container vanished';
          i.backendId = '';
          i.addresses = [];
          i.volumeAttachments = [];
        });
        report.vanished.push(record.id);
      });
    }
    // Volumes: an attachment stands only on a live instance; its mount is put back if it went away.
    if (backend.claims) await this.reconcileClaims(live, report.adoptedVolumes);
    for (const { value: volume } of backend.claims ? [] : await store.volumes.list()) {
      if (volume.node !== this.node) continue;
      if (volume.state === VolumeState.CREATING) {
        await host.deleteVolumeFile(volume.id);
        await store.volumes.delete(volume.id);
        continue;
      }
      const a = volume.attachment;
      if (!a) continue;
      const name = a.mountPath.slice(a.mountPath.lastIndexOf('/') + 1);
      if (!live.has(a.instanceId)) {
        await host.detach(volume.id, a.instanceId, name);
        await store.volumes.mutate(volume.id, (v) => v && { ...v, state: VolumeState.AVAILABLE, attachment: undefined });
      } else if (!(await host.isMounted(host.attachPoint(a.instanceId, name)))) {
        await host.freeLoops(volume.id);
        await host.attach(volume.id, a.instanceId, name, a.readOnly);
      }
    }
    // Host leftovers: instance directories and mounts no live instance owns, loop devices of unattached volumes
    // (none where the engine keeps the volumes: the node's storage is not used).
    for (const id of backend.claims ? [] : await host.instanceIdsOnDisk()) {
      if (live.has(id)) continue;
      const before = await host.mountPoints();
      await host.releaseInstance(id);
      report.removedMounts.push(...before.filter((m) => m.startsWith(`${host.instancesDir}/${id}`)));
    }
    const attached = new Map((await store.volumes.list()).filter((e) => e.value.attachment && e.value.node === this.node).map((e) => [e.key, e.value]));
    for (const mount of backend.claims ? [] : await host.mountPoints()) {
      const [instanceId, , name] = mount.slice(host.instancesDir.length + 1).split('/');
      if (!instanceId || !mount.startsWith(`${host.instancesDir}/`)) continue;
      const owned = live.has(instanceId) && (!name || [...attached.values()].some((v) => v.attachment?.instanceId === instanceId && v.attachment.mountPath.endsWith(`/${name}`)));
      if (!owned) {
        await host.detach('', instanceId, name ?? '').catch(() => undefined);
        report.removedMounts.push(mount);
      }
    }
    for (const loop of backend.claims ? [] : await host.loopDevices()) {
      const volumeId = loop.backingFile.slice(host.volumesDir.length + 1, -'.img'.length);
      if (!attached.has(volumeId)) {
        await host.freeLoops(volumeId);
        report.freedLoops.push(loop.device);
      }
    }
    if (Object.values(report).some((l) => l.length)) this.deps.log.info(report, 'reconciled');
    return report;
  }

  /**
   * Claim-backed volumes after a restart: a record whose claim was never made is dropped, one
   * whose claim went away is ERROR, an attachment to an instance that is gone is released, the
   * state follows the claim's phase; a claim of this node that no record owns (a lost store) is
   * adopted from its annotations, never deleted: it holds data.
   */
  private async reconcileClaims(live: Set<string>, adopted: string[]): Promise<void> {
    const claims = this.deps.backend.claims!;
    const { store } = this.deps;
    const found = await claims.list();
    const present = new Set(found.map((v) => v.id));
    const known = new Set<string>();
    for (const { value: volume } of await store.volumes.list()) {
      if (volume.node !== this.node) continue;
      known.add(volume.id);
      await this.locks.with([`v:${volume.id}`], async () => {
        if (!present.has(volume.id) && volume.state === VolumeState.CREATING && !volume.attachment) {
          await store.volumes.delete(volume.id);
          return;
        }
        const a = volume.attachment;
        if (a && !live.has(a.instanceId)) await this.unmountVolume(volume.id, a.instanceId);
        const current = (await store.volumes.get(volume.id))?.value;
        if (current) await this.refreshVolume(current);
      });
    }
    for (const volume of found) {
      if (known.has(volume.id) || !volume.project) continue;
      await store.volumes.create(volume.id, volume).then(
        async () => {
          adopted.push(volume.id);
          await this.refreshVolume(volume);
        },
        (error: Error) => this.deps.log.warn({ volume: volume.id, err: error.message }, 'adopting a claim no volume record owns failed'),
      );
    }
  }
}

export const adminScope: Scope = { user: 'runtime', project: '', admin: true };

const visible = (project: string, scope: Scope) => scope.admin || project === scope.project;

function applyObserved(i: Instance, observed: Observed | undefined, reason: string, oom: boolean): void {
  if (!observed) {
    i.state = InstanceState.ERROR;
    i.stateReason = 'container vanished';
    i.backendId = '';
    i.addresses = [];
    return;
  }
  i.exitCode = observed.exitCode;
  if (observed.running) {
    i.state = InstanceState.RUNNING;
    i.stateReason = reason;
    i.addresses = observed.addresses;
    i.startTime = observed.startedAt ?? now();
  } else if (observed.oomKilled || oom) {
    i.state = InstanceState.ERROR;
    i.stateReason = 'OOMKilled';
  } else if (observed.exitCode !== 0 || observed.error) {
    i.state = InstanceState.ERROR;
    i.stateReason = observed.error || `exited with code ${observed.exitCode}`;
  } else {
    i.state = InstanceState.STOPPED;
    i.stateReason = reason;
  }
}

/**
 * Rebuilds an instance record from a container's labels (the engine is the source of truth)
 * and the secrets the node kept for it (the labels hold none).
 */
function adoptFromLabels(container: Observed, node: string, kind: Backend, keptSecrets: Buffer | undefined): Instance | undefined {
  const l = container.labels;
  if (!l[LABEL.instanceId] || !l[LABEL.project] || !l[LABEL.spec]) return undefined;
  let spec: InstanceSpec;
  try {
    spec = withSecrets(InstanceSpecCodec.decode(Buffer.from(l[LABEL.spec]!, 'base64')), keptSecrets && InstanceSpecCodec.decode(keptSecrets));
  } catch {
    return undefined;
  }
  const instance: Instance = {
    id: l[LABEL.instanceId]!,
    project: l[LABEL.project]!,
    user: l[LABEL.user] ?? '',
    spec,
    // Not in the labels: a tenant's resize is then bounded by the size it has now.
    placedResources: undefined,
    imageDigest: l[LABEL.imageDigest] ?? '',
    node,
    backend: kind,
    state: InstanceState.RUNNING,
    stateReason: '',
    addresses: [],
    volumeAttachments: [],
    devices: [],
    preemptible: l[LABEL.preemptible] === 'true',
    requestId: l[LABEL.requestId] ?? '',
    createTime: now(),
    startTime: undefined,
    updateTime: now(),
    backendId: container.backendId,
    exitCode: 0,
    generation: 1,
    attempt: Number(l[LABEL.attempt] ?? 0),
  };
  applyObserved(instance, container, 'adopted from its container labels', false);
  return instance;
}

/** The volumes a workload is made with (engines with claims mount them at creation). */
function planVolumes(instance: Instance): NonNullable<ContainerPlan['volumes']> {
  return instance.volumeAttachments.map((a) => ({ volumeId: a.volumeId, mountPath: a.mountPath, readOnly: a.readOnly }));
}

/** A claim's phase as a volume's state: Bound is AVAILABLE, Pending CREATING, Lost or gone ERROR. */
function claimState(claim: ClaimStatus): { state: VolumeState; stateReason: string } {
  switch (claim.phase) {
    case 'Bound':
      return { state: VolumeState.AVAILABLE, stateReason: '' };
    case 'Pending':
      return { state: VolumeState.CREATING, stateReason: claim.message };
    default:
      return { state: VolumeState.ERROR, stateReason: claim.message };
  }
}

function metadataFiles(instance: Instance): Record<string, string | Buffer> {
  const spec = instance.spec!;
  return {
    'user-data': Buffer.from(spec.userData),
    'ssh-keys': spec.sshPublicKeys.map((k) => `${k}\n`).join(''),
    'instance.json': `${JSON.stringify({ id: instance.id, name: spec.name, project: instance.project, flavor: spec.flavor }, null, 2)}\n`,
  };
}
