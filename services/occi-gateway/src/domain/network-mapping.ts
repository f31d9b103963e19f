// Project networks (the runtime's CreateNetwork) as OCCI network entities with the ipnetwork
// mixin, and OCCI requests that create a network or a network interface. Pure. The default
// network of a project is mapping.ts's networkEntity.
import { type Network, NetworkAllocation } from '@lapis/proto/lapis/runtime/v1/runtime';
import { OcciError, type Entity, type OcciRequest } from './entity';
import { volumeNameFrom } from './mapping';
import { KINDS, MIXINS } from './model';

/** Ids of networks made through CreateNetwork; any other network is a project's default one. */
export const isLapisNetwork = (id: string) => id.startsWith('net-');

export function lapisNetworkEntity(network: Network): Entity {
  return {
    kind: 'network',
    id: network.id,
    location: `/network/${network.id}`,
    mixins: [MIXINS.ipnetwork],
    actions: [],
    links: [],
    attributes: {
      'occi.core.id': network.id,
      'occi.core.title': network.name,
      'occi.network.label': network.name,
      'occi.network.state': 'active',
      'occi.network.address': network.address,
      'occi.network.gateway': network.gateway,
      'occi.network.allocation': network.allocation === NetworkAllocation.STATIC ? 'static' : 'dynamic',
    },
  };
}

const NETWORK_ATTRIBUTES = new Set([
  'occi.core.title',
  'occi.core.summary',
  ...[...KINDS.network.attributes, ...MIXINS.ipnetwork.attributes].map((a) => a.name),
]);

/** A network to create from what the client sent: occi.network.address required, the name derived from the title. */
export function networkRequest(request: OcciRequest): { name: string; address: string; gateway: string; allocation: NetworkAllocation } {
  for (const name of Object.keys(request.attributes))
    if (!NETWORK_ATTRIBUTES.has(name) && name !== 'occi.core.id') throw new OcciError(400, `attribute ${name} is not defined for network`);
  for (const name of ['occi.core.title', 'occi.core.summary', 'occi.network.address', 'occi.network.gateway', 'occi.network.allocation']) {
    const value = request.attributes[name];
    if (value !== undefined && typeof value !== 'string') throw new OcciError(400, `${name}: must be a string`);
  }
  const address = request.attributes['occi.network.address'] as string | undefined;
  if (!address) throw new OcciError(400, 'occi.network.address: required, an IPv4 CIDR such as 10.20.0.0/24 (the ipnetwork mixin)');
  const allocation = (request.attributes['occi.network.allocation'] as string | undefined) ?? 'dynamic';
  if (allocation !== 'dynamic' && allocation !== 'static')
    throw new OcciError(400, `occi.network.allocation: ${JSON.stringify(allocation)} must be "dynamic" or "static"`);
  const title = (request.attributes['occi.core.title'] as string | undefined) ?? '';
  return {
    name: volumeNameFrom(title) || `network-${address.replace(/[^0-9]+/g, '-').replace(/-+$/, '')}`,
    address,
    gateway: (request.attributes['occi.network.gateway'] as string | undefined) ?? '',
    allocation: allocation === 'static' ? NetworkAllocation.STATIC : NetworkAllocation.DYNAMIC,
  };
}

/** The OCCI attribute a runtime request field stands for, so that a refusal names what the client sent. */
export const OCCI_FIELDS: Record<string, string> = {
  name: 'occi.core.title',
  address: 'occi.network.address',
  gateway: 'occi.network.gateway',
  allocation: 'occi.network.allocation',
  ip: 'occi.networkinterface.address',
};

/** A network interface is named by its compute and its network: "<compute id>.<network id>". */
export const interfaceId = (instanceId: string, networkId: string) => `${instanceId}.${networkId}`;

/** The compute and Lapis network of an interface id; undefined for an interface on a default network. */
export function interfaceEnds(id: string): { instanceId: string; networkId: string } | undefined {
  const at = id.lastIndexOf('.net-');
  if (at <= 0) return undefined;
  return { instanceId: id.slice(0, at), networkId: id.slice(at + 1) };
}
