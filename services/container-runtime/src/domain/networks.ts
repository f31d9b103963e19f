// Project networks: what a new network may be (an IPv4 CIDR with a gateway inside it, apart
// from the project's other networks, a bounded number per project), and what address an
// instance may get on one when it connects.
import { alreadyExists, failedPrecondition, type FieldViolation, invalidArgument, resourceExhausted } from '@lapis/platform/errors';
import { type Network, NetworkAllocation, NetworkState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { VOLUME_NAME } from './volumes';

/** Networks one project may have besides its default one. */
export const MAX_PROJECT_NETWORKS = 16;
/** Networks one instance may be connected to besides its default one. */
export const MAX_INSTANCE_NETWORKS = 8;
/** The largest and the smallest CIDR a network may have (a /29 has 6 hosts: a gateway and 5). */
export const WIDEST_PREFIX = 8;
export const NARROWEST_PREFIX = 29;

export interface Cidr {
  /** The network address as a 32-bit number. */
  base: number;
  prefix: number;
}

const OCTETS = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** An IPv4 address as a 32-bit number; undefined when it is not one (no leading zeros, each part 0-255). */
export function parseIpv4(text: string): number | undefined {
  const match = OCTETS.exec(text);
  if (!match) return undefined;
  const parts = match.slice(1).map((p) => (p.length > 1 && p.startsWith('0') ? Number.NaN : Number(p)));
  if (parts.some((p) => !(p >= 0 && p <= 255))) return undefined;
  return parts.reduce((sum, p) => sum * 256 + p, 0);
}

export const formatIpv4 = (value: number) => [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');

const size = (cidr: Cidr) => 2 ** (32 - cidr.prefix);
const inside = (cidr: Cidr, ip: number) => ip >= cidr.base && ip < cidr.base + size(cidr);
/** Neither the network's own address nor its broadcast address. */
const isHost = (cidr: Cidr, ip: number) => ip > cidr.base && ip < cidr.base + size(cidr) - 1;

/** "10.20.0.0/24" as a Cidr; a problem (completing "must be ...") when it is not one a network may have. */
export function parseCidr(text: string): Cidr | string {
  const [address = '', prefixText, ...rest] = text.split('/');
  const ip = parseIpv4(address);
  if (ip === undefined || prefixText === undefined || rest.length || !/^\d{1,2}$/.test(prefixText))
    return `an IPv4 CIDR such as 10.20.0.0/24 (it is "${text}")`;
  const prefix = Number(prefixText);
  if (prefix < WIDEST_PREFIX || prefix > NARROWEST_PREFIX)
    return `a prefix from /${WIDEST_PREFIX} to /${NARROWEST_PREFIX} (it is /${prefix})`;
  const cidr = { base: ip, prefix };
  if (ip % size(cidr) !== 0) return `the network's own address: ${formatIpv4(ip - (ip % size(cidr)))}/${prefix}, not ${text}`;
  return cidr;
}

export const formatCidr = (cidr: Cidr) => `${formatIpv4(cidr.base)}/${cidr.prefix}`;

const overlaps = (a: Cidr, b: Cidr) => inside(a, b.base) || inside(b, a.base);

export interface NewNetwork {
  name: string;
  address: string;
  gateway: string;
  allocation: NetworkAllocation;
}

/**
 * Checks a new network of `project` beside the networks it has (`mine`): every bad field named
 * (INVALID_ARGUMENT), then a taken name (ALREADY_EXISTS) and the project's count
 * (RESOURCE_EXHAUSTED). Answers the address, gateway and allocation it gets.
 */
export function checkNewNetwork(
  input: NewNetwork,
  mine: readonly Network[],
  project: string,
): { address: string; gateway: string; allocation: NetworkAllocation } {
  const v: FieldViolation[] = [];
  if (!VOLUME_NAME.test(input.name))
    v.push({
      field: 'name',
      description: `"${input.name}" is not a valid name: lower case letters, digits, ".", "-", "_", 1 to 63 characters`,
    });
  const cidr = parseCidr(input.address);
  if (typeof cidr === 'string') v.push({ field: 'address', description: `must be ${cidr}` });
  let gateway = input.gateway;
  if (typeof cidr !== 'string') {
    if (!gateway) gateway = formatIpv4(cidr.base + 1);
    const ip = parseIpv4(gateway);
    if (ip === undefined) v.push({ field: 'gateway', description: `"${gateway}" is not an IPv4 address` });
    else if (!isHost(cidr, ip))
      v.push({
        field: 'gateway',
        description: `${gateway} is not a host address of ${input.address} (nor its network or broadcast address)`,
      });
    const clash = mine.find((m) => {
      const other = parseCidr(m.address);
      return typeof other !== 'string' && overlaps(cidr, other);
    });
    if (clash)
      v.push({ field: 'address', description: `${input.address} overlaps network ${clash.name} (${clash.address}) of project ${project}` });
  }
  if (!(input.allocation in NetworkAllocation) || input.allocation < 0)
    v.push({ field: 'allocation', description: 'must be DYNAMIC or STATIC' });
  if (v.length) throw invalidArgument(v);
  if (mine.some((m) => m.name === input.name))
    throw alreadyExists(`project ${project} already has a network named "${input.name}"`, 'NAME_TAKEN');
  if (mine.length >= MAX_PROJECT_NETWORKS)
    throw resourceExhausted(
      `project ${project} has ${mine.length} networks, the most it may have: delete one it no longer needs`,
      'NETWORK_QUOTA',
    );
  return {
    address: formatCidr(cidr as Cidr),
    gateway,
    allocation: input.allocation === NetworkAllocation.UNSPECIFIED ? NetworkAllocation.DYNAMIC : input.allocation,
  };
}

/**
 * The address an instance asks for on `network` (empty: the engine picks one) is one it may
 * have: required where the allocation is STATIC, a host address of the CIDR, not the gateway,
 * not another connection's. The instance is not connected yet and has room for one more network.
 */
export function checkConnect(network: Network, instanceId: string, ip: string, connectedTo: number): void {
  if (network.state !== NetworkState.AVAILABLE)
    throw failedPrecondition(`network ${network.id} is ${NetworkState[network.state]}`, 'NETWORK_NOT_AVAILABLE');
  if (network.connections.some((c) => c.instanceId === instanceId))
    throw alreadyExists(`instance ${instanceId} is already connected to network ${network.id}`, 'ALREADY_CONNECTED');
  if (connectedTo >= MAX_INSTANCE_NETWORKS)
    throw failedPrecondition(
      `instance ${instanceId} is connected to ${connectedTo} networks, the most it may be: disconnect one first`,
      'TOO_MANY_NETWORKS',
    );
  if (!ip) {
    if (network.allocation === NetworkAllocation.STATIC)
      throw invalidArgument([{ field: 'ip', description: `required: network ${network.id} allocates its addresses statically` }]);
    return;
  }
  const cidr = parseCidr(network.address) as Cidr;
  const value = parseIpv4(ip);
  if (value === undefined) throw invalidArgument([{ field: 'ip', description: `"${ip}" is not an IPv4 address` }]);
  if (!isHost(cidr, value)) throw invalidArgument([{ field: 'ip', description: `${ip} is not a host address of ${network.address}` }]);
  if (ip === network.gateway) throw invalidArgument([{ field: 'ip', description: `${ip} is the network's gateway` }]);
  const holder = network.connections.find((c) => c.ip === ip);
  if (holder) throw alreadyExists(`${ip} on network ${network.id} is instance ${holder.instanceId}'s`, 'ADDRESS_TAKEN');
}
