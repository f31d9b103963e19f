// ConnectNetwork and DisconnectNetwork while an instance runs (a new interface in its
// container at once), and the release of an instance's connections when it goes. A network's
// record lists its connections, changed with compare-and-set so that agents of several nodes
// (and DeleteNetwork) never both win; the bridge on the node is the engine's
// (adapters/docker-networks.ts). Engines that cannot change a running workload's interfaces
// (Pods) refuse.
import { failedPrecondition, notFound } from '@lapis/platform';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Instance, Network, NetworkConnection } from '@lapis/proto/lapis/runtime/v1/runtime';
import type { Scope } from '../domain/door';
import { checkConnect } from '../domain/networks';
import { requireState } from '../domain/states';
import type { RequestLog } from './idempotency';
import type { InstanceRecords } from './instance-records';
import type { Networks } from './networks';
import type { AgentContext } from './settings';

export interface Connected {
  instance: Instance;
  network: Network;
}

export class NetworkConnections {
  constructor(
    private readonly ctx: AgentContext,
    private readonly instances: InstanceRecords,
    private readonly networks: Networks,
    private readonly requests: RequestLog,
  ) {}

  async connect(input: { networkId: string; instanceId: string; ip: string; requestId: string }, scope: Scope): Promise<Connected> {
    const { networkId, instanceId } = input;
    if (input.requestId && (await this.requests.find('ConnectNetwork', scope, input.requestId)) === `${networkId}.${instanceId}`)
      return { instance: await this.instances.inScope(instanceId, scope), network: await this.networks.get(networkId, scope) };
    const { backend } = this.ctx.deps;
    const node = this.ctx.settings.node;
    return this.ctx.locks.with([`n:${networkId}`, `i:${instanceId}`], async () => {
      const network = await this.networks.get(networkId, scope);
      const instance = await this.instances.inScope(instanceId, scope);
      if (!backend.connectNetwork)
        throw failedPrecondition(
          `cannot connect instance ${instanceId} to network ${networkId} while it runs: ${backend.networkRefusal ?? 'this backend has no Lapis networks'}`,
          'NETWORKS_NOT_SUPPORTED',
        );
      if (instance.project !== network.project)
        throw failedPrecondition(
          `network ${networkId} belongs to project ${network.project}, the instance to ${instance.project}`,
          'OTHER_PROJECT',
        );
      if (instance.node !== node)
        throw failedPrecondition(`instance ${instanceId} runs on node ${instance.node}; this is node ${node}`, 'WRONG_NODE', {
          node: instance.node,
        });
      requireState('connect a network to', instanceId, instance.state, [InstanceState.RUNNING]);
      const connectedTo = (await this.networks.list(scope, instance.project)).filter((n) =>
        n.connections.some((c) => c.instanceId === instanceId),
      ).length;
      // The address is reserved in the record first: two connects cannot both take it.
      const connection: NetworkConnection = { instanceId, node, ip: input.ip, connectTime: new Date() };
      await this.changeConnections(networkId, (n) => {
        checkConnect(n, instanceId, input.ip, connectedTo);
        return [...n.connections, connection];
      });
      try {
        await backend.connectNetwork(instance.backendId, network, input.ip);
      } catch (error) {
        await this.changeConnections(networkId, (n) => n.connections.filter((c) => c.instanceId !== instanceId));
        throw error;
      }
      const observed = await this.observeAddresses(instanceId);
      const ip = observed.addresses.find((a) => a.network === networkId)?.ip ?? input.ip;
      const recorded = await this.changeConnections(networkId, (n) =>
        n.connections.map((c) => (c.instanceId === instanceId ? { ...c, ip } : c)),
      );
      if (input.requestId) await this.requests.remember('ConnectNetwork', scope, input.requestId, `${networkId}.${instanceId}`);
      await this.networks.announce(recorded, instanceId);
      return { instance: observed, network: recorded };
    });
  }

  async disconnect(input: { networkId: string; instanceId: string; requestId: string }, scope: Scope): Promise<Connected> {
    const { networkId, instanceId } = input;
    if (input.requestId && (await this.requests.find('DisconnectNetwork', scope, input.requestId)) === `${networkId}.${instanceId}`)
      return { instance: await this.instances.inScope(instanceId, scope), network: await this.networks.get(networkId, scope) };
    const node = this.ctx.settings.node;
    return this.ctx.locks.with([`n:${networkId}`, `i:${instanceId}`], async () => {
      const network = await this.networks.get(networkId, scope);
      const instance = await this.instances.inScope(instanceId, scope);
      const connection = network.connections.find((c) => c.instanceId === instanceId);
      if (!connection) throw notFound(`instance ${instanceId} is not connected to network ${networkId}`, 'NOT_CONNECTED');
      if (connection.node !== node)
        throw failedPrecondition(`instance ${instanceId} runs on node ${connection.node}; this is node ${node}`, 'WRONG_NODE', {
          node: connection.node,
        });
      if (instance.backendId) await this.ctx.deps.backend.disconnectNetwork?.(instance.backendId, networkId);
      const recorded = await this.changeConnections(networkId, (n) => n.connections.filter((c) => c.instanceId !== instanceId));
      const observed = instance.state === InstanceState.RUNNING ? await this.observeAddresses(instanceId) : instance;
      if (input.requestId) await this.requests.remember('DisconnectNetwork', scope, input.requestId, `${networkId}.${instanceId}`);
      await this.networks.announce(recorded, instanceId);
      return { instance: observed, network: recorded };
    });
  }

  /** After the instance's workload is gone: its connections dropped from the records, bridges nobody uses removed. */
  async releaseAll(instance: Instance): Promise<void> {
    const { store, backend } = this.ctx.deps;
    const held = (await store.networks.list()).map((e) => e.value).filter((n) => n.connections.some((c) => c.instanceId === instance.id));
    for (const network of held) {
      const released = await this.changeConnections(network.id, (n) => n.connections.filter((c) => c.instanceId !== instance.id)).catch(
        () => undefined,
      );
      await backend.releaseLapisNetwork?.(network.id);
      if (released) await this.networks.announce(released, instance.id);
    }
  }

  /**
   * At the agent's start (reconcile): this node's connections of instances that are not `live`
   * here any more (their workload went while the agent was away, or was a fenced copy) are
   * dropped, and every network's bridge on the engine goes if no container is on it. Connections
   * made after `since` (while the reconcile ran) stand.
   */
  async settle(live: ReadonlySet<string>, since: Date): Promise<void> {
    const { store, backend, log } = this.ctx.deps;
    const node = this.ctx.settings.node;
    for (const { value: network } of await store.networks.list()) {
      const stale = network.connections
        .filter((c) => c.node === node && !live.has(c.instanceId) && (c.connectTime?.getTime() ?? 0) < since.getTime())
        .map((c) => c.instanceId);
      if (stale.length) {
        const settled = await this.changeConnections(network.id, (n) =>
          n.connections.filter((c) => !(c.node === node && stale.includes(c.instanceId))),
        );
        for (const instanceId of stale) await this.networks.announce(settled, instanceId);
      }
      await backend
        .releaseLapisNetwork?.(network.id)
        .catch((error: Error) => log.warn({ network: network.id, err: error }, 'bridge not released'));
    }
  }

  /** Sets the network's connections with compare-and-set; `change` may throw to refuse. */
  private async changeConnections(networkId: string, change: (n: Network) => NetworkConnection[]): Promise<Network> {
    const result = await this.ctx.deps.store.networks.mutate(networkId, (n) => n && { ...n, connections: change(n) });
    if (!result) throw notFound(`network ${networkId} not found`, 'NETWORK_NOT_FOUND');
    return result.value;
  }

  /** The instance's addresses read again from its workload, recorded and announced (instanceStateChanged). */
  private async observeAddresses(instanceId: string): Promise<Instance> {
    const current = (await this.instances.get(instanceId))!.value;
    const observed = current.backendId ? await this.ctx.deps.backend.inspect(current.backendId) : undefined;
    return this.instances.setState(
      instanceId,
      (i) => {
        i.addresses = observed?.addresses ?? [];
      },
      { announceAlways: true },
    );
  }
}
