// What the node agent is given (wiring.ts builds it from the configuration), and the context
// its use cases share: the settings, the adapters and the per-key locks.
import type { EventBus, HostPortRange, KeyedLocks, Logger } from '@lapis/platform';
import type { Flavor, Resources } from '@lapis/proto/lapis/common/v1/common';
import type { NodeStorage, RuntimeBackend } from '../adapters/backend';
import type { ImageResolver } from '../adapters/images';
import type { Store } from '../adapters/store';
import type { NodeInventory } from '../domain/devices';

export interface AgentSettings {
  node: string;
  partition: string;
  capacity: Resources;
  inventory: NodeInventory;
  heartbeatMs: number;
  stopTimeoutS: number;
  minVolumeBytes: number;
  maxVolumeBytes: number;
  /** Host ports instances may publish (LAPIS_HOST_PORTS); undefined: none. */
  hostPorts?: HostPortRange;
  /** Address host ports are bound to (LAPIS_HOST_PORT_ADDRESS). */
  hostPortAddress: string;
  /** Most a project's volumes on this node add up to; 0 = no limit. */
  maxProjectVolumeBytes?: number;
}

/** The adapters the agent drives. */
export interface AgentDeps {
  bus: EventBus;
  store: Store;
  backend: RuntimeBackend;
  host: NodeStorage;
  images: ImageResolver;
  flavors: readonly Flavor[];
  log: Logger;
}

export interface AgentContext {
  readonly settings: AgentSettings;
  readonly deps: AgentDeps;
  /**
   * Work on one instance (`i:<id>`) or volume (`v:<id>`) goes one at a time, so a placement,
   * a gRPC call and an engine event never interleave on the same record.
   */
  readonly locks: KeyedLocks;
}
