// CreateNetwork, GetNetwork, ListNetworks, DeleteNetwork: a project network is a record in the
// KV bucket `runtime-networks` until an instance connects (network-connections.ts), which
// makes its bridge on that instance's node. A network is deleted only once nothing is
// connected; its bridges went with the last connection of each node. Each change is announced
// as `networkStateChanged`.
import { randomUUID } from 'node:crypto';
import { failedPrecondition, notFound } from '@lapis/platform';
import { type Network, type NetworkAllocation, NetworkState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { type Scope, visibleTo } from '../domain/door';
import { checkNewNetwork } from '../domain/networks';
import type { RequestLog } from './idempotency';
import type { AgentContext } from './settings';

export interface CreateNetworkInput {
  name: string;
  address: string;
  gateway: string;
  allocation: NetworkAllocation;
  requestId: string;
}

export class Networks {
  constructor(
    private readonly ctx: AgentContext,
    private readonly requests: RequestLog,
  ) {}

  async create(input: CreateNetworkInput, scope: Scope): Promise<Network> {
    const { store } = this.ctx.deps;
    // One project's creates one at a time, so two cannot both pass the name, overlap and count checks.
    return this.ctx.locks.with([`networks:${scope.project}`], async () => {
      const earlier = input.requestId ? await this.requests.find('CreateNetwork', scope, input.requestId) : undefined;
      const repeated = earlier ? (await store.networks.get(earlier))?.value : undefined;
      if (repeated) return repeated;
      const mine = (await this.all()).filter((n) => n.project === scope.project);
      const checked = checkNewNetwork(input, mine, scope.project);
      const network: Network = {
        id: `net-${randomUUID().replace(/-/g, '').slice(0, 16)}`,
        name: input.name,
        project: scope.project,
        ...checked,
        state: NetworkState.AVAILABLE,
        connections: [],
        createTime: new Date(),
      };
      await store.networks.create(network.id, network);
      if (input.requestId) await this.requests.remember('CreateNetwork', scope, input.requestId, network.id);
      await this.announce(network);
      return network;
    });
  }

  /** A network the caller may see; NOT_FOUND otherwise, whether it exists or not. */
  async get(id: string, scope: Scope): Promise<Network> {
    const found = await this.ctx.deps.store.networks.get(id);
    if (!found || !visibleTo(scope, found.value.project)) throw notFound(`network ${id} not found`, 'NETWORK_NOT_FOUND');
    return found.value;
  }

  async list(scope: Scope, project: string): Promise<Network[]> {
    const wanted = scope.admin ? project : scope.project;
    return (await this.all()).filter((n) => !wanted || n.project === wanted).sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  async delete(id: string, requestId: string, scope: Scope): Promise<Network> {
    const { store, backend } = this.ctx.deps;
    return this.ctx.locks.with([`n:${id}`], async () => {
      await this.get(id, scope);
      // Compare-and-set: a connect on another node between the check and the delete fails its own write.
      const marked = await store.networks.mutate(id, (n) => {
        if (!n) return undefined;
        if (n.connections.length)
          throw failedPrecondition(
            `network ${id} has ${n.connections.length} connected instance(s) (${n.connections.map((c) => c.instanceId).join(', ')}); disconnect them first`,
            'NETWORK_IN_USE',
          );
        return { ...n, state: NetworkState.DELETING };
      });
      if (!marked) throw notFound(`network ${id} not found`, 'NETWORK_NOT_FOUND');
      // A bridge left behind on this node's engine (an agent that went away mid-disconnect) goes too.
      await backend.releaseLapisNetwork?.(id);
      await store.networks.delete(id);
      if (requestId) await this.requests.remember('DeleteNetwork', scope, requestId, id);
      await this.announce(marked.value);
      return marked.value;
    });
  }

  /** Publishes `networkStateChanged`: made, deleted, or `instanceId` connected or disconnected. */
  async announce(network: Network, instanceId = ''): Promise<void> {
    await this.ctx.deps.bus
      .publish(
        {
          $case: 'networkStateChanged',
          networkStateChanged: { networkId: network.id, project: network.project, state: network.state, instanceId },
        },
        network.id,
      )
      .catch((error) => this.ctx.deps.log.error({ err: error, network: network.id }, 'network event not published'));
  }

  private async all(): Promise<Network[]> {
    return (await this.ctx.deps.store.networks.list()).map((e) => e.value);
  }
}
