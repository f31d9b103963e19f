// A NATS cluster on this machine: `size` nats-server processes with JetStream, routed to each
// other on loopback ports, each with its own store. What a site runs (three servers, streams
// and buckets with replicas 3), small enough for a test that kills servers.
import { startNats, type NatsServer } from './nats.js';
import { freePort, waitFor } from './ports.js';

export interface StartNatsClusterOptions {
  /** Servers; default 3 (JetStream needs a majority of them up). */
  size?: number;
  /** Cluster name; default lapis. */
  name?: string;
  /** More configuration for every server, for example natsAuthorization()'s users. */
  config?: string;
  /** How long to wait for the cluster to elect its JetStream leader; default 60 s. */
  timeoutMs?: number;
}

export interface NatsCluster {
  /** Every server's client URL, separated by commas (what LAPIS_NATS_URL takes). */
  url: string;
  servers: NatsServer[];
  /** Waits until every server says JetStream is healthy (a leader, caught up). */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Stops every server and removes their stores. */
  stop(): Promise<void>;
}

async function healthy(server: NatsServer): Promise<boolean> {
  try {
    const response = await fetch(`${server.monitorUrl}/healthz`, { signal: AbortSignal.timeout(2_000) });
    return response.ok;
  } catch {
    return false;
  }
}

export async function startNatsCluster(opts: StartNatsClusterOptions = {}): Promise<NatsCluster> {
  const size = opts.size ?? 3;
  const name = opts.name ?? 'lapis';
  const routePorts: number[] = [];
  for (let i = 0; i < size; i++) routePorts.push(await freePort());
  const routes = routePorts.map((p) => `nats-route://127.0.0.1:${p}`);
  const servers: NatsServer[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
  };
  try {
    // Started together: a server alone waits for its routes, and JetStream for a majority.
    const started = await Promise.all(
      routePorts.map((routePort, i) =>
        startNats({
          monitor: true,
          config: [
            opts.config ?? '',
            `server_name: ${name}-${i}`,
            `cluster {\n  name: ${name}\n  listen: 127.0.0.1:${routePort}\n  routes: [${routes.filter((_, j) => j !== i).join(', ')}]\n}`,
          ].join('\n'),
        }).then((server) => {
          servers.push(server);
          return server;
        }),
      ),
    );
    servers.splice(0, servers.length, ...started);
  } catch (error) {
    await stop();
    throw error;
  }
  const cluster: NatsCluster = {
    url: servers.map((s) => s.url).join(','),
    servers,
    async waitHealthy(timeoutMs = opts.timeoutMs ?? 60_000) {
      await waitFor(async () => (await Promise.all(servers.map(healthy))).every(Boolean), {
        timeoutMs,
        intervalMs: 250,
        what: `the NATS cluster's JetStream to be healthy (logs: ${servers.map((s) => s.logFile).join(', ')})`,
      });
    },
    stop,
  };
  try {
    await cluster.waitHealthy();
  } catch (error) {
    await stop();
    throw error;
  }
  return cluster;
}
