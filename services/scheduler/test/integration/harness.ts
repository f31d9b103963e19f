// What the integration tests share: a scheduler started the way main.ts starts it (real
// NATS, real gRPC), a runtime agent's side of the contract (heartbeats and instance events
// published on the real stream, placements consumed from a durable consumer), and clients.
import { resolve } from 'node:path';
import { call, createClient, EventBus, type RunningConsumer } from '@lapis/platform';
import { natsUrl, staticTokenFile, testLog, unique } from '@lapis/platform/testing';
import { Backend, InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Event } from '@lapis/proto/lapis/events/v1/events';
import { Node, NodeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import * as S from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import type { ServiceError } from '@grpc/grpc-js';
import { startScheduler, type RunningScheduler } from '../../src/wiring';
import { loadSchedulerConfig } from '../../src/config';

export const FLAVORS = resolve(__dirname, '../../../../../config/flavors.yaml');
const tokens = staticTokenFile();

export function schedulerEnv(prefix: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    LAPIS_GRPC_PORT: '0',
    LAPIS_GRPC_HOST: '127.0.0.1',
    LAPIS_NATS_URL: natsUrl(),
    LAPIS_STATIC_TOKENS_FILE: tokens,
    LAPIS_FLAVORS_FILE: FLAVORS,
    LAPIS_SCHEDULER_BUCKET_PREFIX: prefix,
    LAPIS_SCHEDULER_CONSUMER_PREFIX: prefix,
    LAPIS_SCHEDULER_CYCLE_MS: '200',
    LAPIS_SCHEDULER_LEASE_MS: '1500',
    LAPIS_SHUTDOWN_GRACE_MS: '1000',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...extra,
  };
}

export async function startTestScheduler(prefix: string, extra: Record<string, string> = {}): Promise<RunningScheduler> {
  return startScheduler(loadSchedulerConfig(schedulerEnv(prefix, extra)));
}

export function client(address: string, token: string, project?: string): Api {
  return api(createClient(SchedulerServiceClient, address, { token, project, maxAttempts: 1 }));
}

export { call, unique };

/** The runtime agent's side of the contract, on its own NATS connection. */
export class FakeFreeNode {
  consumers: RunningConsumer[] = [];
  placed: Event[] = [];
  notices: Event[] = [];
  cancelled: Event[] = [];
  private generation = 0;

  private constructor(
    readonly bus: EventBus,
    readonly name: string,
  ) {}

  static async start(name: string): Promise<FakeFreeNode> {
    const bus = await EventBus.connect({ url: natsUrl(), name: `runtime@${name}`, stream: 'LAPIS', log: testLog });
    const n = new FakeFreeNode(bus, name);
    n.consumers.push(
      await bus.consume({
        durable: `runtime-${name}-placed`,
        subject: `lapis.scheduler.claim_placed.${name}`,
        handler: async (e) => void n.placed.push(e),
      }),
      await bus.consume({
        durable: `runtime-${name}-preempt`,
        subject: `lapis.scheduler.preemption_notice.${name}`,
        handler: async (e) => void n.notices.push(e),
      }),
      await bus.consume({
        durable: `runtime-${name}-cancelled`,
        subject: `lapis.scheduler.claim_cancelled.${name}`,
        handler: async (e) => void n.cancelled.push(e),
      }),
    );
    return n;
  }

  async heartbeat(cpus: number, memGiB: number, partition = '', allocatedCpus = 0): Promise<void> {
    const node = Node.fromPartial({
      name: this.name,
      backend: Backend.DOCKER,
      partition,
      state: NodeState.READY,
      capacity: { cpuMillis: cpus * 1000, memoryBytes: memGiB * 2 ** 30 },
      allocated: { cpuMillis: allocatedCpus * 1000 },
      heartbeatTime: new Date(),
    });
    await this.bus.publish({ $case: 'nodeHeartbeat', nodeHeartbeat: { node } }, this.name);
  }

  async instance(id: string, project: string, state: InstanceState): Promise<void> {
    await this.bus.publish(
      {
        $case: 'instanceStateChanged',
        instanceStateChanged: {
          instanceId: id,
          project,
          node: this.name,
          state,
          previousState: InstanceState.UNSPECIFIED,
          reason: '',
          addresses: [],
          exitCode: 0,
          resources: undefined,
        },
      },
      id,
      `${id}.${InstanceState[state]}.${++this.generation}`,
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.consumers.map((c) => c.stop()));
    // The durables are this test's own: remove them so the stream keeps no dead consumers.
    for (const kind of ['placed', 'preempt', 'cancelled'])
      await this.bus.jsm.consumers.delete('LAPIS', `runtime-${this.name}-${kind}`).catch(() => undefined);
    await this.bus.drain();
  }
}

export const placedIds = (n: FakeFreeNode) =>
  n.placed.map((e) => (e.payload?.$case === 'claimPlaced' ? e.payload.claimPlaced.claimId : ''));

type Unary<Req, Res> = (request: Req, callback: (error: ServiceError | null, response: Res) => void) => unknown;
const unary =
  <Req, Res>(c: SchedulerServiceClient, method: Unary<Req, Res>) =>
  (request: DeepPartialOf<Req>): Promise<Res> =>
    new Promise((resolve, reject) => method.call(c, request as Req, (error, response) => (error ? reject(error) : resolve(response))));
type DeepPartialOf<T> = T extends Date | Buffer
  ? T
  : T extends Array<infer U>
    ? Array<DeepPartialOf<U>>
    : T extends object
      ? { [K in keyof T]?: DeepPartialOf<T[K]> }
      : T;

/** Promise-returning calls of the scheduler's API; requests are filled with defaults. */
export function api(c: SchedulerServiceClient) {
  const fill =
    <Req, Res>(type: { fromPartial(o: never): Req }, method: Unary<Req, Res>) =>
    (request: DeepPartialOf<Req> = {} as DeepPartialOf<Req>) =>
      unary(c, method)(type.fromPartial(request as never) as DeepPartialOf<Req>);
  return {
    submitClaim: fill(S.SubmitClaimRequest, c.submitClaim as never as Unary<S.SubmitClaimRequest, S.SubmitClaimResponse>),
    getClaim: fill(S.GetClaimRequest, c.getClaim as never as Unary<S.GetClaimRequest, S.GetClaimResponse>),
    listClaims: fill(S.ListClaimsRequest, c.listClaims as never as Unary<S.ListClaimsRequest, S.ListClaimsResponse>),
    cancelClaim: fill(S.CancelClaimRequest, c.cancelClaim as never as Unary<S.CancelClaimRequest, S.CancelClaimResponse>),
    getPriority: fill(S.GetPriorityRequest, c.getPriority as never as Unary<S.GetPriorityRequest, S.GetPriorityResponse>),
    getFairShare: fill(S.GetFairShareRequest, c.getFairShare as never as Unary<S.GetFairShareRequest, S.GetFairShareResponse>),
    listFlavors: fill(S.ListFlavorsRequest, c.listFlavors as never as Unary<S.ListFlavorsRequest, S.ListFlavorsResponse>),
    listPartitions: fill(S.ListPartitionsRequest, c.listPartitions as never as Unary<S.ListPartitionsRequest, S.ListPartitionsResponse>),
    setAccount: fill(S.SetAccountRequest, c.setAccount as never as Unary<S.SetAccountRequest, S.SetAccountResponse>),
    getQuota: fill(S.GetQuotaRequest, c.getQuota as never as Unary<S.GetQuotaRequest, S.GetQuotaResponse>),
    setQuota: fill(S.SetQuotaRequest, c.setQuota as never as Unary<S.SetQuotaRequest, S.SetQuotaResponse>),
    moveNode: fill(S.MoveNodeRequest, c.moveNode as never as Unary<S.MoveNodeRequest, S.MoveNodeResponse>),
    setAllocationRatios: fill(
      S.SetAllocationRatiosRequest,
      c.setAllocationRatios as never as Unary<S.SetAllocationRatiosRequest, S.SetAllocationRatiosResponse>,
    ),
    close: () => c.close(),
  };
}
export type Api = ReturnType<typeof api>;
