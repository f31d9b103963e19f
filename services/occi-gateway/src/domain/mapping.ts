// Lapis resources as OCCI entities, and OCCI create requests as Lapis requests. Pure: the
// gateway fetches claims, instances, volumes, images and flavors, this decides what they say.
import {
  type Address,
  InstanceState,
  PortProtocol,
  type Flavor,
  type InstanceSpec,
  type PortMapping,
} from '@lapis/proto/lapis/common/v1/common';
import type { Image } from '@lapis/proto/lapis/images/v1/images';
import { type Instance, type Volume, VolumeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { ClaimState, PendingReason, type Claim } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { OcciError, type Attributes, type Entity, type LinkEntity, type OcciRequest } from './entity';
import { parseBoundedJson } from './json';
import { ACTIONS, categoryId, INFRA, KINDS, MIXINS, OS_TPL_SCHEME, RESOURCE_TPL_SCHEME, type Category, type ComputeState } from './model';

const GiB = 2 ** 30;

/** Image templates: one os_tpl mixin per trusted tag. */
export function osTemplate(image: Pick<Image, 'repository' | 'tag'>): Category {
  const term = `${image.repository}_${image.tag}`.replace(/[^a-zA-Z0-9_.-]/g, '_');
  return {
    scheme: OS_TPL_SCHEME,
    term,
    class: 'mixin',
    title: `${image.repository}:${image.tag}`,
    depends: [categoryId(MIXINS.osTpl)],
    applies: [categoryId(KINDS.compute)],
    attributes: [],
  };
}

/** Flavor templates: one resource_tpl mixin per flavor, with its size as defaults. */
export function resourceTemplate(flavor: Flavor): Category {
  return {
    scheme: RESOURCE_TPL_SCHEME,
    term: flavor.name,
    class: 'mixin',
    title: flavor.description || `flavor ${flavor.name}`,
    depends: [categoryId(MIXINS.resourceTpl)],
    applies: [categoryId(KINDS.compute)],
    attributes: [
      {
        name: 'occi.compute.cores',
        type: 'integer',
        mutable: false,
        required: false,
        default: Math.ceil((flavor.resources?.cpuMillis ?? 0) / 1000),
      },
      { name: 'occi.compute.memory', type: 'number', mutable: false, required: false, default: (flavor.resources?.memoryBytes ?? 0) / GiB },
    ],
  };
}

export interface Templates {
  images: Category[];
  flavors: Category[];
}

const PENDING_MESSAGES: Record<number, string> = {
  [PendingReason.PRIORITY]: 'queued: claims with a higher priority go first',
  [PendingReason.RESOURCES]: 'queued: waiting for room on a node',
  [PendingReason.QUOTA_EXCEEDED]: "queued: the project's quota is in use",
  [PendingReason.PARTITION_FULL]: 'queued: the partition is full',
  [PendingReason.PREEMPTION]: 'queued: spot instances are giving their room back',
  [PendingReason.NO_MATCHING_NODE]: 'queued: no node can take it as the cluster is now',
  [PendingReason.NEW]: 'queued',
};

function computeState(claim: Claim, instance?: Instance): { state: ComputeState; message: string } {
  const state = instance?.state ?? claim.instanceState;
  if (state === InstanceState.RUNNING) return { state: 'active', message: '' };
  if (state === InstanceState.SUSPENDED) return { state: 'suspended', message: '' };
  if (state === InstanceState.ERROR) return { state: 'error', message: instance?.stateReason || claim.reasonDetail || 'error' };
  if (claim.state === ClaimState.PENDING || claim.state === ClaimState.REQUEUED) {
    return { state: 'inactive', message: claim.reasonDetail || PENDING_MESSAGES[claim.pendingReason] || 'queued' };
  }
  if (state === InstanceState.STOPPED) return { state: 'inactive', message: 'stopped' };
  return { state: 'inactive', message: InstanceState[state]?.toLowerCase() ?? 'starting' };
}

export function computeEntity(claim: Claim, instance: Instance | undefined, templates: Templates): Entity {
  const spec = instance?.spec ?? claim.spec;
  const resources = spec?.resources;
  const { state, message } = computeState(claim, instance);
  const mixins: Category[] = [];
  const image = templates.images.find((t) => t.title === spec?.image);
  if (image) mixins.push(image);
  const flavor = templates.flavors.find((t) => t.term === spec?.flavor);
  if (flavor) mixins.push(flavor);
  const attributes: Attributes = {
    'occi.core.id': claim.id,
    'occi.core.title': spec?.name ?? claim.id,
    'occi.compute.architecture': 'x64',
    'occi.compute.cores': Math.ceil((resources?.cpuMillis ?? 0) / 1000),
    'occi.compute.memory': (resources?.memoryBytes ?? 0) / GiB,
    'occi.compute.hostname': spec?.name ?? '',
    'occi.compute.state': state,
  };
  if (message) attributes['occi.compute.state.message'] = message;
  if (spec && (spec.command.length || Object.keys(spec.environment).length || spec.ports.length)) {
    mixins.push(MIXINS.container);
    if (spec.command.length) attributes['lapis.container.command'] = spec.command;
    if (Object.keys(spec.environment).length) attributes['lapis.container.environment'] = spec.environment;
    if (spec.ports.length) attributes['lapis.container.ports'] = spec.ports.map(renderPort);
  }
  const location = `/compute/${claim.id}`;
  // GFD.224 3.1: active may stop, restart or suspend; suspended starts again (resumes) or stops.
  const actions =
    state === 'active'
      ? [ACTIONS.stop, ACTIONS.restart, ACTIONS.suspend]
      : state === 'suspended'
        ? [ACTIONS.start, ACTIONS.stop]
        : state === 'inactive' && (instance?.state ?? claim.instanceState) === InstanceState.STOPPED
          ? [ACTIONS.start]
          : [];
  const links: LinkEntity[] = [];
  for (const attachment of instance?.volumeAttachments ?? []) {
    links.push(storageLinkEntity(claim.id, attachment.volumeId, attachment.mountPath, true));
  }
  links.push(...interfaceEntities(claim.id, instance?.addresses ?? []));
  return { kind: 'compute', id: claim.id, location, mixins, attributes, actions, links };
}

export function storageEntity(volume: Volume): Entity {
  const state =
    volume.state === VolumeState.ERROR
      ? 'error'
      : volume.state === VolumeState.AVAILABLE || volume.state === VolumeState.ATTACHED
        ? 'online'
        : 'offline';
  const attributes: Attributes = {
    'occi.core.id': volume.id,
    'occi.core.title': volume.name || volume.id,
    'occi.storage.size': volume.sizeBytes / GiB,
    'occi.storage.state': state,
  };
  if (volume.stateReason) attributes['occi.storage.state.message'] = volume.stateReason;
  const links = volume.attachment ? [storageLinkEntity(volume.attachment.instanceId, volume.id, volume.attachment.mountPath, true)] : [];
  return { kind: 'storage', id: volume.id, location: `/storage/${volume.id}`, mixins: [], attributes, actions: [], links };
}

/** A storage link is named by its volume: a volume is attached to one compute at a time. */
export function storageLinkEntity(instanceId: string, volumeId: string, mountPoint: string, active: boolean): LinkEntity {
  return {
    kind: 'storagelink',
    id: volumeId,
    location: `/storagelink/${volumeId}`,
    mixins: [],
    actions: [],
    links: [],
    attributes: {
      'occi.core.id': volumeId,
      'occi.storagelink.deviceid': volumeId,
      'occi.storagelink.mountpoint': mountPoint,
      'occi.storagelink.state': active ? 'active' : 'inactive',
    },
    source: { location: `/compute/${instanceId}`, kind: categoryId(KINDS.compute) },
    target: { location: `/storage/${volumeId}`, kind: categoryId(KINDS.storage) },
  };
}

/** A network of the caller's project, named as the runtime names it. */
export function networkEntity(name: string): Entity {
  const id = name;
  return {
    kind: 'network',
    id,
    location: `/network/${id}`,
    mixins: [MIXINS.ipnetwork],
    actions: [],
    links: [],
    attributes: {
      'occi.core.id': id,
      'occi.core.title': name,
      'occi.network.label': name,
      'occi.network.state': 'active',
      'occi.network.allocation': 'dynamic',
    },
  };
}

/**
 * An instance's interfaces, one per address: eth0 on its project's default network, eth1 and on
 * for the project networks it was connected to (Docker names them in the order they came).
 */
export function interfaceEntities(instanceId: string, addresses: readonly Address[]): LinkEntity[] {
  let extra = 0;
  return addresses.map((a) =>
    networkInterfaceEntity(instanceId, a.network, a.ip, a.mac, a.network.startsWith('net-') ? `eth${++extra}` : 'eth0'),
  );
}

export function networkInterfaceEntity(instanceId: string, network: string, ip: string, mac: string, device = 'eth0'): LinkEntity {
  const id = `${instanceId}.${network}`;
  return {
    kind: 'networkinterface',
    id,
    location: `/networkinterface/${id}`,
    mixins: [MIXINS.ipnetworkinterface],
    actions: [],
    links: [],
    attributes: {
      'occi.core.id': id,
      'occi.networkinterface.interface': device,
      'occi.networkinterface.mac': mac,
      'occi.networkinterface.state': 'active',
      'occi.networkinterface.address': ip,
      'occi.networkinterface.allocation': 'dynamic',
    },
    source: { location: `/compute/${instanceId}`, kind: categoryId(KINDS.compute) },
    target: { location: `/network/${network}`, kind: categoryId(KINDS.network) },
  };
}

function renderPort(port: PortMapping): string {
  const protocol = port.protocol === PortProtocol.UDP ? 'udp' : 'tcp';
  return `${port.containerPort}${port.hostPort ? `:${port.hostPort}` : ''}/${protocol}`;
}

function parsePort(text: string): PortMapping {
  const match = /^(\d{1,5})(?::(\d{1,5}))?(?:\/(tcp|udp))?$/.exec(text.trim());
  if (!match) throw new OcciError(400, `lapis.container.ports: ${JSON.stringify(text)} is not PORT[:HOSTPORT][/tcp|udp]`);
  return {
    containerPort: Number(match[1]),
    hostPort: Number(match[2] ?? 0),
    protocol: match[3] === 'udp' ? PortProtocol.UDP : PortProtocol.TCP,
  };
}

const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A hostname from free text ("My Machine" -> "my-machine"); empty when nothing usable is left. */
export function hostnameFrom(title: string): string {
  return title
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, 63)
    .replace(/^-+|-+$/g, '');
}

/** A volume name from free text (lower case letters, digits, ".", "-", "_"; at most 63). */
export function volumeNameFrom(title: string): string {
  return title
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .slice(0, 63)
    .replace(/^[-._]+|[-._]+$/g, '');
}

const has = (request: OcciRequest, category: Pick<Category, 'scheme' | 'term'>) =>
  request.categories.some((c) => c.scheme === category.scheme && c.term === category.term);

function jsonAttribute<T>(value: unknown, name: string, check: (v: unknown) => v is T): T | undefined {
  if (value === undefined) return undefined;
  const parsed = typeof value === 'string' ? parseBoundedJson(value, name) : value;
  if (!check(parsed)) throw new OcciError(400, `${name}: wrong shape`);
  return parsed;
}

const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isStringMap = (v: unknown): v is Record<string, string> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');

/**
 * A compute to create, from what the client sent: the kind, an os_tpl (the image) and a
 * resource_tpl (the flavor) are required; title, user data, SSH key, the container mixin and
 * storage links (volumes attached at creation) are optional.
 */
export function computeSpec(
  request: OcciRequest,
  templates: Templates,
): { spec: InstanceSpec; volumeLinks: Array<{ volumeId: string; mountPath: string }> } {
  if (!has(request, KINDS.compute)) throw new OcciError(400, `a compute needs the Category compute; scheme="${INFRA}"; class="kind"`);
  const image = templates.images.find((t) => has(request, t));
  if (!image) throw new OcciError(400, 'a compute needs an os_tpl mixin (an image of the trusted catalogue: GET /-/ lists them)');
  const flavor = templates.flavors.find((t) => has(request, t));
  if (!flavor) throw new OcciError(400, 'a compute needs a resource_tpl mixin (a flavor: GET /-/ lists them)');
  const known = new Set([
    ...Object.values(KINDS).flatMap((k) => k.attributes.map((a) => a.name)),
    ...Object.values(MIXINS).flatMap((m) => m.attributes.map((a) => a.name)),
  ]);
  for (const name of Object.keys(request.attributes)) {
    if (!known.has(name)) throw new OcciError(400, `attribute ${name} is not defined for compute`);
  }
  for (const name of ['occi.core.title', 'occi.core.summary']) {
    if (request.attributes[name] !== undefined && typeof request.attributes[name] !== 'string')
      throw new OcciError(400, `${name}: must be a string`);
  }
  const hostname = request.attributes['occi.compute.hostname'];
  if (hostname !== undefined && (typeof hostname !== 'string' || !HOSTNAME.test(hostname))) {
    throw new OcciError(
      400,
      `occi.compute.hostname: ${JSON.stringify(hostname)} must be a hostname (lower case letters, digits, dashes; at most 63)`,
    );
  }
  const title = request.attributes['occi.core.title'];
  const userData = request.attributes['occi.compute.userdata'];
  const sshKey = request.attributes['occi.credentials.ssh.publickey'];
  const command = jsonAttribute(request.attributes['lapis.container.command'], 'lapis.container.command', isStringList) ?? [];
  const environment = jsonAttribute(request.attributes['lapis.container.environment'], 'lapis.container.environment', isStringMap) ?? {};
  const ports = (jsonAttribute(request.attributes['lapis.container.ports'], 'lapis.container.ports', isStringList) ?? []).map(parsePort);
  const volumeLinks = request.links
    .filter((l) => l.categories.includes(categoryId(KINDS.storagelink)) || /^\/?storage\//.test(l.target.replace(/^https?:\/\/[^/]+/, '')))
    .map((l) => {
      const volumeId = l.target
        .replace(/^https?:\/\/[^/]+/, '')
        .replace(/^\/?storage\//, '')
        .replace(/\/$/, '');
      const mountPath = l.attributes['occi.storagelink.mountpoint'];
      return { volumeId, mountPath: typeof mountPath === 'string' ? mountPath : '' };
    });
  return {
    spec: {
      // Without a hostname or a title to derive one from, the scheduler names the instance after its id.
      name: typeof hostname === 'string' ? hostname : hostnameFrom(typeof title === 'string' ? title : ''),
      flavor: flavor.term,
      resources: undefined,
      image: image.title,
      command,
      environment,
      userData: Buffer.from(typeof userData === 'string' ? userData : ''),
      sshPublicKeys: typeof sshKey === 'string' && sshKey ? [sshKey] : [],
      labels: { 'created-by': 'occi-gateway' },
      ports,
      volumes: volumeLinks.map((v) => ({ volumeId: v.volumeId, mountPath: v.mountPath, readOnly: false })),
      devices: [],
      networks: [],
      restartOnFailure: true,
    },
    volumeLinks,
  };
}
