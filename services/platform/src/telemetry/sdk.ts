// OpenTelemetry for a Lapis service. Exporters follow the standard variables
// (OTEL_TRACES_EXPORTER=otlp,zipkin, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_ZIPKIN_ENDPOINT);
// with none configured, spans are still made (logs carry trace ids) but go nowhere. Every span
// passes the attribute allow-list (allow-list.ts) before any exporter sees it.
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
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
  // Logs and metrics go to stdout and health checks; only traces are exported.
  env.OTEL_LOGS_EXPORTER ??= 'none';
  env.OTEL_METRICS_EXPORTER ??= 'none';
  const exporting = extraProcessors.length > 0 ? [] : exportersFromEnv(env);
  sdk = new NodeSDK({
    // HTTP: the OCCI gateway's requests, and the Docker and Kubernetes API calls of the runtime.
    instrumentations: [new GrpcInstrumentation(), new HttpInstrumentation()],
    spanProcessors: [
      new AllowListSpanProcessor(),
      ...exporting.map((exporter) =>
        exporter instanceof ConsoleSpanExporter ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter),
      ),
      ...extraProcessors,
    ],
  });
  sdk.start();
}

/** Flushes and stops telemetry: the last step of a graceful shutdown. */
export async function shutdownTelemetry(): Promise<void> {
  const running = sdk;
  sdk = undefined;
  await running?.shutdown();
}
