// The OCCI model Lapis serves: the Core (GFD.221) and Infrastructure (GFD.224) kinds, actions
// and mixins, plus Lapis' own mixins (containers). Categories are identified by scheme + term.

export type AttributeType = 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array';

export interface AttributeDefinition {
  name: string;
  type: AttributeType;
  mutable: boolean;
  required: boolean;
  default?: string | number | boolean;
  description?: string;
  /** Allowed values of an enumeration. */
  enum?: readonly string[];
}

export type CategoryClass = 'kind' | 'mixin' | 'action';

export interface Category {
  scheme: string;
  term: string;
  class: CategoryClass;
  title: string;
  attributes: readonly AttributeDefinition[];
  /** Action ids (scheme + term) an entity of this kind or mixin offers. */
  actions?: readonly string[];
  /** Kinds: the parent kind id. */
  parent?: string;
  /** Mixins: mixins this one depends on (os_tpl...) and kinds it applies to. */
  depends?: readonly string[];
  applies?: readonly string[];
  /** Path of the collection of a kind or mixin, for example "/compute/". */
  location?: string;
}

export const categoryId = (c: Pick<Category, 'scheme' | 'term'>) => c.scheme + c.term;

export const CORE = 'http://schemas.ogf.org/occi/core#';
export const INFRA = 'http://schemas.ogf.org/occi/infrastructure#';
export const LAPIS = 'http://schemas.lapis.dev/occi/infrastructure#';
export const OS_TPL_SCHEME = 'http://schemas.lapis.dev/occi/os_tpl#';
export const RESOURCE_TPL_SCHEME = 'http://schemas.lapis.dev/occi/resource_tpl#';
export const USER_MIXIN_SCHEME_PREFIX = 'http://schemas.lapis.dev/occi/user/';

const attr = (name: string, type: AttributeType, extra: Partial<AttributeDefinition> = {}): AttributeDefinition => ({
  name,
  type,
  mutable: true,
  required: false,
  ...extra,
});
const immutable = { mutable: false } as const;

const action = (kindScheme: string, term: string, title: string, attributes: AttributeDefinition[] = []): Category => ({
  scheme: kindScheme,
  term,
  class: 'action',
  title,
  attributes,
});

const COMPUTE_ACTION = 'http://schemas.ogf.org/occi/infrastructure/compute/action#';

export const ACTIONS = {
  start: action(COMPUTE_ACTION, 'start', 'Start the compute instance'),
  stop: action(COMPUTE_ACTION, 'stop', 'Stop the compute instance', [
    attr('method', 'string', { enum: ['graceful', 'acpioff', 'poweroff'], default: 'graceful' }),
  ]),
  restart: action(COMPUTE_ACTION, 'restart', 'Restart the compute instance', [
    attr('method', 'string', { enum: ['graceful', 'warm', 'cold'], default: 'graceful' }),
  ]),
  // The container frozen in memory (the runtime's SuspendInstance); `start` resumes it. GFD.224's
  // other method, hibernate (to disk), has no Lapis counterpart, so it is not offered.
  suspend: action(COMPUTE_ACTION, 'suspend', 'Suspend the compute instance', [
    attr('method', 'string', { enum: ['suspend'], default: 'suspend' }),
  ]),
} satisfies Record<string, Category>;
// Not offered: storage `online`/`offline` (a Lapis volume is usable whenever it exists; there is
// nothing to switch). OCCI lets a provider leave actions out; advertising them only to
// answer 501 misleads clients (GFD.221 3.4.2: an action offered must be invocable).

const coreIdentity = [
  attr('occi.core.id', 'string', { ...immutable, description: 'identifier of the entity' }),
  attr('occi.core.title', 'string', { description: 'display name' }),
  attr('occi.core.summary', 'string', { description: 'summary' }),
];

export const KINDS = {
  entity: { scheme: CORE, term: 'entity', class: 'kind', title: 'Entity', attributes: coreIdentity },
  resource: { scheme: CORE, term: 'resource', class: 'kind', title: 'Resource', attributes: [], parent: `${CORE}entity` },
  link: {
    scheme: CORE,
    term: 'link',
    class: 'kind',
    title: 'Link',
    parent: `${CORE}entity`,
    attributes: [attr('occi.core.source', 'string', { required: true }), attr('occi.core.target', 'string', { required: true })],
  },
  compute: {
    scheme: INFRA,
    term: 'compute',
    class: 'kind',
    title: 'Compute resource (a Lapis instance: a container run as a light-weight VM)',
    parent: `${CORE}resource`,
    location: '/compute/',
    actions: [ACTIONS.start, ACTIONS.stop, ACTIONS.restart, ACTIONS.suspend].map(categoryId),
    attributes: [
      attr('occi.compute.architecture', 'string', { enum: ['x86', 'x64'], ...immutable }),
      attr('occi.compute.cores', 'integer', { ...immutable, description: 'CPUs (from the flavor)' }),
      attr('occi.compute.share', 'integer', immutable),
      attr('occi.compute.hostname', 'string', immutable),
      attr('occi.compute.speed', 'number', immutable),
      attr('occi.compute.memory', 'number', { ...immutable, description: 'GiB (from the flavor)' }),
      attr('occi.compute.state', 'string', { ...immutable, enum: ['active', 'inactive', 'suspended', 'error'] }),
      attr('occi.compute.state.message', 'string', immutable),
    ],
  },
  storage: {
    scheme: INFRA,
    term: 'storage',
    class: 'kind',
    title: 'Storage resource (a Lapis block volume)',
    parent: `${CORE}resource`,
    location: '/storage/',
    attributes: [
      attr('occi.storage.size', 'number', { required: true, ...immutable, description: 'GiB' }),
      attr('occi.storage.state', 'string', { ...immutable, enum: ['online', 'offline', 'error'] }),
      attr('occi.storage.state.message', 'string', immutable),
    ],
  },
  storagelink: {
    scheme: INFRA,
    term: 'storagelink',
    class: 'kind',
    title: 'A storage attached to a compute (attached while it runs)',
    parent: `${CORE}link`,
    location: '/storagelink/',
    attributes: [
      attr('occi.storagelink.deviceid', 'string', immutable),
      attr('occi.storagelink.mountpoint', 'string', immutable),
      attr('occi.storagelink.state', 'string', { ...immutable, enum: ['active', 'inactive', 'error'] }),
      attr('occi.storagelink.state.message', 'string', immutable),
    ],
  },
  network: {
    scheme: INFRA,
    term: 'network',
    class: 'kind',
    title: "Network resource (a project's network)",
    parent: `${CORE}resource`,
    location: '/network/',
    attributes: [
      attr('occi.network.vlan', 'integer', immutable),
      attr('occi.network.label', 'string', immutable),
      attr('occi.network.state', 'string', { ...immutable, enum: ['active', 'inactive', 'error'] }),
      attr('occi.network.state.message', 'string', immutable),
    ],
  },
  networkinterface: {
    scheme: INFRA,
    term: 'networkinterface',
    class: 'kind',
    title: 'A compute on a network',
    parent: `${CORE}link`,
    location: '/networkinterface/',
    attributes: [
      attr('occi.networkinterface.interface', 'string', immutable),
      attr('occi.networkinterface.mac', 'string', immutable),
      attr('occi.networkinterface.state', 'string', { ...immutable, enum: ['active', 'inactive', 'error'] }),
      attr('occi.networkinterface.state.message', 'string', immutable),
    ],
  },
} satisfies Record<string, Category>;

export type EntityKind = 'compute' | 'storage' | 'storagelink' | 'network' | 'networkinterface';

export const MIXINS = {
  osTpl: { scheme: INFRA, term: 'os_tpl', class: 'mixin', title: 'OS template', attributes: [], applies: [categoryId(KINDS.compute)] },
  resourceTpl: {
    scheme: INFRA,
    term: 'resource_tpl',
    class: 'mixin',
    title: 'Resource template',
    attributes: [],
    applies: [categoryId(KINDS.compute)],
  },
  ipnetwork: {
    scheme: 'http://schemas.ogf.org/occi/infrastructure/network#',
    term: 'ipnetwork',
    class: 'mixin',
    title: 'IP network',
    applies: [categoryId(KINDS.network)],
    attributes: [
      attr('occi.network.address', 'string', immutable),
      attr('occi.network.gateway', 'string', immutable),
      attr('occi.network.allocation', 'string', { ...immutable, enum: ['dynamic', 'static'] }),
    ],
  },
  ipnetworkinterface: {
    scheme: 'http://schemas.ogf.org/occi/infrastructure/networkinterface#',
    term: 'ipnetworkinterface',
    class: 'mixin',
    title: 'IP network interface',
    applies: [categoryId(KINDS.networkinterface)],
    attributes: [
      attr('occi.networkinterface.address', 'string', immutable),
      attr('occi.networkinterface.gateway', 'string', immutable),
      attr('occi.networkinterface.allocation', 'string', { ...immutable, enum: ['dynamic', 'static'] }),
    ],
  },
  userData: {
    scheme: 'http://schemas.ogf.org/occi/infrastructure/compute#',
    term: 'user_data',
    class: 'mixin',
    title: 'Data the instance finds at /etc/lapis/user-data (cloud-init style)',
    applies: [categoryId(KINDS.compute)],
    attributes: [attr('occi.compute.userdata', 'string', { ...immutable, description: 'base64 or plain text' })],
  },
  sshKey: {
    scheme: 'http://schemas.ogf.org/occi/infrastructure/credentials#',
    term: 'ssh_key',
    class: 'mixin',
    title: 'SSH public key for the default user',
    applies: [categoryId(KINDS.compute)],
    attributes: [attr('occi.credentials.ssh.publickey', 'string', immutable)],
  },
  container: {
    scheme: LAPIS,
    term: 'container',
    class: 'mixin',
    title: 'What the container runs: command, environment, ports',
    applies: [categoryId(KINDS.compute)],
    attributes: [
      attr('lapis.container.command', 'array', { ...immutable, description: 'overrides the image command' }),
      attr('lapis.container.environment', 'object', { ...immutable, description: 'environment variables' }),
      attr('lapis.container.ports', 'array', {
        ...immutable,
        description:
          'published container ports, PORT[:HOSTPORT][/tcp|udp] ("8080:30080/tcp"); host ports only from the site range (none unless the admin sets one), 0 or none picks one',
      }),
    ],
  },
} satisfies Record<string, Category>;

/** Everything fixed in the model; templates (os_tpl, resource_tpl) and user mixins are added per request. */
export const STATIC_CATEGORIES: readonly Category[] = [...Object.values(KINDS), ...Object.values(MIXINS), ...Object.values(ACTIONS)];

export const kindOf = (entity: EntityKind): Category => KINDS[entity];

/** The OCCI state of a compute from the Lapis instance state. */
export type ComputeState = 'active' | 'inactive' | 'suspended' | 'error';
