// The agent's state in JetStream key-value buckets, changed with compare-and-set.
import type { Bucket, EventBus } from '@lapis/platform';
import { Instance, Network, Node, Volume } from '@lapis/proto/lapis/runtime/v1/runtime';

const text = {
  encode: (value: string) => ({ finish: () => Buffer.from(value) }),
  decode: (bytes: Uint8Array) => Buffer.from(bytes).toString(),
};

export interface Store {
  instances: Bucket<Instance>;
  volumes: Bucket<Volume>;
  nodes: Bucket<Node>;
  /** Project networks (CreateNetwork), with the instances connected to each. */
  networks: Bucket<Network>;
  /** Idempotency keys of mutations: "<method>.<project>.<request id hash>" -> the resource id. */
  requests: Bucket<string>;
}

export async function openStore(bus: EventBus): Promise<Store> {
  const [instances, volumes, nodes, networks, requests] = await Promise.all([
    bus.bucket('runtime-instances', Instance),
    bus.bucket('runtime-volumes', Volume),
    bus.bucket('runtime-nodes', Node),
    bus.bucket('runtime-networks', Network),
    bus.bucket('runtime-requests', text, { ttl: 24 * 3600_000 }),
  ]);
  return { instances, volumes, nodes, networks, requests };
}
