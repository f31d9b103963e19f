// Builders for the unit tests: claims and nodes with only what a test cares about.
import { Backend, DeviceKind, InstanceSpec, InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { ClaimState, PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import type { CycleInput, PartitionDef } from '../../src/domain/cycle';
import type { ClaimRecord, NodeRecord, Res } from '../../src/domain/model';
import { DEFAULT_WEIGHTS } from '../../src/domain/priority';

export const GiB = 2 ** 30;
export const cpus = (n: number, memGiB = n, gpus = 0): Res => ({ cpu: n * 1000, mem: memGiB * GiB, gpus });

export function claim(id: string, over: Partial<ClaimRecord> = {}): ClaimRecord {
  return {
    id,
    project: 'p',
    user: 'u',
    spec: InstanceSpec.fromPartial({ name: id, image: 'img:1' }),
    res: cpus(1),
    devices: [],
    preemptible: false,
    requeue: true,
    partition: '',
    backend: Backend.UNSPECIFIED,
    group: '',
    requestId: '',
    qos: '',
    state: ClaimState.PENDING,
    reason: PendingReason.NEW,
    detail: '',
    node: '',
    instanceState: InstanceState.PENDING,
    submitTime: 0,
    placeTime: 0,
    endTime: 0,
    placements: 0,
    preemptedBy: '',
    reservedNode: '',
    victims: [],
    ...over,
  };
}

export function node(name: string, capacity: Res, over: Partial<NodeRecord> = {}): NodeRecord {
  return {
    name,
    backend: Backend.DOCKER,
    partition: '',
    ready: true,
    capacity,
    reported: { cpu: 0, mem: 0, gpus: 0 },
    freeDevices: {},
    totalDevices: {},
    images: [],
    lastSeen: 0,
    ...over,
  };
}

export { DeviceKind };

/** One cycle's input with the defaults the unit tests share: spread placement, fair share 0.5. */
export function cycleInput(claims: ClaimRecord[], nodes: NodeRecord[], over: Partial<CycleInput> = {}): CycleInput {
  return {
    now: 1000,
    claims,
    nodes,
    partitions: new Map<string, PartitionDef>(),
    defaultPartition: 'default',
    quotas: new Map(),
    qos: new Map(),
    weights: DEFAULT_WEIGHTS,
    fairShare: () => 0.5,
    placement: { strategy: 'spread', imageWeight: 0.3, maxScored: 0 },
    downAfterMs: 15_000,
    maxPlacements: 1000,
    seed: 0,
    ...over,
  };
}
