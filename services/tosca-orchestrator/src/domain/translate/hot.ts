// TOSCA -> OpenStack Heat HOT, the way heat-translator does it: Compute -> OS::Nova::Server
// (flavor chosen from the host capability, image from the os capability), BlockStorage ->
// OS::Cinder::Volume, AttachesTo -> OS::Cinder::VolumeAttachment, Network -> OS::Neutron::Net +
// Subnet, Port -> OS::Neutron::Port; inputs -> parameters, outputs -> outputs. Software: each
// Standard create, configure and start operation -> OS::Heat::SoftwareConfig (the script, or
// the playbook with group ansible) + OS::Heat::SoftwareDeployment on the server hosting the node
// (<node>_<operation>_config / _deploy), chained create -> configure -> start, a node's first
// after the last of each node it requires.
import { stringify } from 'yaml';
import { evaluate, type EvalContext } from '../functions';
import type { NodeTemplate, Topology } from '../model';
import { isDict, type Dict } from '../registry';
import { isFunction } from '../values';
import { standardOperations } from '../lifecycle-plan';
import { attachments, capProp, computeOf, imageOf, isBlockStorage, isCompute, isNetwork, isPort, prop, sizeGiB, sizeMB } from './common';

// heat-translator's default flavors: name -> [cpus, MiB, GiB disk].
const flavors: [string, number, number, number][] = [
  ['m1.tiny', 1, 512, 1],
  ['m1.small', 1, 2048, 20],
  ['m1.medium', 2, 4096, 40],
  ['m1.large', 4, 8192, 80],
  ['m1.xlarge', 8, 16384, 160],
];

export function chooseFlavor(cpus?: number, memMiB?: number, diskGiB?: number): string {
  const fit = flavors.find(([, c, m, d]) => (cpus ?? 0) <= c && (memMiB ?? 0) <= m && (diskGiB ?? 0) <= d);
  return fit ? fit[0] : flavors[flavors.length - 1]![0];
}

const paramType = (type: string) =>
  type === 'integer' || type === 'float'
    ? 'number'
    : type === 'boolean'
      ? 'boolean'
      : type === 'list'
        ? 'comma_delimited_list'
        : type === 'map'
          ? 'json'
          : 'string';

/** Stands for an input where a property reads one: a parameter of the stack, as heat-translator keeps it. */
const PARAM = '$lapis_param';

/** `params`: an input a property reads stays a parameter (a deployment's input_values, as heat-translator has them). */
function toHot(topology: Topology, value: unknown, self?: NodeTemplate, params = false): unknown {
  const inputValues = Object.fromEntries([...topology.inputs.keys()].map((name) => [name, { [PARAM]: name }]));
  const ctx: EvalContext = {
    topology: params ? { ...topology, inputValues } : topology,
    self,
    attribute: (node, path) => {
      const [attr, ...rest] = path;
      const heatAttr =
        attr === 'private_address' || attr === 'public_address' ? 'first_address' : attr === 'networks' ? 'networks' : String(attr);
      return { get_attr: [node.name, heatAttr, ...rest.filter((r) => !(heatAttr === 'first_address' && r === 0))] };
    },
  };
  const convert = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(convert);
    if (!isDict(v)) return v;
    if (isFunction(v)) {
      const [name, args] = Object.entries(v)[0]!;
      const list = Array.isArray(args) ? args : [args];
      if (name === 'get_input') return { get_param: list.length === 1 ? list[0] : list };
      if (name === 'concat') return { list_join: ['', list.map(convert)] };
      if (name === 'join') return { list_join: [list[1] ?? '', convert(list[0])] };
      return v;
    }
    if ('get_attr' in v || 'get_param' in v) return v;
    if (PARAM in v) return { get_param: v[PARAM] };
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, convert(x)]));
  };
  // get_input stays a parameter reference; everything else resolves where it can.
  const keepInputs = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(keepInputs);
    if (!isDict(v)) return v;
    if (isFunction(v) && 'get_input' in v) return v;
    if (isFunction(v) && ('concat' in v || 'join' in v)) {
      const [name, args] = Object.entries(v)[0]!;
      return { [name]: keepInputs(args) };
    }
    if (isFunction(v)) return evaluate(ctx, v);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, keepInputs(x)]));
  };
  return convert(keepInputs(value));
}

export function translateHot(topology: Topology): string {
  const parameters: Dict = {};
  for (const input of topology.inputs.values()) {
    const p: Dict = { type: paramType(input.type) };
    if (typeof input.raw.description === 'string') p.description = input.raw.description;
    if (input.default !== undefined) p.default = input.default;
    parameters[input.name] = p;
  }
  const resources: Dict = {};
  const ev = (node: NodeTemplate, v: unknown) => evaluate({ topology, self: node }, v);
  for (const name of topology.order) {
    const node = topology.nodes.get(name)!;
    if (isCompute(node)) {
      const cpus = Number(capProp(topology, node, 'host', 'num_cpus') ?? 0) || undefined;
      const mem = sizeMB(capProp(topology, node, 'host', 'mem_size'));
      const disk = sizeGiB(capProp(topology, node, 'host', 'disk_size'));
      const instanceType = capProp(topology, node, 'host', 'instance_type');
      const properties: Dict = {
        flavor: typeof instanceType === 'string' ? instanceType : chooseFlavor(cpus, mem, disk),
        image: toHot(topology, node.capabilities.os?.properties.image ?? imageOf(topology, node) ?? '', node),
        user_data_format: 'SOFTWARE_CONFIG',
      };
      const ports = [...topology.nodes.values()].filter(
        (p) => isPort(p) && p.requirements.some((r) => r.name === 'binding' && r.node === node.name),
      );
      if (ports.length) properties.networks = ports.map((p) => ({ port: { get_resource: p.name } }));
      resources[name] = { type: 'OS::Nova::Server', properties };
    } else if (isBlockStorage(node)) {
      const properties: Dict = {};
      const size = sizeGiB(ev(node, node.properties.size));
      if (size !== undefined) properties.size = size;
      if (node.properties.volume_id !== undefined) properties.source_volid = toHot(topology, node.properties.volume_id, node);
      if (node.properties.snapshot_id !== undefined) properties.snapshot_id = toHot(topology, node.properties.snapshot_id, node);
      resources[name] = { type: 'OS::Cinder::Volume', properties };
    } else if (isNetwork(node)) {
      const netName = prop(topology, node, 'network_name');
      resources[name] = { type: 'OS::Neutron::Net', properties: netName !== undefined ? { name: netName } : {} };
      const cidr = prop(topology, node, 'cidr');
      if (cidr !== undefined) {
        const subnet: Dict = {
          network: { get_resource: name },
          cidr,
          ip_version: prop(topology, node, 'ip_version') ?? 4,
          enable_dhcp: prop(topology, node, 'dhcp_enabled') ?? true,
        };
        const start = prop(topology, node, 'start_ip');
        const end = prop(topology, node, 'end_ip');
        if (start !== undefined && end !== undefined) subnet.allocation_pools = [{ start, end }];
        const gateway = prop(topology, node, 'gateway_ip');
        if (gateway !== undefined) subnet.gateway_ip = gateway;
        resources[`${name}_subnet`] = { type: 'OS::Neutron::Subnet', properties: subnet };
      }
    } else if (isPort(node)) {
      const link = node.requirements.find((r) => r.name === 'link')?.node;
      const properties: Dict = {};
      if (link) properties.network = { get_resource: link };
      const ip = prop(topology, node, 'ip_address');
      if (ip !== undefined) properties.fixed_ips = [{ ip_address: ip }];
      resources[name] = { type: 'OS::Neutron::Port', properties };
    }
  }
  for (const a of attachments(topology)) {
    const properties: Dict = { instance_uuid: { get_resource: a.compute.name }, volume_id: { get_resource: a.volume.name } };
    if (a.location ?? a.device) properties.mountpoint = a.device ?? a.location;
    resources[a.name] = { type: 'OS::Cinder::VolumeAttachment', properties };
  }
  Object.assign(resources, softwareResources(topology));
  const outputs: Dict = {};
  for (const [name, o] of topology.outputs) {
    outputs[name] = { ...(o.description ? { description: o.description } : {}), value: toHot(topology, o.value) };
  }
  const hot: Dict = { heat_template_version: '2013-05-23', description: topology.description ?? 'Translated from TOSCA by Lapis' };
  if (Object.keys(parameters).length) hot.parameters = parameters;
  hot.resources = resources;
  if (Object.keys(outputs).length) hot.outputs = outputs;
  return stringify(hot, { lineWidth: 0 });
}

/** The software's operations as heat-translator makes them: a config and a deployment each. */
function softwareResources(topology: Topology): Dict {
  const resources: Dict = {};
  const lastDeploy = new Map<string, string>();
  for (const name of topology.order) {
    const node = topology.nodes.get(name)!;
    const server = computeOf(topology, node);
    if (!server) continue;
    const operations = standardOperations(topology, node);
    let previous: string[] = topology.edges
      .filter((e) => e.source === name && lastDeploy.has(e.target))
      .map((e) => lastDeploy.get(e.target)!);
    for (const op of ['create', 'configure', 'start']) {
      const { primary, inputs } = operations.get(op) ?? {};
      if (!primary) continue;
      const config = `${name}_${op}_config`;
      const deploy = `${name}_${op}_deploy`;
      resources[config] = {
        type: 'OS::Heat::SoftwareConfig',
        properties: { config: { get_file: primary }, group: /\.ya?ml$/i.test(primary) ? 'ansible' : 'script' },
      };
      const properties: Dict = { config: { get_resource: config }, server: { get_resource: server.name } };
      if (inputs && Object.keys(inputs).length) properties.input_values = toHot(topology, inputs, node, true);
      resources[deploy] = { type: 'OS::Heat::SoftwareDeployment', properties, ...(previous.length ? { depends_on: previous } : {}) };
      previous = [deploy];
      lastDeploy.set(name, deploy);
    }
  }
  return resources;
}
