// The node agent: builds the use cases of one node over the adapters it is given and runs
// them: reconcile at start, the scheduler's placements, the engine's events and the
// heartbeat, until it stops. The gRPC handlers (server.ts) call the use cases directly:
//
//   create-instance.ts   CreateInstance (and every placement)
//   instances.ts         Get, List, Start, Stop, Reboot, Resize, Delete
//   logs.ts              StreamInstanceLogs
//   exec.ts              ExecInInstance
//   volumes.ts           CreateVolume, GetVolume, ListVolumes, DeleteVolume
//   volume-attachments.ts  AttachVolume, DetachVolume
//   networks.ts          CreateNetwork, GetNetwork, ListNetworks, DeleteNetwork
//   network-connections.ts  ConnectNetwork, DisconnectNetwork
//   heartbeat.ts         GetNode, ListNodes, and the node's heartbeats
//
// Beside them: placements.ts (the scheduler's consumers), engine-events.ts, reconcile.ts, and
// what they share: instance-records.ts, volume-records.ts, workloads.ts, idempotency.ts.
import { KeyedLocks } from '@lapis/platform';
import type { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import type { Store } from '../adapters/store';
import { Background } from './background';
import { CreateInstance } from './create-instance';
import { EngineEvents } from './engine-events';
import { InstanceExec } from './exec';
import { Heartbeat } from './heartbeat';
import { RequestLog } from './idempotency';
import { InstanceRecords } from './instance-records';
import { Instances } from './instances';
import { InstanceLogs } from './logs';
import { NetworkConnections } from './network-connections';
import { Networks } from './networks';
import { Placements } from './placements';
import { Reconciler } from './reconcile';
import type { AgentContext, AgentDeps, AgentSettings } from './settings';
import { VolumeAttachments } from './volume-attachments';
import { VolumeRecords } from './volume-records';
import { Volumes } from './volumes';
import { Workloads } from './workloads';

export class Agent {
  readonly node: string;
  readonly createInstance: CreateInstance;
  readonly instances: Instances;
  readonly logs: InstanceLogs;
  readonly exec: InstanceExec;
  readonly volumes: Volumes;
  readonly attachments: VolumeAttachments;
  readonly networks: Networks;
  readonly connections: NetworkConnections;
  readonly nodes: Heartbeat;
  readonly reconciler: Reconciler;
  private readonly records: InstanceRecords;
  private readonly volumeRecords: VolumeRecords;
  private readonly engine: EngineEvents;
  private readonly placements: Placements;
  private readonly background: Background;
  private unwatch?: () => void;
  private heartbeatTimer?: NodeJS.Timeout;

  constructor(
    readonly settings: AgentSettings,
    private readonly deps: AgentDeps,
  ) {
    this.node = settings.node;
    const ctx: AgentContext = { settings, deps, locks: new KeyedLocks() };
    const requests = new RequestLog(deps.store);
    this.background = new Background(deps.log);
    this.records = new InstanceRecords(deps.store, deps.bus, deps.log, () => this.nodes.soon());
    this.nodes = new Heartbeat(ctx, this.records, this.background);
    this.engine = new EngineEvents(ctx, this.records);
    this.volumeRecords = new VolumeRecords(ctx);
    this.attachments = new VolumeAttachments(ctx, this.records, this.volumeRecords, requests);
    this.networks = new Networks(ctx, requests);
    this.connections = new NetworkConnections(ctx, this.records, this.networks, requests);
    const workloads = new Workloads(ctx, this.records, this.engine, this.attachments, this.connections);
    this.createInstance = new CreateInstance(ctx, this.records, requests, this.attachments, workloads);
    this.instances = new Instances(ctx, this.records, requests, this.engine, workloads);
    this.logs = new InstanceLogs(ctx, this.records);
    this.exec = new InstanceExec(ctx, this.records);
    this.volumes = new Volumes(ctx, this.volumeRecords, requests);
    this.placements = new Placements(ctx, this.records, this.createInstance, this.instances);
    this.reconciler = new Reconciler(ctx, this.records, this.engine, workloads, this.attachments, this.volumeRecords, this.connections);
  }

  /** Every instance the records index holds (metrics.ts reports this node's by state). */
  allInstances(): Promise<Instance[]> {
    return this.records.all();
  }

  get store(): Store {
    return this.deps.store;
  }

  /** Reconciles with the engine and the host, then takes placements and watches the engine. */
  async start(options: { consume?: boolean } = {}): Promise<void> {
    await this.deps.host.init();
    await this.records.start();
    this.unwatch = this.deps.backend.watch((event) => this.background.track(this.engine.handle(event)));
    await this.reconciler.run();
    if (options.consume !== false) await this.placements.start();
    await this.nodes.beat();
    this.heartbeatTimer = setInterval(() => {
      this.background.track(this.nodes.beat());
      if (this.deps.backend.claims) this.background.track(this.volumeRecords.refreshPending());
    }, this.settings.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  /** Stops taking work; instances, volumes and mounts stay as they are (a restart adopts them). */
  async stop(): Promise<void> {
    this.engine.stop();
    clearInterval(this.heartbeatTimer);
    this.nodes.stop();
    await this.placements.stop();
    this.unwatch?.();
    this.records.stop();
    await this.background.settled();
  }
}
