// The scheduler's own records: claims as the queue keeps them, nodes as the heartbeats
// describe them, and arithmetic on resource amounts. Pure data, no I/O.
import { type Backend, type DeviceKind, type InstanceSpec, PortProtocol } from '@lapis/proto/lapis/common/v1/common';
import { ClaimState, type PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';

/** CPU in thousandths, memory in bytes, GPUs. */
export interface Res {
  cpu: number;
  mem: number;
  gpus: number;
}

export const ZERO: Res = Object.freeze({ cpu: 0, mem: 0, gpus: 0 });
export const add = (a: Res, b: Res): Res => ({ cpu: a.cpu + b.cpu, mem: a.mem + b.mem, gpus: a.gpus + b.gpus });
export const sub = (a: Res, b: Res): Res => ({ cpu: a.cpu - b.cpu, mem: a.mem - b.mem, gpus: a.gpus - b.gpus });
export const fits = (need: Res, free: Res): boolean => need.cpu <= free.cpu && need.mem <= free.mem && need.gpus <= free.gpus;
/** Each positive limit holds (0 means no limit on that resource). */
export const withinLimit = (amount: Res, limit: Res): boolean =>
  (!limit.cpu || amount.cpu <= limit.cpu) && (!limit.mem || amount.mem <= limit.mem) && (!limit.gpus || amount.gpus <= limit.gpus);
export const describe = (r: Res): string => `${r.cpu / 1000} CPU, ${Math.round(r.mem / 2 ** 20)} MiB, ${r.gpus} GPU`;

/** A device an instance needs beyond GPUs counted in Res (InfiniBand, generic). */
export interface DeviceNeed {
  kind: DeviceKind;
  count: number;
}

export interface ClaimRecord {
  id: string;
  project: string;
  user: string;
  spec: InstanceSpec;
  res: Res;
  devices: DeviceNeed[];
  preemptible: boolean;
  /** On preemption: requeue (true) or end. */
  requeue: boolean;
  partition: string;
  backend: Backend;
  group: string;
  requestId: string;
  qos: string;
  state: ClaimState;
  reason: PendingReason;
  detail: string;
  node: string;
  instanceState: number;
  /** Milliseconds since the epoch. */
  submitTime: number;
  placeTime: number;
  endTime: number;
  placements: number;
  /** Set on a spot instance told to give its room back: the claim that needs it. */
  preemptedBy: string;
  /** Set on a claim waiting for spot instances to leave: the node it will take. */
  reservedNode: string;
  victims: string[];
  /** W3C trace context of the submission, so the placement continues the submitter's trace. */
  traceparent?: string;
}

/**
 * The host ports a claim's instance will hold on its node ("8080/tcp", as the platform's
 * hostPortKey); 0 is picked by the node from its range, so it is not counted here.
 */
export const claimHostPorts = (c: ClaimRecord): readonly string[] =>
  c.spec.ports.length === 0
    ? NO_HOST_PORTS
    : c.spec.ports.filter((p) => p.hostPort).map((p) => `${p.hostPort}/${p.protocol === PortProtocol.UDP ? 'udp' : 'tcp'}`);
/** Shared by the claims without ports (nearly all): nothing allocated per claim and cycle. */
const NO_HOST_PORTS: readonly string[] = Object.freeze([]);

export const isPending = (c: ClaimRecord) => c.state === ClaimState.PENDING || c.state === ClaimState.REQUEUED;
/** Holds room on a node. */
export const isActive = (c: ClaimRecord) => c.state === ClaimState.PLACED || c.state === ClaimState.RUNNING;
export const isFinal = (c: ClaimRecord) => c.state === ClaimState.ENDED || c.state === ClaimState.CANCELLED;

export interface NodeRecord {
  name: string;
  backend: Backend;
  partition: string;
  /** Ready for new instances (not draining, not down). */
  ready: boolean;
  capacity: Res;
  /**
   * Set where allocation ratios enlarge `capacity` for placement (domain/overcommit.ts): the
   * node's real capacity, the most one instance may ask for.
   */
  instanceLimit?: Res;
  /** What the node reported as allocated in its last heartbeat. */
  reported: Res;
  /** Free devices by kind, as the node last reported them. */
  freeDevices: Partial<Record<DeviceKind, number>>;
  /** Every device by kind, free or not. */
  totalDevices: Partial<Record<DeviceKind, number>>;
  /** Image references and digests cached on the node. */
  images: string[];
  /** Milliseconds since the epoch of the last heartbeat. */
  lastSeen: number;
}
