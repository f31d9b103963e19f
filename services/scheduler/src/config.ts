// The scheduler's configuration, parsed once at start: the environment (the platform's
// variables plus its own), then the policy file one of them names.
import {
  checkHostPortsVariable,
  listenPort,
  loadConfig,
  parseQuantity,
  platformSpecs,
  readYamlFile,
  requireAuthSource,
} from '@lapis/platform';
import { num, str } from 'envalid';
import type { PartitionDef, QuotaDef } from './domain/cycle';
import { DEFAULT_CEILING, type Ceiling } from './domain/ceiling';
import type { AccountDef, Algorithm, BillingWeights } from './domain/fairshare';
import type { Res } from './domain/model';
import { MAX_ALLOCATION_RATIO, ratioProblem } from './domain/overcommit';
import type { PlacementOptions } from './domain/placement';
import { DEFAULT_WEIGHTS, type Weights } from './domain/priority';

export const schedulerSpecs = {
  ...platformSpecs,
  LAPIS_GRPC_PORT: listenPort({ default: 50053, desc: 'port the gRPC server listens on (0 picks a free one)' }),
  LAPIS_FLAVORS_FILE: str({ desc: "YAML file of the site's flavors", example: 'config/flavors.yaml' }),
  LAPIS_SCHEDULER_CONFIG_FILE: str({
    default: '',
    desc: 'YAML file of partitions, weights, fair share, QOS, accounts and quotas (empty: defaults)',
  }),
  LAPIS_SCHEDULER_BUCKET_PREFIX: str({ default: 'scheduler', desc: 'prefix of the key-value buckets (<prefix>-claims, ...)' }),
  LAPIS_SCHEDULER_CONSUMER_PREFIX: str({ default: 'scheduler', desc: 'prefix of the durable consumer names' }),
  LAPIS_SCHEDULER_CYCLE_MS: num({ default: 1000, desc: 'time between scheduling cycles when no event triggers one' }),
  LAPIS_SCHEDULER_LEASE_MS: num({ default: 3000, desc: 'leader lease; a standby takes over this long after the leader stops renewing' }),
  LAPIS_SCHEDULER_MAX_PLACEMENTS: num({
    default: 500,
    desc: 'most placements one cycle makes (a bounded cycle: the next one follows at once while the queue has work)',
  }),
  LAPIS_HOST_PORTS: str({
    default: '',
    desc: 'host ports instances may publish, "low-high" (the runtime agents\' range: set both from one value); empty: none',
  }),
  LAPIS_HEARTBEAT_MS: num({ default: 5000, desc: 'runtime heartbeat period; a node silent for 3 of them is down' }),
  LAPIS_SCHEDULER_NODE_LOST_MS: num({
    default: 30_000,
    desc: 'a node silent this long is lost: its instances are requeued (restart_on_failure) or ended, and it is fenced (0: never)',
  }),
};

export const loadSchedulerConfig = (env: NodeJS.ProcessEnv = process.env) =>
  loadConfig(schedulerSpecs, env, [requireAuthSource, checkHostPortsVariable]);
export type SchedulerConfig = ReturnType<typeof loadSchedulerConfig>;

// The scheduler's policy: partitions, priority weights, fair-share algorithm and usage
// half-life, billing weights, QOS, placement strategy, and the accounts and quotas a site
// starts with. Read from the YAML file LAPIS_SCHEDULER_CONFIG_FILE (every key optional):
//
//   default_partition: default
//   partitions:
//     - { name: default, tier: 1, allow_preemptible: true, max: { cpus: 512, memory: 2Ti, gpus: 8 } }
//     - { name: cloud, batch_partition: batch, min_nodes: 0, max_nodes: 8 }
//     - { name: slurm-batch, closed: true }   # the nodes Slurm has: no claim goes there
//     - { name: web, cpu_allocation_ratio: 4, memory_allocation_ratio: 1.5 }  # overcommit (1..64; default 1)
//   weights: { age: 1000, fair_share: 10000, job_size: 1000, partition: 1000, qos: 1000, max_age: 7d, favor_small: true }
//   fair_share: { algorithm: fair_tree, half_life: 7d, billing: { cpu: 1, memory_gib: 0.25, gpu: 10 } }
//   qos: { normal: 0, high: 100 }
//   placement: { strategy: spread, image_weight: 0.3, max_scored: 64 }
//   preemption: { grace: 30s }
//   accounts: [{ name: physics, parent: "", shares: 70, users: { alice: 1 } }]
//   quotas: [{ project: physics, instances: 100, cpus: 200, memory: 512Gi, gpus: 4 }]
//   claim_ceiling: { cpus: 4096, memory: 64Ti, gpus: 64, disk: 1024Ti, pids: 4194304, devices: 64 }
export interface Settings {
  defaultPartition: string;
  partitions: PartitionDef[];
  weights: Weights;
  algorithm: Algorithm;
  halfLifeMs: number;
  billing: BillingWeights;
  qos: Map<string, number>;
  placement: PlacementOptions;
  preemptGraceMs: number;
  accounts: AccountDef[];
  quotas: Array<{ project: string } & QuotaDef>;
  /** Claims asking for more are refused at submit: no node could ever run them. */
  ceiling: Ceiling;
}

export function defaultSettings(): Settings {
  return {
    defaultPartition: 'default',
    partitions: [],
    weights: { ...DEFAULT_WEIGHTS },
    algorithm: 'fair_tree',
    halfLifeMs: 7 * 24 * 3600_000,
    billing: { cpu: 1, memGiB: 0.25, gpu: 10 },
    qos: new Map([['normal', 0]]),
    placement: { strategy: 'spread', imageWeight: 0.3, maxScored: 64 },
    preemptGraceMs: 30_000,
    accounts: [],
    quotas: [],
    ceiling: { ...DEFAULT_CEILING },
  };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 };

/** "7d", "90s", "500ms" or a number of milliseconds. */
export function parseDuration(value: unknown): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  const m = typeof value === 'string' ? /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/.exec(value.trim()) : null;
  if (!m) throw new Error(`${JSON.stringify(value)} is not a duration such as 30s, 1h or 7d`);
  return Number(m[1]) * DURATION_UNITS[m[2]!]!;
}

export function parseResources(raw: unknown, where: string): Res {
  const r = (raw ?? {}) as Record<string, unknown>;
  const q = (key: string) => {
    try {
      return r[key] === undefined ? 0 : parseQuantity(r[key]);
    } catch (error) {
      throw new Error(`${where}.${key}: ${(error as Error).message}`);
    }
  };
  return { cpu: Math.round(q('cpus') * 1000), mem: q('memory'), gpus: q('gpus') };
}

// biome-ignore lint/suspicious/noExplicitAny: a YAML document: every field is checked as it is read.
type YamlMap = Record<string, any>;

export function parseSettings(doc: unknown, source: string): Settings {
  const s = defaultSettings();
  const d = (doc ?? {}) as YamlMap;
  const num = (v: unknown, where: string, fallback: number) => {
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${source}: ${where}: expected a number >= 0`);
    return v;
  };
  /** An allocation ratio (domain/overcommit.ts); absent: 0, not set. */
  const ratio = (v: unknown, where: string) => {
    if (v === undefined) return 0;
    const problem = typeof v === 'number' ? ratioProblem(v, false) : `an allocation ratio from 1 to ${MAX_ALLOCATION_RATIO}`;
    if (problem) throw new Error(`${source}: ${where}: expected ${problem}`);
    return v as number;
  };
  if (d.default_partition !== undefined) s.defaultPartition = String(d.default_partition);
  if (d.partitions !== undefined) {
    if (!Array.isArray(d.partitions)) throw new Error(`${source}: partitions: expected a list`);
    s.partitions = d.partitions.map((p: YamlMap, i: number) => {
      const where = `partitions[${i}]`;
      if (typeof p?.name !== 'string' || !p.name) throw new Error(`${source}: ${where}.name: required`);
      return {
        name: p.name,
        tier: num(p.tier, `${where}.tier`, 1),
        allowPreemptible: p.allow_preemptible !== false,
        maxResources: parseResources(p.max, `${source}: ${where}.max`),
        batchPartition: String(p.batch_partition ?? ''),
        minNodes: num(p.min_nodes, `${where}.min_nodes`, 0),
        maxNodes: num(p.max_nodes, `${where}.max_nodes`, 0),
        closed: p.closed === true,
        ratios: {
          cpu: ratio(p.cpu_allocation_ratio, `${where}.cpu_allocation_ratio`),
          mem: ratio(p.memory_allocation_ratio, `${where}.memory_allocation_ratio`),
        },
      };
    });
  }
  if (s.partitions.some((p) => p.closed && p.name === s.defaultPartition)) {
    throw new Error(
      `${source}: default_partition: ${s.defaultPartition} is closed (takes no claims); the default partition must take them`,
    );
  }
  const w = d.weights ?? {};
  s.weights = {
    age: num(w.age, 'weights.age', s.weights.age),
    fairShare: num(w.fair_share, 'weights.fair_share', s.weights.fairShare),
    jobSize: num(w.job_size, 'weights.job_size', s.weights.jobSize),
    partition: num(w.partition, 'weights.partition', s.weights.partition),
    qos: num(w.qos, 'weights.qos', s.weights.qos),
    maxAgeMs: w.max_age === undefined ? s.weights.maxAgeMs : parseDuration(w.max_age),
    favorSmall: w.favor_small === undefined ? s.weights.favorSmall : w.favor_small === true,
  };
  const fs = d.fair_share ?? {};
  if (fs.algorithm !== undefined) {
    if (fs.algorithm !== 'classic' && fs.algorithm !== 'fair_tree')
      throw new Error(`${source}: fair_share.algorithm: classic or fair_tree`);
    s.algorithm = fs.algorithm;
  }
  if (fs.half_life !== undefined) s.halfLifeMs = parseDuration(fs.half_life);
  const b = fs.billing ?? {};
  s.billing = {
    cpu: num(b.cpu, 'fair_share.billing.cpu', s.billing.cpu),
    memGiB: num(b.memory_gib, 'fair_share.billing.memory_gib', s.billing.memGiB),
    gpu: num(b.gpu, 'fair_share.billing.gpu', s.billing.gpu),
  };
  if (d.qos !== undefined) {
    s.qos = new Map(Object.entries(d.qos as Record<string, unknown>).map(([k, v]) => [k, num(v, `qos.${k}`, 0)]));
  }
  const pl = d.placement ?? {};
  if (pl.strategy !== undefined && pl.strategy !== 'pack' && pl.strategy !== 'spread')
    throw new Error(`${source}: placement.strategy: pack or spread`);
  s.placement = {
    strategy: pl.strategy ?? s.placement.strategy,
    imageWeight: num(pl.image_weight, 'placement.image_weight', s.placement.imageWeight),
    maxScored: num(pl.max_scored, 'placement.max_scored', s.placement.maxScored),
  };
  if (d.preemption?.grace !== undefined) s.preemptGraceMs = parseDuration(d.preemption.grace);
  s.accounts = ((d.accounts ?? []) as YamlMap[]).map((a, i) => {
    if (typeof a?.name !== 'string' || !a.name) throw new Error(`${source}: accounts[${i}].name: required`);
    return {
      name: a.name,
      parent: String(a.parent ?? ''),
      shares: num(a.shares, `accounts[${i}].shares`, 1),
      userShares: Object.fromEntries(
        Object.entries((a.users ?? {}) as Record<string, unknown>).map(([u, v]) => [u, num(v, `accounts[${i}].users.${u}`, 1)]),
      ),
    };
  });
  s.quotas = ((d.quotas ?? []) as YamlMap[]).map((q, i) => {
    if (typeof q?.project !== 'string' || !q.project) throw new Error(`${source}: quotas[${i}].project: required`);
    return {
      project: q.project,
      maxInstances: num(q.instances, `quotas[${i}].instances`, 0),
      maxResources: parseResources(q, `${source}: quotas[${i}]`),
    };
  });
  if (d.claim_ceiling !== undefined) {
    const c = d.claim_ceiling as Record<string, unknown>;
    const where = `${source}: claim_ceiling`;
    const quantity = (key: string, fallback: number) => {
      try {
        return c[key] === undefined ? fallback : parseQuantity(c[key]);
      } catch (error) {
        throw new Error(`${where}.${key}: ${(error as Error).message}`);
      }
    };
    s.ceiling = {
      cpu: c.cpus === undefined ? s.ceiling.cpu : Math.round(quantity('cpus', 0) * 1000),
      mem: quantity('memory', s.ceiling.mem),
      gpus: num(c.gpus, 'claim_ceiling.gpus', s.ceiling.gpus),
      disk: quantity('disk', s.ceiling.disk),
      pids: num(c.pids, 'claim_ceiling.pids', s.ceiling.pids),
      devices: num(c.devices, 'claim_ceiling.devices', s.ceiling.devices),
    };
  }
  return s;
}

export function loadSettings(file: string): Settings {
  if (!file) return defaultSettings();
  return parseSettings(readYamlFile(file, 'scheduler config file'), `scheduler config file ${file}`);
}
