// The Prometheus endpoint of a service: GET /metrics on its own port (LAPIS_METRICS_PORT), on
// the same host as its gRPC listener (loopback unless the chart says 0.0.0.0). Nothing else is
// served there, and scrapes are not traced (sdk.ts leaves this port out of the HTTP spans).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { prometheusReader } from './metrics';

/** Ports of the metrics listeners in this process: their requests make no spans. */
export const metricsPorts = new Set<number>();

export interface MetricsServer {
  /** The port it listens on (the one asked for, or the one the system chose for 0). */
  port: number;
  close(): Promise<void>;
}

/**
 * Opens the metrics listener, or returns undefined when metrics are not exported through
 * Prometheus (OTEL_METRICS_EXPORTER=otlp or none, or telemetry not started in this process).
 */
export async function serveMetrics(host: string, port: number): Promise<MetricsServer | undefined> {
  const reader = prometheusReader();
  if (!reader) return undefined;
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (request.method === 'GET' && path === '/metrics') return reader.getMetricsRequestHandler(request, response);
    response.writeHead(404, { 'content-type': 'text/plain' }).end('only /metrics is served here\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  metricsPorts.add(bound);
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        metricsPorts.delete(bound);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
