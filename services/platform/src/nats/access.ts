// What each Lapis service may do on NATS, and the nats-server authorization made from it. The
// event catalogue (events.ts) says which service publishes which event; the entries below list
// each service's durable consumers, plain subscriptions and key-value buckets, as its code opens
// them. testenv, the mesh and the chart get their users and permissions from here only
// (tools/chart-test renders the chart's copy), so the two cannot drift apart: a service that
// opens something not listed here is refused by the server in the end-to-end tests.
import { eventPublisher, eventSubjects, subjectFor, subjectToken, type EventKind, type NatsServiceName } from './events';

export interface ConsumerGrant {
  durable: string;
  /** Filter subject, as the consumer is created with it. */
  subject: string;
}

export interface NatsAccess {
  service: NatsServiceName | 'lapis-director';
  /** The NATS user name. */
  user: string;
  /** Event kinds it publishes and the subject key it may use ('*': any). */
  publishes: Partial<Record<EventKind, string>>;
  /** Durable consumers of the event stream. */
  consumers: ConsumerGrant[];
  /** Event kinds it hears through a plain subscription (no durable consumer). */
  listens: EventKind[];
  buckets: string[];
  /** May bring the event stream's settings up to date (the node agents may not). */
  managesStream: boolean;
}

/** Every key of one service's events: its own, all of them. */
function ownEvents(service: NatsServiceName, key = '*'): Partial<Record<EventKind, string>> {
  const kinds = (Object.keys(eventPublisher) as EventKind[]).filter((k) => eventPublisher[k] === service);
  return Object.fromEntries(kinds.map((k) => [k, key]));
}

/** A node agent's durable consumers: the placements, cancellations and preemptions of its node. */
export function runtimeConsumers(node: string): Record<'placed' | 'cancelled' | 'preempt', ConsumerGrant> {
  return {
    placed: { durable: `runtime-${node}-placed`, subject: subjectFor('claimPlaced', node) },
    cancelled: { durable: `runtime-${node}-cancelled`, subject: subjectFor('claimCancelled', node) },
    preempt: { durable: `runtime-${node}-preempt`, subject: subjectFor('preemptionNotice', node) },
  };
}

/**
 * A node agent: `node` names the one node it serves; without it the grant is for every
 * node's agent at once (one shared user, as in the chart's DaemonSet), which cannot keep one
 * node from another's placements.
 */
export function runtimeAccess(node?: string): NatsAccess {
  const events = ownEvents('container-runtime');
  if (node !== undefined) events.nodeHeartbeat = subjectToken(node);
  const consumers =
    node === undefined
      ? (['claimPlaced', 'claimCancelled', 'preemptionNotice'] as const).map((k) => ({ durable: '*', subject: `${eventSubjects[k]}.*` }))
      : Object.values(runtimeConsumers(node));
  return {
    service: 'container-runtime',
    user: node === undefined ? 'container-runtime' : `container-runtime-${node}`,
    publishes: events,
    consumers,
    listens: [],
    buckets: ['runtime-instances', 'runtime-volumes', 'runtime-nodes', 'runtime-networks', 'runtime-requests'],
    managesStream: false,
  };
}

export function schedulerAccess(options: { bucketPrefix?: string; consumerPrefix?: string } = {}): NatsAccess {
  const b = options.bucketPrefix ?? 'scheduler';
  const c = options.consumerPrefix ?? 'scheduler';
  return {
    service: 'scheduler',
    user: 'scheduler',
    publishes: ownEvents('scheduler'),
    consumers: [
      { durable: `${c}-instance-state`, subject: `${eventSubjects.instanceStateChanged}.>` },
      { durable: `${c}-heartbeat`, subject: `${eventSubjects.nodeHeartbeat}.>` },
    ],
    listens: [],
    buckets: ['claims', 'nodes', 'node-moves', 'usage', 'accounts', 'quotas', 'allocation-ratios', 'leader', 'node-move-log'].map(
      (n) => `${b}-${n}`,
    ),
    managesStream: true,
  };
}

export function toscaAccess(options: { consumer?: string } = {}): NatsAccess {
  return {
    service: 'tosca-orchestrator',
    user: 'tosca-orchestrator',
    publishes: ownEvents('tosca-orchestrator'),
    consumers: [{ durable: options.consumer ?? 'tosca-instances', subject: `${eventSubjects.instanceStateChanged}.>` }],
    listens: [],
    buckets: ['tosca-deployments', 'tosca-instances', 'tosca-operations', 'tosca-leases'],
    managesStream: true,
  };
}

export function imageSyncAccess(options: { bucketPrefix?: string } = {}): NatsAccess {
  const p = options.bucketPrefix ?? '';
  return {
    service: 'image-sync',
    user: 'image-sync',
    publishes: ownEvents('image-sync'),
    consumers: [],
    listens: [],
    buckets: ['images-catalogue', 'images-policies', 'images-sync-status', 'images-operations', 'images-leases'].map((n) => `${p}${n}`),
    managesStream: true,
  };
}

/** The events whose compute resource the OCCI gateway stops caching when they come. */
export const occiListens: readonly EventKind[] = [
  'instanceStateChanged',
  'claimPlaced',
  'claimCancelled',
  'preemptionNotice',
  'volumeStateChanged',
  'networkStateChanged',
];

export function occiAccess(): NatsAccess {
  return {
    service: 'occi-gateway',
    user: 'occi-gateway',
    publishes: {},
    consumers: [],
    listens: [...occiListens],
    buckets: ['occi-mixins'],
    managesStream: true,
  };
}

/**
 * tools/slurm's lapis-director: it sends preemption notices (the scheduler's kind of event) for
 * the nodes it gives back to Slurm, and nothing else.
 */
export function directorAccess(): NatsAccess {
  return {
    service: 'lapis-director',
    user: 'lapis-director',
    publishes: { preemptionNotice: '*' },
    consumers: [],
    listens: [],
    buckets: [],
    managesStream: false,
  };
}

/**
 * The users of a whole Lapis site: one per service, and one per node agent when `nodes` names
 * them (one shared runtime user otherwise); the director's where a site runs it.
 */
export function lapisAccess(options: { nodes?: readonly string[]; director?: boolean } = {}): NatsAccess[] {
  const runtimes = options.nodes?.length ? options.nodes.map((n) => runtimeAccess(n)) : [runtimeAccess()];
  return [...runtimes, imageSyncAccess(), schedulerAccess(), toscaAccess(), occiAccess(), ...(options.director ? [directorAccess()] : [])];
}

/** The inbox prefix of a user: replies to one user can be heard by no other. */
export function inboxPrefixOf(user: string): string {
  return `_INBOX_${subjectToken(user).replace(/%/g, '_')}`;
}

export interface NatsPermissions {
  publish: { allow: string[]; deny: string[] };
  subscribe: { allow: string[]; deny: string[] };
}

/**
 * The subjects one user may publish and subscribe to. JetStream is a request/reply API over
 * subjects, so the rights of each call are the rights on its subject: the stream's info and
 * creation, the consumer API and acks of its own durables only, the whole API of its own
 * buckets only, its own events, and replies on its own inbox. `others` are the other users:
 * where a grant has to use a wildcard durable (a shared runtime user), their durables are denied.
 */
export function permissionsOf(access: NatsAccess, stream: string, others: readonly NatsAccess[] = []): NatsPermissions {
  const pub = new Set<string>(['$JS.API.INFO', `$JS.API.STREAM.INFO.${stream}`, `$JS.API.STREAM.CREATE.${stream}`]);
  const deny = new Set<string>();
  if (access.managesStream) pub.add(`$JS.API.STREAM.UPDATE.${stream}`);
  for (const [kind, key] of Object.entries(access.publishes) as Array<[EventKind, string]>) pub.add(`${eventSubjects[kind]}.${key}`);
  for (const c of access.consumers) {
    pub.add(`$JS.API.CONSUMER.CREATE.${stream}.${c.durable}.${c.subject}`);
    pub.add(`$JS.API.CONSUMER.INFO.${stream}.${c.durable}`);
    pub.add(`$JS.API.CONSUMER.MSG.NEXT.${stream}.${c.durable}`);
    pub.add(`$JS.ACK.${stream}.${c.durable}.>`);
  }
  if (access.consumers.some((c) => c.durable === '*')) {
    for (const other of others) {
      if (other.user === access.user) continue;
      for (const c of other.consumers) {
        for (const api of ['CREATE', 'INFO', 'MSG.NEXT'])
          deny.add(`$JS.API.CONSUMER.${api}.${stream}.${c.durable}${api === 'CREATE' ? '.>' : ''}`);
        deny.add(`$JS.ACK.${stream}.${c.durable}.>`);
      }
    }
  }
  for (const b of access.buckets) {
    // STREAM.INFO/CREATE/UPDATE, CONSUMER.CREATE (watches), DIRECT.GET of KV_<bucket>; its keys.
    for (const s of [
      `$JS.API.*.*.KV_${b}`,
      `$JS.API.*.*.KV_${b}.>`,
      `$JS.API.STREAM.MSG.GET.KV_${b}`,
      `$KV.${b}.>`,
      `$JS.FC.KV_${b}.>`,
      `$JS.ACK.KV_${b}.>`,
    ])
      pub.add(s);
  }
  const sub = new Set<string>([`${inboxPrefixOf(access.user)}.>`]);
  for (const kind of access.listens) sub.add(`${eventSubjects[kind]}.*`);
  return { publish: { allow: [...pub], deny: [...deny] }, subscribe: { allow: [...sub], deny: [] } };
}

/** A password in the server config: the value itself, or an environment variable of the server. */
export type PasswordRef = { value: string } | { env: string };

/**
 * The `authorization { users = [...] }` block of a nats-server config for these users.
 * A password given as `{ env }` is written as a variable the server reads from its
 * environment (the chart's NATS gets it from a Secret), so the config holds no secret.
 */
export function natsAuthorization(users: ReadonlyArray<{ access: NatsAccess; password: PasswordRef }>, stream: string): string {
  const all = users.map((u) => u.access);
  const lines = users.map(({ access, password }) => {
    const perms = permissionsOf(access, stream, all);
    const permissions = {
      publish: perms.publish.deny.length ? perms.publish : { allow: perms.publish.allow },
      subscribe: { allow: perms.subscribe.allow },
    };
    const pass = 'env' in password ? `$${password.env}` : JSON.stringify(password.value);
    if ('env' in password && !/^[A-Z_][A-Z0-9_]*$/.test(password.env)) throw new Error(`not a variable name: ${password.env}`);
    return `    { user: ${JSON.stringify(access.user)}, password: ${pass}, permissions: ${JSON.stringify(permissions)} }`;
  });
  return ['authorization {', '  users = [', ...lines, '  ]', '}', ''].join('\n');
}
