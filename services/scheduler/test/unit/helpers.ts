// Builders for the unit tests: claims and nodes with only what a test cares about.
import { Backend, DeviceKind, InstanceSpec, InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { ClaimState, PendingReason } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import type { ClaimRecord, NodeRecord, Res } from '../../src/domain/model';

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
