// TOSCA -> IM RADL: one `system` per compute node (cpu, memory, image, network interfaces,
// attached disks), the networks it uses, the software's `configure` recipes and the
// `contextualize` that runs them (radl-configure.ts), and one `deploy` per system with its count.
import { evaluate } from '../functions';
import type { NodeTemplate, Topology } from '../model';
import { attachments, capProp, imageOf, isCompute, isNetwork, isPort, prop, scaleCount, sizeGiB, sizeMB } from './common';
import { radlConfigures } from './radl-configure';
import type { TranslationNote } from './software';

const quote = (v: unknown) => `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

function imageUrl(image: string): string {
  return /^[a-z]+:\/\//.test(image) ? image : image;
}

export function translateRadl(topology: Topology, notes: TranslationNote[] = []): string {
  const lines: string[] = [];
  const networks = new Map<string, string>();
  const systems: string[] = [];
  const disks = attachments(topology);
  const computes = topology.order.map((n) => topology.nodes.get(n)!).filter(isCompute);
  const needsPublic = computes.some((c) => {
    const net = capProp(topology, c, 'endpoint', 'network_name');
    return typeof net === 'string' && net.toUpperCase() === 'PUBLIC';
  });
  if (needsPublic) networks.set('public', "network public ( outbound = 'yes' )");
  networks.set('private', 'network private ( )');
  for (const n of topology.nodes.values()) {
    if (!isNetwork(n)) continue;
    const cidr = prop(topology, n, 'cidr');
    networks.set(n.name, `network ${n.name} ( ${cidr !== undefined ? `cidr = ${quote(cidr)}` : ''} )`);
  }
  for (const c of computes)
    systems.push(
      system(
        topology,
        c,
        disks.filter((d) => d.compute === c),
      ),
    );
  lines.push(...networks.values(), '');
  for (const s of systems) lines.push(s, '');
  const { configures, contextualize } = radlConfigures(topology, notes);
  for (const c of configures) lines.push(c, '');
  if (contextualize.length) lines.push('contextualize (', ...contextualize, ')', '');
  for (const c of computes) lines.push(`deploy ${c.name} ${scaleCount(topology, c)}`);
  return `${lines.join('\n')}\n`;
}

function system(topology: Topology, node: NodeTemplate, disks: ReturnType<typeof attachments>): string {
  const features: string[] = [];
  const cpus = capProp(topology, node, 'host', 'num_cpus');
  if (typeof cpus === 'number') features.push(`cpu.count >= ${cpus}`);
  const mem = sizeMB(capProp(topology, node, 'host', 'mem_size'));
  if (mem !== undefined) features.push(`memory.size >= ${mem}M`);
  const instanceType = capProp(topology, node, 'host', 'instance_type');
  if (typeof instanceType === 'string') features.push(`instance_type = ${quote(instanceType)}`);
  const gpus = capProp(topology, node, 'host', 'num_gpus');
  if (typeof gpus === 'number') features.push(`gpu.count >= ${gpus}`);
  if (capProp(topology, node, 'host', 'preemtible_instance') === true) features.push("spot = 'yes'");
  const osType = capProp(topology, node, 'os', 'type');
  features.push(`disk.0.os.name = ${quote(typeof osType === 'string' ? osType : 'linux')}`);
  const image = imageOf(topology, node);
  if (image) features.push(`disk.0.image.url = ${quote(imageUrl(image))}`);
  const distribution = capProp(topology, node, 'os', 'distribution');
  if (typeof distribution === 'string') features.push(`disk.0.os.flavour = ${quote(distribution)}`);
  const version = capProp(topology, node, 'os', 'version');
  if (version !== undefined) features.push(`disk.0.os.version = ${quote(version)}`);
  const disk = sizeGiB(capProp(topology, node, 'host', 'disk_size'));
  if (disk !== undefined) features.push(`disk.0.free_size >= ${disk}G`);
  let nic = 0;
  const network = capProp(topology, node, 'endpoint', 'network_name');
  if (typeof network === 'string' && network.toUpperCase() === 'PUBLIC') {
    features.push(`net_interface.${nic}.connection = 'public'`);
    const dns = capProp(topology, node, 'endpoint', 'dns_name');
    if (typeof dns === 'string') features.push(`net_interface.${nic}.dns_name = ${quote(dns)}`);
    nic++;
  }
  const ports = [...topology.nodes.values()].filter(
    (p) => isPort(p) && p.requirements.some((r) => r.name === 'binding' && r.node === node.name),
  );
  for (const p of ports) {
    const link = p.requirements.find((r) => r.name === 'link')?.node;
    features.push(`net_interface.${nic}.connection = ${quote(link ?? 'private')}`);
    nic++;
  }
  if (!ports.length) features.push(`net_interface.${nic}.connection = 'private'`);
  const endpointPorts = capProp(topology, node, 'endpoint', 'ports');
  if (endpointPorts && typeof endpointPorts === 'object') {
    const spec = Object.values(endpointPorts as Record<string, Record<string, unknown>>)
      .map((p) => `${String(p.source ?? p.target)}/${String(p.protocol ?? 'tcp')}`)
      .join(',');
    if (spec) features.push(`net_interface.0.ports = ${quote(spec)}`.replace('net_interface.0', 'network.public'));
  }
  disks.forEach((d, i) => {
    const size = sizeGiB(evaluate({ topology, self: d.volume }, d.volume.properties.size));
    if (size !== undefined) features.push(`disk.${i + 1}.size = ${size}G`);
    if (d.device) features.push(`disk.${i + 1}.device = ${quote(d.device.replace(/^\/dev\//, ''))}`);
    if (d.location) features.push(`disk.${i + 1}.mount_path = ${quote(d.location)}`);
    features.push(`disk.${i + 1}.fstype = ${quote(d.fsType ?? 'ext4')}`);
  });
  return `system ${node.name} (\n  ${features.join(' and\n  ')}\n)`;
}
