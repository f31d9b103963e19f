// Lapis networks on a Docker engine: one bridge per network (networkBridgeName), made with the
// network's CIDR and gateway when an instance of the node first connects, and removed once no
// container uses it. Several agents may share one engine: making a bridge that is there, or
// removing one that is gone or still used, is no error.
import type Docker from 'dockerode';
import { failedPrecondition, LapisError } from '@lapis/platform';
import type { Network } from '@lapis/proto/lapis/runtime/v1/runtime';
import { LABEL } from '../domain/container';
import { networkBridgeName } from './docker-options';

const statusOf = (error: unknown) => (error as { statusCode?: number }).statusCode;
const messageOf = (error: unknown) => (error as { json?: { message?: string } }).json?.message ?? (error as Error).message;

/** Label of a Lapis network's bridge: the network's id. */
export const NETWORK_LABEL = 'lapis.network-id';

export async function ensureBridge(docker: Docker, network: Network, node: string): Promise<string> {
  const name = networkBridgeName(network.id);
  try {
    await docker.createNetwork({
      Name: name,
      Driver: 'bridge',
      CheckDuplicate: true,
      IPAM: { Driver: 'default', Config: [{ Subnet: network.address, Gateway: network.gateway }] },
      Labels: { [LABEL.managed]: 'true', [LABEL.project]: network.project, [LABEL.node]: node, [NETWORK_LABEL]: network.id },
    });
  } catch (error) {
    // 409: another agent on this engine made it first.
    if (statusOf(error) === 409) return name;
    throw failedPrecondition(
      `the engine could not make the bridge of network ${network.id} (${network.address}): ${messageOf(error)}`,
      'NETWORK_ENGINE_REFUSED',
    );
  }
  return name;
}

export async function connectBridge(docker: Docker, containerId: string, network: Network, ip: string, node: string): Promise<void> {
  const connect = async () =>
    docker.getNetwork(await ensureBridge(docker, network, node)).connect({
      Container: containerId,
      EndpointConfig: ip ? { IPAMConfig: { IPv4Address: ip } } : {},
    });
  try {
    await connect().catch((error: unknown) => {
      // Another agent removed the bridge after it was found: made again, once.
      if (statusOf(error) === 404 && /network/i.test(messageOf(error))) return connect();
      throw error;
    });
  } catch (error) {
    await releaseBridge(docker, network.id).catch(() => undefined);
    if (error instanceof LapisError) throw error;
    throw failedPrecondition(`the engine could not connect the container to network ${network.id}: ${messageOf(error)}`, 'CONNECT_FAILED');
  }
}

export async function disconnectBridge(docker: Docker, containerId: string, networkId: string): Promise<void> {
  try {
    await docker.getNetwork(networkBridgeName(networkId)).disconnect({ Container: containerId, Force: true });
  } catch (error) {
    // Not connected (404 for a gone bridge or container, 403/500 for "is not connected").
    if (!/not found|not connected|no such/i.test(messageOf(error)) && statusOf(error) !== 404) throw error;
  }
  await releaseBridge(docker, networkId);
}

/** Removes the bridge when no container is on it. */
export async function releaseBridge(docker: Docker, networkId: string): Promise<void> {
  const bridge = docker.getNetwork(networkBridgeName(networkId));
  try {
    const info = await bridge.inspect();
    if (Object.keys(info.Containers ?? {}).length === 0) await bridge.remove();
  } catch (error) {
    if (![403, 404, 409].includes(statusOf(error) ?? 0)) throw error;
  }
}
