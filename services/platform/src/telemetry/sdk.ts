// OpenTelemetry for a Lapis service. Exporters follow the standard variables
// (OTEL_TRACES_EXPORTER=otlp,zipkin, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_ZIPKIN_ENDPOINT);
// with none configured, spans are still made (logs carry trace ids) but go nowhere. Every span
// passes the attribute allow-list (allow-list.ts) before any exporter sees it. Metrics go where
// OTEL_METRICS_EXPORTER says (metrics.ts: Prometheus by default).
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { RuntimeNodeInstrumentation } from '@opentelemetry/instrumentation-runtime-node';
import { OTLPTraceExporter as OtlpGrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import { NodeSDK } from '@opentelemetry/sdk-node';
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { AllowListSpanProcessor } from './allow-list';
import { metricReadersFromEnv, platformMeter, recordProcessMetrics } from './metrics';
import { metricsPorts } from './metrics-server';

let sdk: NodeSDK | undefined;

/**
 * The exporters OTEL_TRACES_EXPORTER names, each configured by its own standard variables.
 * NodeSDK makes these itself only when it is given no span processors, and the allow-list is
 * one; so the same choice is made here.
 */
function exportersFromEnv(env: NodeJS.ProcessEnv): SpanExporter[] {
  const named = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const otlpEndpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  // The SDK's default is OTLP to localhost; Lapis exports only where it is told to.
  const names = named.length > 0 ? named : otlpEndpoint ? ['otlp'] : [];
  if (names.includes('none')) return [];
  const otlp = (): SpanExporter => {
    const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
    if (protocol === 'grpc') return new OtlpGrpcExporter();
    if (protocol === 'http/json') return new OtlpJsonExporter();
    return new OtlpProtoExporter();
  };
  const make: Record<string, () => SpanExporter> = { otlp, zipkin: () => new ZipkinExporter(), console: () => new ConsoleSpanExporter() };
  return [...new Set(names)].flatMap((name) => {
    if (make[name]) return [make[name]()];
    process.stderr.write(`OTEL_TRACES_EXPORTER: unknown exporter "${name}" ignored (otlp, zipkin, console, none)\n`);
    return [];
  });
}

export function startTelemetry(extraProcessors: SpanProcessor[] = []): void {
  if (sdk) return;
  const env = process.env;
  // Logs go to stdout.
  env.OTEL_LOGS_EXPORTER ??= 'none';
  const exporting = extraProcessors.length > 0 ? [] : exportersFromEnv(env);
  const metricReaders = metricReadersFromEnv(env);
  sdk = new NodeSDK({
    instrumentations: [
      new GrpcInstrumentation(),
      // HTTP: the OCCI gateway's requests, and the Docker and Kubernetes API calls of the runtime;
      // not Prometheus's scrapes of the metrics port.
      new HttpInstrumentation({ ignoreIncomingRequestHook: (request) => metricsPorts.has(request.socket.localPort ?? -1) }),
      // Event loop delay and utilization, heap, GC.
      new RuntimeNodeInstrumentation(),
    ],
    metricReaders,
    spanProcessors: [
      new AllowListSpanProcessor(),
      ...exporting.map((exporter) =>
        exporter instanceof ConsoleSpanExporter ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter),
      ),
      ...extraProcessors,
    ],
  });
  sdk.start();
  if (metricReaders.length > 0) recordProcessMetrics(platformMeter());
}

/** Flushes and stops telemetry: the last step of a graceful shutdown. */
export async function shutdownTelemetry(): Promise<void> {
  const running = sdk;
  sdk = undefined;
  await running?.shutdown();
}
