// The scheduler's state in JetStream key-value buckets (<prefix>-claims, -nodes, -usage,
// -accounts, -quotas, -allocation-ratios, -leader), stored as JSON. Claims change only through compare-and-set.
import { InstanceSpec } from '@lapis/proto/lapis/common/v1/common';
import { type Bucket, type Codec, type EventBus, jsonCodec, type Lease } from '@lapis/platform';
import { compactRes, compactSpec } from '../domain/claim-memory';
import type { QuotaDef } from '../domain/cycle';
import type { AccountDef } from '../domain/fairshare';
import type { ClaimRecord, NodeRecord } from '../domain/model';
import type { AllocationRatios } from '../domain/overcommit';

const dec = new TextDecoder();

// A claim's spec does not change once submitted while its record is written again at every
// step (placed, running, ...): its JSON text is made once per spec object and spliced in.
const specText = new WeakMap<InstanceSpec, string>();
const specToText = (spec: InstanceSpec) => {
  let text = specText.get(spec);
  if (text === undefined) specText.set(spec, (text = JSON.stringify(InstanceSpec.toJSON(spec))));
  return text;
};

export const claimCodec: Codec<ClaimRecord> = {
  encode: (c) => ({
    finish: () => {
      const rest = JSON.stringify({ ...c, spec: undefined });
      // Buffer.from, not TextEncoder: a few hundred bytes come from a shared pool, four times
      // faster, and a leader encodes a record for every placement.
      return Buffer.from(`${rest.slice(0, -1)}${rest.length > 2 ? ',' : ''}"spec":${specToText(c.spec)}}`);
    },
  }),
  decode: (bytes) => {
    const v = JSON.parse(dec.decode(bytes));
    // As compact as a submitted claim (a restarted scheduler reads every claim back).
    return { ...v, spec: compactSpec(InstanceSpec.fromJSON(v.spec)), res: compactRes(v.res) };
  },
};

export interface NodeOverride {
  partition: string;
  reason: string;
}

export interface UsageDoc {
  /** When the usage was last decayed and accrued (ms). */
  at: number;
  usage: Record<string, number>;
}

export interface Store {
  claims: Bucket<ClaimRecord>;
  nodes: Bucket<NodeRecord>;
  moves: Bucket<NodeOverride>;
  usage: Bucket<UsageDoc>;
  accounts: Bucket<AccountDef>;
  quotas: Bucket<QuotaDef>;
  /** Ratios an admin set, keyed by ratiosKey: they win over the configuration's. */
  ratios: Bucket<AllocationRatios>;
  leader: Bucket<Lease>;
}

/** The key of a partition's or a node's allocation ratios in <prefix>-allocation-ratios. */
export const ratiosKey = (scope: 'partition' | 'node', name: string) => `${scope}.${name}`;

export async function openStore(bus: EventBus, prefix: string): Promise<Store> {
  const [claims, nodes, moves, usage, accounts, quotas, ratios, leader] = await Promise.all([
    bus.bucket(`${prefix}-claims`, claimCodec),
    bus.bucket(`${prefix}-nodes`, jsonCodec<NodeRecord>()),
    bus.bucket(`${prefix}-node-moves`, jsonCodec<NodeOverride>()),
    bus.bucket(`${prefix}-usage`, jsonCodec<UsageDoc>()),
    bus.bucket(`${prefix}-accounts`, jsonCodec<AccountDef>()),
    bus.bucket(`${prefix}-quotas`, jsonCodec<QuotaDef>()),
    bus.bucket(`${prefix}-allocation-ratios`, jsonCodec<AllocationRatios>()),
    bus.bucket(`${prefix}-leader`, jsonCodec<Lease>()),
  ]);
  return { claims, nodes, moves, usage, accounts, quotas, ratios, leader };
}

/**
 * Follows a bucket: `onValue` for every current entry, then for every change (undefined
 * when deleted). `onValue` gets a decoder rather than the value, so an entry the follower
 * already has (its own write coming back) costs no decoding; the raw bytes come along, so
 * a follower can recognize what it wrote itself. Resolves once the current entries are in.
 */
export async function follow<T>(
  bucket: Bucket<T>,
  codec: Codec<T>,
  onValue: (key: string, value: (() => T) | undefined, revision: number, bytes?: Uint8Array) => void,
): Promise<{ stop(): void }> {
  let ready!: () => void;
  const initialized = new Promise<void>((resolve) => (ready = resolve));
  const iter = await bucket.kv.watch({ key: '>', initializedFn: () => ready() });
  void (async () => {
    for await (const e of iter) {
      onValue(
        e.key,
        e.operation === 'PUT' ? () => codec.decode(e.value) : undefined,
        e.revision,
        e.operation === 'PUT' ? e.value : undefined,
      );
    }
  })();
  await initialized;
  return { stop: () => iter.stop() };
}
