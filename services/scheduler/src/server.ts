// gRPC handlers of lapis.scheduler.v1.SchedulerService: validate, scope to the caller's
// project (admins see every project), translate, and hand over to the scheduler
// (application/scheduler.ts).
import {
  appendTo,
  failedPrecondition,
  invalidArgument,
  notFound,
  paginate,
  permissionDenied,
  service,
  validateInstanceSpec,
  type CallContext,
  type FieldViolation,
  type Handlers,
  type ServiceRegistration,
} from '@lapis/platform';
import { Backend, DeviceKind, type Resources } from '@lapis/proto/lapis/common/v1/common';
import {
  ClaimState,
  FairShareAlgorithm,
  PreemptionAction,
  type Claim,
  type FairShareEntry,
  type Partition,
  type PriorityFactors,
} from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceService } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import { beyondCeiling } from './domain/ceiling';
import type { PartitionDef } from './domain/cycle';
import type { FairShareRow } from './domain/fairshare';
import { withinLimit, type ClaimRecord, type DeviceNeed, type Res } from './domain/model';
import { ratioProblem, type AllocationRatios } from './domain/overcommit';
import { weightsRow, type Breakdown } from './domain/priority';
import type { Scheduler } from './application/scheduler';

const NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;

export const toResources = (r: Res): Resources => ({ cpuMillis: r.cpu, memoryBytes: r.mem, gpus: r.gpus, pids: 0, diskBytes: 0 });
const fromResources = (r: Resources | undefined): Res => ({
  cpu: Number(r?.cpuMillis ?? 0),
  mem: Number(r?.memoryBytes ?? 0),
  gpus: r?.gpus ?? 0,
});

export function toClaim(c: ClaimRecord & { priority?: number }): Claim {
  const date = (ms: number) => (ms ? new Date(ms) : undefined);
  return {
    id: c.id,
    project: c.project,
    user: c.user,
    spec: c.spec,
    preemptible: c.preemptible,
    onPreemption: c.requeue ? PreemptionAction.REQUEUE : PreemptionAction.END,
    partition: c.partition,
    backend: c.backend,
    antiAffinityGroup: c.group,
    requestId: c.requestId,
    state: c.state,
    pendingReason: c.reason,
    reasonDetail: c.detail,
    priority: c.priority ?? 0,
    node: c.node,
    instanceState: c.instanceState,
    submitTime: date(c.submitTime),
    placeTime: date(c.placeTime),
    endTime: date(c.endTime),
    placements: c.placements,
    qos: c.qos,
  };
}

const factors = (b: Breakdown): PriorityFactors => ({
  age: b.age,
  fairShare: b.fairShare,
  jobSize: b.jobSize,
  partition: b.partition,
  qos: b.qos,
  weightedAge: b.weightedAge,
  weightedFairShare: b.weightedFairShare,
  weightedJobSize: b.weightedJobSize,
  weightedPartition: b.weightedPartition,
  weightedQos: b.weightedQos,
  priority: b.priority,
});

const entry = (r: FairShareRow): FairShareEntry => ({
  account: r.account,
  user: r.user,
  parent: r.parent,
  rawShares: r.rawShares,
  normShares: r.normShares,
  rawUsage: r.rawUsage,
  normUsage: r.normUsage,
  effectiveUsage: r.effectiveUsage,
  fairShareFactor: r.factor,
  // Infinity does not travel well in JSON renderings; a very large number says the same.
  levelFs: Number.isFinite(r.levelFs) ? r.levelFs : Number.MAX_VALUE,
});

function visible(ctx: CallContext, c: ClaimRecord): boolean {
  return ctx.caller.admin || c.project === ctx.caller.project;
}

function scopeProject(ctx: CallContext, project: string, field = 'project'): string {
  if (ctx.caller.admin) return project;
  if (project && project !== ctx.caller.project) {
    throw permissionDenied(`${field} ${project}: ${ctx.caller.user} may only see project ${ctx.caller.project}`, 'OTHER_PROJECT');
  }
  return ctx.caller.project;
}

/** Each partition's nodes, and those of them that are down. */
function nodesByPartition(s: Scheduler): { all: Map<string, string[]>; down: Map<string, string[]> } {
  const all = new Map<string, string[]>();
  const down = new Map<string, string[]>();
  for (const n of s.nodes.values()) {
    const p = s.partitionOfNode(n);
    appendTo(all, p, n.name);
    if (s.nodeIsDown(n)) appendTo(down, p, n.name);
  }
  return { all, down };
}

const toRatios = (r: AllocationRatios) => ({ cpu: r.cpu, memory: r.mem });

function toPartition(s: Scheduler, p: PartitionDef, nodes: ReturnType<typeof nodesByPartition>): Partition {
  const names = (nodes.all.get(p.name) ?? []).sort();
  const own: Record<string, { cpu: number; memory: number }> = {};
  for (const name of names) {
    const r = s.nodeRatios(s.nodes.get(name)!);
    if (r) own[name] = toRatios(r);
  }
  return {
    name: p.name,
    nodes: names,
    maxResources: toResources(p.maxResources),
    priorityTier: p.tier,
    allowPreemptible: p.allowPreemptible,
    batchPartition: p.batchPartition,
    minNodes: p.minNodes,
    maxNodes: p.maxNodes,
    closed: p.closed ?? false,
    downNodes: (nodes.down.get(p.name) ?? []).sort(),
    allocationRatios: toRatios(s.partitionRatios(p.name)),
    nodeAllocationRatios: own,
  };
}

const pad = (n: number, width = 15) => String(Math.max(0, Math.floor(n))).padStart(width, '0');

export function schedulerService(s: Scheduler): ServiceRegistration {
  const handlers: Handlers<typeof SchedulerServiceService> = {
    async submitClaim(req, ctx) {
      const violations: FieldViolation[] = [];
      const spec = req.spec;
      if (!spec) throw invalidArgument([{ field: 'spec', description: 'required' }]);
      // The rules the runtime applies too (name, image, labels with their reserved prefixes,
      // environment, keys, ports in the site's host port range, volumes), so a placed claim is
      // not refused on its node; an unnamed claim gets a name from its id (defaultInstanceName).
      violations.push(...validateInstanceSpec(spec, { nameOptional: true, hostPorts: s.hostPorts ?? null }));
      violations.push(...beyondCeiling(spec.resources, spec.devices, s.settings.ceiling));
      let res = fromResources(spec.resources);
      const devices: DeviceNeed[] = [];
      const flavor = spec.flavor ? s.flavor(spec.flavor) : undefined;
      if (spec.flavor && !flavor)
        violations.push({ field: 'spec.flavor', description: `no flavor named ${spec.flavor} (see ListFlavors)` });
      if (flavor) res = fromResources(flavor.resources);
      if (!spec.flavor && (res.cpu <= 0 || res.mem <= 0))
        violations.push({ field: 'spec.flavor', description: 'required (or spec.resources with cpu_millis and memory_bytes)' });
      let gpuDevices = 0;
      for (const [i, d] of [...(flavor?.devices ?? []), ...spec.devices].entries()) {
        if (d.kind === DeviceKind.UNSPECIFIED) violations.push({ field: `spec.devices[${i}].kind`, description: 'required' });
        else if (d.kind !== DeviceKind.GPU) devices.push({ kind: d.kind, count: d.ids.length || d.count || 1 });
        else gpuDevices += d.cdiNames.length || d.ids.length || d.count || 1;
      }
      // The node grants every GPU device request (by cdi_names, ids or count; a flavor's GPUs are
      // one), so room and quotas count them, not only the flavor's or spec's resources.gpus.
      if (gpuDevices > res.gpus) res = { ...res, gpus: gpuDevices };
      if (!Object.values(Backend).includes(req.backend) || req.backend === Backend.UNRECOGNIZED)
        violations.push({ field: 'backend', description: 'unknown backend' });
      if (req.onPreemption === PreemptionAction.UNRECOGNIZED) violations.push({ field: 'on_preemption', description: 'unknown action' });
      if (req.partition && !NAME.test(req.partition)) violations.push({ field: 'partition', description: 'not a partition name' });
      const declared = s.settings.partitions.map((p) => p.name);
      if (req.partition && declared.length > 0 && !s.partitions().some((p) => p.name === req.partition)) {
        violations.push({
          field: 'partition',
          description: `no partition ${req.partition}; known: ${s
            .partitions()
            .map((p) => p.name)
            .join(', ')}`,
        });
      }
      if (req.partition && s.settings.partitions.some((p) => p.name === req.partition && p.closed)) {
        violations.push({
          field: 'partition',
          description: `partition ${req.partition} takes no claims: its nodes belong to the batch system`,
        });
      }
      if (req.qos && !s.settings.qos.has(req.qos))
        violations.push({ field: 'qos', description: `no QOS ${req.qos}; known: ${[...s.settings.qos.keys()].join(', ')}` });
      if (req.antiAffinityGroup.length > 253) violations.push({ field: 'anti_affinity_group', description: 'at most 253 characters' });
      if (req.requestId.length > 200) violations.push({ field: 'request_id', description: 'at most 200 characters' });
      if (violations.length) throw invalidArgument(violations);
      const project = ctx.caller.project;
      const quota = s.quotas.get(project);
      if (quota && !withinLimit(res, quota.maxResources)) {
        throw failedPrecondition(
          `the claim (${res.cpu / 1000} CPU, ${res.mem} bytes, ${res.gpus} GPU) is larger than project ${project}'s whole quota`,
          'LARGER_THAN_QUOTA',
        );
      }
      const rec = await s.submit({
        project,
        user: ctx.caller.user,
        spec: {
          ...spec,
          resources: {
            ...(spec.resources ?? { pids: 0, diskBytes: 0 }),
            ...toResources(res),
            pids: flavor?.resources?.pids ?? spec.resources?.pids ?? 0,
            diskBytes: flavor?.resources?.diskBytes ?? spec.resources?.diskBytes ?? 0,
          },
          devices: [...(flavor?.devices ?? []), ...spec.devices],
        },
        res,
        devices,
        preemptible: req.preemptible,
        requeue: req.onPreemption !== PreemptionAction.END,
        partition: req.partition,
        backend: req.backend,
        group: req.antiAffinityGroup,
        qos: req.qos,
        requestId: req.requestId,
      });
      ctx.log.info({ claim: rec.id }, 'claim submitted');
      return { claim: toClaim(s.view(rec)) };
    },

    async getClaim(req, ctx) {
      if (!req.claimId) throw invalidArgument([{ field: 'claim_id', description: 'required' }]);
      const c = s.claim(req.claimId);
      if (!c || !visible(ctx, c)) throw notFound(`claim ${req.claimId} not found`, 'CLAIM_NOT_FOUND');
      return { claim: toClaim(s.view(c)) };
    },

    async listClaims(req, ctx) {
      const project = scopeProject(ctx, req.project);
      const states = new Set(req.states);
      const items: Array<ClaimRecord & { priority: number }> = [];
      for (const { rec } of s.claims.values()) {
        if (project && rec.project !== project) continue;
        if (states.size && !states.has(rec.state)) continue;
        if (req.partition && (rec.partition || s.settings.defaultPartition) !== req.partition) continue;
        if (req.node && rec.node !== req.node) continue;
        items.push(s.view(rec));
      }
      const key = req.orderByPriority
        ? (c: ClaimRecord & { priority: number }) => `${pad((1 - c.priority) * 1e12)}|${pad(c.submitTime)}|${c.id}`
        : (c: ClaimRecord) => `${pad(c.submitTime)}|${c.id}`;
      const keyed = items.map((c) => ({ c, k: key(c) })).sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
      const page = paginate(keyed, (x) => x.k, req);
      return { claims: page.items.map((x) => toClaim(x.c)), nextPageToken: page.nextPageToken };
    },

    async cancelClaim(req, ctx) {
      if (!req.claimId) throw invalidArgument([{ field: 'claim_id', description: 'required' }]);
      const c = s.claim(req.claimId);
      if (!c || !visible(ctx, c)) throw notFound(`claim ${req.claimId} not found`, 'CLAIM_NOT_FOUND');
      // Cancelling is idempotent: a claim already ended or cancelled is returned as it is.
      const after = (await s.cancel(c.id)) ?? s.claim(c.id)!;
      return { claim: toClaim(s.view(after)) };
    },

    async getPriority(req, ctx) {
      const ids = req.claimIds.length
        ? req.claimIds
        : [...s.claims.values()]
            .filter(({ rec }) => rec.state === ClaimState.PENDING || rec.state === ClaimState.REQUEUED)
            .map(({ rec }) => rec.id);
      const priorities = [];
      for (const id of ids) {
        const c = s.claim(id);
        if (!c || !visible(ctx, c)) {
          if (req.claimIds.length) throw notFound(`claim ${id} not found`, 'CLAIM_NOT_FOUND');
          continue;
        }
        const b = s.priorities.get(id);
        priorities.push({ claimId: id, project: c.project, user: c.user, factors: b ? factors(b) : undefined });
      }
      return { priorities, weights: factors(weightsRow(s.settings.weights)) };
    },

    async getFairShare(req, ctx) {
      const account = scopeProject(ctx, req.account, 'account');
      const rows = s.fairShare().rows.filter((r) => !account || r.account === account);
      const half = s.settings.halfLifeMs;
      return {
        entries: rows.map(entry),
        algorithm: s.settings.algorithm === 'classic' ? FairShareAlgorithm.CLASSIC : FairShareAlgorithm.FAIR_TREE,
        usageHalfLife: { seconds: Math.floor(half / 1000), nanos: (half % 1000) * 1e6 },
      };
    },

    async listFlavors(req) {
      const page = paginate(
        [...s.flavors].sort((a, b) => (a.name < b.name ? -1 : 1)),
        (f) => f.name,
        req,
      );
      return { flavors: page.items, nextPageToken: page.nextPageToken };
    },

    async listPartitions(req) {
      const page = paginate(s.partitions(), (p) => p.name, req);
      const nodes = nodesByPartition(s);
      return { partitions: page.items.map((p) => toPartition(s, p, nodes)), nextPageToken: page.nextPageToken };
    },

    async setAccount(req, ctx) {
      ctx.requireAdmin();
      const violations: FieldViolation[] = [];
      if (!req.account || !NAME.test(req.account))
        violations.push({ field: 'account', description: 'required: letters, digits, dots, dashes, underscores' });
      if (req.parent && req.parent === req.account)
        violations.push({ field: 'parent', description: 'an account cannot be its own parent' });
      if (req.parent && !s.accounts.has(req.parent)) violations.push({ field: 'parent', description: `no account ${req.parent}` });
      for (const user of Object.keys(req.userShares))
        if (!user) violations.push({ field: 'user_shares', description: 'user names must not be empty' });
      if (violations.length) throw invalidArgument(violations);
      await s.setAccount({ name: req.account, parent: req.parent, shares: req.shares, userShares: { ...req.userShares } });
      const row = s.fairShare().rows.find((r) => r.account === req.account && r.user === '');
      return { account: row ? entry(row) : undefined };
    },

    async getQuota(req, ctx) {
      const project = scopeProject(ctx, req.project) || ctx.caller.project;
      if (!project) throw invalidArgument([{ field: 'project', description: 'required' }]);
      const q = s.quotas.get(project);
      const used = s.projectUse(project);
      return {
        quota: {
          project,
          maxInstances: q?.maxInstances ?? 0,
          maxResources: toResources(q?.maxResources ?? { cpu: 0, mem: 0, gpus: 0 }),
          usedInstances: used.n,
          usedResources: toResources(used.res),
        },
      };
    },

    async setQuota(req, ctx) {
      ctx.requireAdmin();
      const q = req.quota;
      if (!q) throw invalidArgument([{ field: 'quota', description: 'required' }]);
      if (!q.project || !NAME.test(q.project)) throw invalidArgument([{ field: 'quota.project', description: 'required' }]);
      await s.setQuota(q.project, { maxInstances: q.maxInstances, maxResources: fromResources(q.maxResources) });
      const used = s.projectUse(q.project);
      return { quota: { ...q, usedInstances: used.n, usedResources: toResources(used.res) } };
    },

    async moveNode(req, ctx) {
      ctx.requireAdmin();
      const violations: FieldViolation[] = [];
      if (!req.node) violations.push({ field: 'node', description: 'required' });
      if (!req.toPartition || !NAME.test(req.toPartition)) violations.push({ field: 'to_partition', description: 'required' });
      if (violations.length) throw invalidArgument(violations);
      if (!s.nodes.has(req.node)) throw notFound(`node ${req.node} not found (no heartbeat seen)`, 'NODE_NOT_FOUND');
      const running = s.nodeRuns(req.node);
      if (running > 0 && !req.drain) {
        throw failedPrecondition(`node ${req.node} runs ${running} instance(s); set drain to move it once they leave`, 'NODE_BUSY');
      }
      const from = await s.moveNode(req.node, req.toPartition, req.reason, ctx.caller.user);
      return { node: req.node, fromPartition: from, toPartition: req.toPartition };
    },

    async setAllocationRatios(req, ctx) {
      ctx.requireAdmin();
      const violations: FieldViolation[] = [];
      if (!req.partition === !req.node) violations.push({ field: 'partition', description: 'exactly one of partition and node' });
      else if (req.partition && !NAME.test(req.partition)) violations.push({ field: 'partition', description: 'not a partition name' });
      const cpu = req.ratios?.cpu ?? 0;
      const mem = req.ratios?.memory ?? 0;
      for (const [field, value] of [
        ['ratios.cpu', cpu],
        ['ratios.memory', mem],
      ] as const) {
        const problem = ratioProblem(value, true);
        if (problem) violations.push({ field, description: problem });
      }
      if (violations.length) throw invalidArgument(violations);
      const node = req.node ? s.nodes.get(req.node) : undefined;
      if (req.node && !node) throw notFound(`node ${req.node} not found (no heartbeat seen)`, 'NODE_NOT_FOUND');
      if (req.partition && !s.partitions().some((p) => p.name === req.partition))
        throw notFound(`no partition ${req.partition} (see ListPartitions)`, 'PARTITION_NOT_FOUND');
      await s.setRatios(node ? 'node' : 'partition', req.node || req.partition, { cpu, mem });
      const name = node ? s.partitionOfNode(node) : req.partition;
      const partition = s.partitions().find((p) => p.name === name);
      return { partition: partition && toPartition(s, partition, nodesByPartition(s)) };
    },

    async listNodeMoves(req, ctx) {
      ctx.requireAdmin();
      // Newest first; the page key counts down from the newest (a move recorded later never shifts a page already read).
      const moves = (await s.recentMoves()).filter((m) => !req.node || m.node === req.node);
      const keyed = moves.map((m, i) => ({ m, k: `${pad(Number.MAX_SAFE_INTEGER - m.time)}|${pad(i, 4)}` }));
      const page = paginate(keyed, (x) => x.k, req);
      return {
        moves: page.items.map(({ m }) => ({
          node: m.node,
          fromPartition: m.from,
          toPartition: m.to,
          reason: m.reason,
          time: new Date(m.time),
          user: m.user,
        })),
        nextPageToken: page.nextPageToken,
      };
    },
  };
  return service(SchedulerServiceService, handlers);
}
