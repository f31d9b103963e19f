// What a topology becomes on Lapis, and in which order: instances (scheduler claims) for
// compute and container nodes, volumes for block storage, attachments for AttachesTo; and what
// an update changes (scaling through scalable.count and removal_list). Pure: no I/O.
import { evaluate } from './functions';
import type { NodeTemplate, Topology } from './model';
import {
  attachments,
  capProp,
  computeOf,
  imageOf,
  isBlockStorage,
  isCompute,
  isContainerApp,
  isContainerRuntime,
  isPort,
  prop,
} from './translate/common';
import { isDict } from './registry';
import { parseScalar } from './values';
import { hostOf } from './functions';

export interface InstancePlan {
  /** Stable within the deployment: `<node>-<n>`. */
  key: string;
  node: string;
  name: string;
  image: string;
  flavor: string;
  cpuMillis: number;
  memoryBytes: number;
  gpus: number;
  diskBytes: number;
  preemptible: boolean;
  command: string[];
  environment: Record<string, string>;
  ports: { containerPort: number; hostPort: number; protocol: string }[];
  networks: string[];
  /** Keys of what must exist first (instances, volumes). */
  after: string[];
}

export interface VolumePlan {
  key: string;
  node: string;
  sizeBytes: number;
  filesystem: string;
}

export interface AttachmentPlan {
  key: string;
  volume: string;
  instance: string;
  mountPath: string;
}

export interface Plan {
  instances: InstancePlan[];
  volumes: VolumePlan[];
  attachments: AttachmentPlan[];
  /** Problems that stop a deployment (an instance without an image, ...). */
  problems: { node: string; message: string }[];
}

/** Instance keys a node has now (for updates: kept as they are, so nothing moves needlessly). */
export type Existing = Map<string, { key: string; instanceId?: string }[]>;

const dnsLabel = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63) || 'node';

function countOf(topology: Topology, node: NodeTemplate): number {
  const owner = isContainerApp(node) ? (hostOf(topology, node) ?? node) : node;
  const v =
    capProp(topology, owner, 'scalable', 'count') ??
    capProp(topology, owner, 'scalable', 'default_instances') ??
    capProp(topology, owner, 'scalable', 'min_instances');
  return typeof v === 'number' && v >= 0 ? Math.floor(v) : 1;
}

function removalList(topology: Topology, node: NodeTemplate): string[] {
  const owner = isContainerApp(node) ? (hostOf(topology, node) ?? node) : node;
  const v = capProp(topology, owner, 'scalable', 'removal_list');
  return Array.isArray(v) ? v.map(String) : [];
}

/** Which nodes become instances: containers, and computes that do not only host container runtimes. */
export function instanceNodes(topology: Topology): NodeTemplate[] {
  const hostsRuntime = new Set<string>();
  for (const e of topology.edges) {
    if (e.kind === 'HostedOn' && isContainerRuntime(topology.nodes.get(e.source)!)) hostsRuntime.add(e.target);
  }
  return topology.order.map((n) => topology.nodes.get(n)!).filter((n) => isContainerApp(n) || (isCompute(n) && !hostsRuntime.has(n.name)));
}

/** Other nodes whose attributes a node's values read (get_attribute): they must run first. */
function attributeRefs(topology: Topology, node: NodeTemplate): string[] {
  const out = new Set<string>();
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (isDict(v)) {
      const args = v.get_attribute;
      if (Array.isArray(args) && typeof args[0] === 'string' && topology.nodes.has(args[0]) && args[0] !== node.name) out.add(args[0]);
      Object.values(v).forEach(walk);
    }
  };
  walk(node.raw.properties);
  walk(node.raw.capabilities);
  walk(node.raw.interfaces);
  return [...out];
}

/** The nodes a node waits for, through nodes that make nothing (software, runtimes). */
// Attribute references are soft: they count only towards nodes earlier in the deployment order,
// so mutual references (a front end listing its workers, workers reading the front end's
// address) cannot deadlock: the earlier node goes first.
function resourceDeps(topology: Topology, name: string, makes: Set<string>, owner = name): string[] {
  const out = new Set<string>();
  const seen = new Set<string>([name]);
  const rank = (n: string) => topology.order.indexOf(n);
  const soft = (n: string) => attributeRefs(topology, topology.nodes.get(n)!).filter((r) => rank(r) < rank(owner));
  const stack = [...topology.edges.filter((e) => e.source === name).map((e) => e.target), ...soft(name)];
  // What hosts a node is not something it waits for when the host is the node itself.
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    if (makes.has(n)) out.add(n);
    else {
      for (const e of topology.edges) if (e.source === n) stack.push(e.target);
      stack.push(...soft(n));
    }
  }
  // Software hosted on an instance node and its dependencies count for that instance too.
  for (const e of topology.edges) {
    if (e.kind !== 'HostedOn' || e.target !== name) continue;
    const hosted = e.source;
    if (makes.has(hosted)) continue;
    for (const d of resourceDeps(topology, hosted, makes, owner)) if (d !== name) out.add(d);
  }
  return [...out];
}

export function plan(topology: Topology, existing: Existing = new Map()): Plan {
  const result: Plan = { instances: [], volumes: [], attachments: [], problems: [] };
  const nodes = instanceNodes(topology);
  const makes = new Set([...nodes.map((n) => n.name), ...[...topology.nodes.values()].filter(isBlockStorage).map((n) => n.name)]);
  const keysOf = new Map<string, string[]>();
  for (const node of nodes) {
    const count = countOf(topology, node);
    const had = existing.get(node.name) ?? [];
    const removal = new Set(removalList(topology, node));
    // Keep existing instances (those not in removal_list first), then add new keys.
    const kept = [
      ...had.filter((h) => !removal.has(h.instanceId ?? '') && !removal.has(h.key)),
      ...had.filter((h) => removal.has(h.instanceId ?? '') || removal.has(h.key)),
    ]
      .slice(0, count)
      .map((h) => h.key);
    let next = 0;
    const used = new Set(had.map((h) => h.key));
    while (kept.length < count) {
      let key = `${node.name}-${next++}`;
      while (used.has(key)) key = `${node.name}-${next++}`;
      used.add(key);
      kept.push(key);
    }
    keysOf.set(node.name, kept);
  }
  for (const node of nodes) {
    const host = isContainerApp(node) ? hostOf(topology, node) : node;
    const hostProp = (p: string) => (host ? capProp(topology, host, 'host', p) : undefined);
    const image = imageOf(topology, node) ?? (host && host !== node ? imageOf(topology, host) : undefined);
    if (!image)
      result.problems.push({ node: node.name, message: `node ${node.name} names no image (os capability image, or an image artifact)` });
    const cpus = Number(hostProp('num_cpus') ?? 0);
    const mem = parseScalar(hostProp('mem_size'), 'scalar-unit.size') ?? 0;
    const disk = parseScalar(hostProp('disk_size'), 'scalar-unit.size') ?? 0;
    const flavor = hostProp('instance_type');
    // Amounts no claim can carry (beyond 2^53, negative, not numbers) are the template's
    // mistake, said now; the scheduler refuses the merely huge ones at submit, naming the field.
    const gpus = Number(hostProp('num_gpus') ?? 0) || 0;
    for (const [property, amount] of [
      ['num_cpus', cpus * 1000],
      ['mem_size', mem],
      ['disk_size', disk],
      ['num_gpus', gpus],
    ] as const) {
      if (!(Number.isFinite(amount) && amount >= 0 && amount <= Number.MAX_SAFE_INTEGER)) {
        result.problems.push({
          node: node.name,
          message: `node ${node.name}: host property ${property} is not an amount any node could have`,
        });
      }
    }
    const command = prop(topology, node, 'command');
    const env = prop(topology, node, 'environment_variables');
    const environment: Record<string, string> = {};
    if (isDict(env)) for (const [k, v] of Object.entries(env)) environment[k] = typeof v === 'string' ? v : JSON.stringify(v);
    const ports: InstancePlan['ports'] = [];
    const addPorts = (list: unknown) => {
      const items = Array.isArray(list) ? list : isDict(list) ? Object.values(list) : [];
      for (const p of items) {
        if (!isDict(p)) continue;
        const target = Number(p.target ?? p.source);
        const source = Number(p.source ?? p.target);
        if (Number.isFinite(target))
          ports.push({ containerPort: target, hostPort: Number.isFinite(source) ? source : target, protocol: String(p.protocol ?? 'tcp') });
      }
    };
    if (host) addPorts(hostProp('publish_ports'));
    addPorts(capProp(topology, node, 'endpoint', 'ports'));
    const networks = [...topology.nodes.values()]
      .filter((p) => isPort(p) && p.requirements.some((r) => r.name === 'binding' && r.node === node.name))
      .map((p) => p.requirements.find((r) => r.name === 'link')?.node)
      .filter((n): n is string => !!n)
      .map((n) => String(evaluate({ topology }, topology.nodes.get(n)!.properties.network_name ?? n)));
    const deps = resourceDeps(topology, node.name, makes).flatMap((d) => keysOf.get(d) ?? []);
    for (const key of keysOf.get(node.name)!) {
      result.instances.push({
        key,
        node: node.name,
        name: dnsLabel(key),
        image: image ?? '',
        flavor: typeof flavor === 'string' ? flavor : '',
        cpuMillis: Math.round(cpus * 1000),
        memoryBytes: Math.round(mem),
        gpus,
        diskBytes: Math.round(disk),
        preemptible: hostProp('preemtible_instance') === true || hostProp('preemptible') === true,
        command: typeof command === 'string' && command ? ['/bin/sh', '-c', command] : [],
        environment,
        ports,
        networks,
        after: deps,
      });
    }
  }
  // Volumes: one per instance of the node they attach to (each VM gets its own disk).
  for (const a of attachments(topology)) {
    const targets =
      keysOf.get(a.compute.name) ??
      [...keysOf.entries()].filter(([n]) => computeOf(topology, topology.nodes.get(n)!)?.name === a.compute.name).flatMap(([, k]) => k);
    const size = parseScalar(evaluate({ topology, self: a.volume }, a.volume.properties.size), 'scalar-unit.size') ?? 1024 ** 3;
    for (const instance of targets) {
      const key = `${a.volume.name}-${instance}`;
      result.volumes.push({ key, node: a.volume.name, sizeBytes: Math.round(size), filesystem: a.fsType ?? 'ext4' });
      result.attachments.push({ key: `${key}@${instance}`, volume: key, instance, mountPath: a.location ?? `/mnt/${a.volume.name}` });
      const inst = result.instances.find((i) => i.key === instance);
      if (inst) inst.after = inst.after.filter((k) => !(keysOf.get(a.volume.name) ?? []).includes(k));
    }
  }
  // Instances waited for volumes of their own node only through attachments; drop volume node names.
  for (const i of result.instances) i.after = i.after.filter((k) => result.instances.some((o) => o.key === k));
  return result;
}

export interface PlanDiff {
  createInstances: InstancePlan[];
  deleteInstances: string[];
  /** Same key, different spec: deleted, then created again. */
  replaceInstances: InstancePlan[];
  createVolumes: VolumePlan[];
  deleteVolumes: string[];
  attach: AttachmentPlan[];
  detach: string[];
}

const specKey = (i: InstancePlan) => JSON.stringify({ ...i, after: undefined, key: undefined });

export function diff(before: Plan, after: Plan): PlanDiff {
  const old = new Map(before.instances.map((i) => [i.key, i]));
  const now = new Map(after.instances.map((i) => [i.key, i]));
  const oldVolumes = new Set(before.volumes.map((v) => v.key));
  const newVolumes = new Set(after.volumes.map((v) => v.key));
  const oldAttach = new Set(before.attachments.map((a) => a.key));
  const newAttach = new Set(after.attachments.map((a) => a.key));
  return {
    createInstances: after.instances.filter((i) => !old.has(i.key)),
    deleteInstances: before.instances.filter((i) => !now.has(i.key)).map((i) => i.key),
    replaceInstances: after.instances.filter((i) => old.has(i.key) && specKey(old.get(i.key)!) !== specKey(i)),
    createVolumes: after.volumes.filter((v) => !oldVolumes.has(v.key)),
    deleteVolumes: before.volumes.filter((v) => !newVolumes.has(v.key)).map((v) => v.key),
    attach: after.attachments.filter((a) => !oldAttach.has(a.key)),
    detach: before.attachments.filter((a) => !newAttach.has(a.key)).map((a) => a.key),
  };
}

/** Waves of instance keys: each wave needs only what earlier waves made (creation order). */
export function waves(p: Plan): string[][] {
  const done = new Set<string>();
  const left = new Map(p.instances.map((i) => [i.key, i.after]));
  const out: string[][] = [];
  while (left.size) {
    const wave = [...left].filter(([, after]) => after.every((a) => done.has(a) || !left.has(a))).map(([k]) => k);
    if (!wave.length) {
      out.push([...left.keys()]);
      break;
    }
    for (const k of wave) {
      left.delete(k);
      done.add(k);
    }
    out.push(wave);
  }
  return out;
}
