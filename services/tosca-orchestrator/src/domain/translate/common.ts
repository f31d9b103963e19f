// What every translator needs: node kinds, sizes, images, attachments.
import type { NodeTemplate, Topology } from '../model';
import { isDict } from '../registry';
import { parseScalar } from '../values';
import { evaluate, hostOf, type EvalContext } from '../functions';

export const is = (node: NodeTemplate, base: string) => node.ancestors.includes(base);
export const isCompute = (n: NodeTemplate) => is(n, 'tosca.nodes.Compute') || is(n, 'tosca.nodes.Abstract.Compute');
export const isBlockStorage = (n: NodeTemplate) => is(n, 'tosca.nodes.Storage.BlockStorage');
export const isContainerApp = (n: NodeTemplate) => is(n, 'tosca.nodes.Container.Application');
export const isContainerRuntime = (n: NodeTemplate) =>
  is(n, 'tosca.nodes.Container.Runtime') || is(n, 'tosca.nodes.indigo.Container.Runtime.Docker');
export const isNetwork = (n: NodeTemplate) => is(n, 'tosca.nodes.network.Network');
export const isPort = (n: NodeTemplate) => is(n, 'tosca.nodes.network.Port');

/** A capability property, evaluated. */
export function capProp(topology: Topology, node: NodeTemplate, cap: string, prop: string): unknown {
  const v = node.capabilities[cap]?.properties[prop];
  return v === undefined ? undefined : evaluate({ topology, self: node }, v);
}

export function prop(topology: Topology, node: NodeTemplate, name: string, ctx?: Partial<EvalContext>): unknown {
  const v = node.properties[name];
  return v === undefined ? undefined : evaluate({ topology, self: node, ...ctx }, v);
}

/** MiB from a scalar-unit.size (or a bare number of MB). */
export function sizeMiB(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  const bytes = parseScalar(value, 'scalar-unit.size');
  return bytes === undefined ? undefined : Math.ceil(bytes / 1024 ** 2);
}

/** Decimal megabytes (what heat-translator and IM use for mem_size). */
export function sizeMB(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  const bytes = parseScalar(value, 'scalar-unit.size');
  return bytes === undefined ? undefined : Math.ceil(bytes / 1e6);
}

export function sizeGiB(value: unknown): number | undefined {
  const mib = sizeMiB(value);
  return mib === undefined ? undefined : Math.max(1, Math.ceil(mib / 1024));
}

export interface Attachment {
  name: string;
  compute: NodeTemplate;
  volume: NodeTemplate;
  location?: string;
  device?: string;
  fsType?: string;
}

/** Compute -> BlockStorage attachments (AttachesTo requirements of either side). */
export function attachments(topology: Topology): Attachment[] {
  const out: Attachment[] = [];
  for (const e of topology.edges) {
    if (e.kind !== 'AttachesTo') continue;
    const source = topology.nodes.get(e.source)!;
    const target = topology.nodes.get(e.target)!;
    const [compute, volume] = isBlockStorage(source) ? [target, source] : [source, target];
    const req = source.requirements.find((r) => r.name === e.requirement && r.node === e.target);
    const tpl = req?.relationshipTemplate ? topology.relationshipTemplates.get(req.relationshipTemplate) : undefined;
    const props = { ...(tpl?.properties ?? {}), ...(req?.properties ?? {}) };
    const ev = (v: unknown) => evaluate({ topology, self: source, source, target }, v);
    out.push({
      name: `${compute.name}_${volume.name}_attachment`,
      compute,
      volume,
      location: typeof ev(props.location) === 'string' ? (ev(props.location) as string) : undefined,
      device: typeof ev(props.device) === 'string' ? (ev(props.device) as string) : undefined,
      fsType: typeof ev(props.fs_type) === 'string' ? (ev(props.fs_type) as string) : undefined,
    });
  }
  return out;
}

/** The image a compute or container node runs: os.image, an image artifact, or os distribution. */
export function imageOf(topology: Topology, node: NodeTemplate): string | undefined {
  for (const a of Object.values(node.artifacts)) {
    if (a.file && a.type && /Deployment\.Image/.test(a.type)) return String(evaluate({ topology, self: node }, a.file));
  }
  const image = capProp(topology, node, 'os', 'image') ?? prop(topology, node, 'image');
  if (typeof image === 'string') return image;
  const distribution = capProp(topology, node, 'os', 'distribution');
  const version = capProp(topology, node, 'os', 'version');
  if (typeof distribution === 'string') return version !== undefined ? `${distribution}-${String(version)}` : distribution;
  for (const a of Object.values(node.artifacts))
    if (isDict(a.raw) && typeof a.file === 'string' && /image/i.test(String(a.type ?? ''))) return a.file;
  return undefined;
}

export function scaleCount(topology: Topology, node: NodeTemplate): number {
  const count =
    capProp(topology, node, 'scalable', 'count') ??
    capProp(topology, node, 'scalable', 'default_instances') ??
    capProp(topology, node, 'scalable', 'min_instances');
  return typeof count === 'number' && count >= 0 ? count : 1;
}

/** The compute a node finally runs on (itself when it is one). */
export function computeOf(topology: Topology, node: NodeTemplate): NodeTemplate | undefined {
  let current: NodeTemplate | undefined = node;
  const seen = new Set<string>();
  while (current && !seen.has(current.name)) {
    if (isCompute(current)) return current;
    seen.add(current.name);
    current = hostOf(topology, current);
  }
  return undefined;
}

export const dnsName = (name: string) =>
  name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63) || 'node';
