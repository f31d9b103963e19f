// gRPC call durations, recorded once for every service where the platform runs handlers
// (server.ts) and makes clients (client.ts), after the RPC semantic conventions:
// rpc.server.duration and rpc.client.duration histograms in milliseconds, with rpc.system,
// rpc.service, rpc.method and rpc.grpc.status_code. Methods come from the service definitions,
// so the labels are bounded by the contracts; nothing of the request is recorded.
import type { Histogram } from '@opentelemetry/api';
import { instrumentsOnFirstUse } from '../telemetry/metrics';

interface RpcInstruments {
  server: Histogram;
  client: Histogram;
}

// Made on first use (see instrumentsOnFirstUse).
const rpcInstruments = instrumentsOnFirstUse(
  (meter): RpcInstruments => ({
    server: meter.createHistogram('rpc.server.duration', {
      unit: 'ms',
      description: 'duration of inbound gRPC calls, by method and status (streams: until the stream ends)',
    }),
    client: meter.createHistogram('rpc.client.duration', {
      unit: 'ms',
      description: 'duration of outbound gRPC calls to other Lapis services, by method and status',
    }),
  }),
);

/** "/lapis.runtime.v1.RuntimeService/GetInstance" as its rpc.* attributes. */
function rpcAttributes(path: string, code: number) {
  const [, service = '', method = ''] = path.split('/');
  return { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method, 'rpc.grpc.status_code': code };
}

export function recordServerCall(path: string, code: number, startedAt: number): void {
  rpcInstruments().server.record(performance.now() - startedAt, rpcAttributes(path, code));
}

export function recordClientCall(path: string, code: number, startedAt: number): void {
  rpcInstruments().client.record(performance.now() - startedAt, rpcAttributes(path, code));
}
