// OpenTelemetry for a Lapis service. Exporters follow the standard variables
// (OTEL_TRACES_EXPORTER=otlp,zipkin, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_ZIPKIN_ENDPOINT);
// with none configured, spans are still made (logs carry trace ids) but go nowhere.
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { NoopSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';

let sdk: NodeSDK | undefined;

export function startTelemetry(extraProcessors: SpanProcessor[] = []): void {
  if (sdk) return;
  const env = process.env;
  // Logs and metrics go to stdout and health checks; only traces are exported.
  env.OTEL_LOGS_EXPORTER ??= 'none';
  env.OTEL_METRICS_EXPORTER ??= 'none';
  const exportersNamed = (env.OTEL_TRACES_EXPORTER ?? '').trim();
  const otlpEndpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  // The SDK's default is OTLP to localhost; Lapis exports only where it is told to.
  const exportFromEnv = exportersNamed !== '' ? exportersNamed !== 'none' : Boolean(otlpEndpoint);
  sdk = new NodeSDK({
    // HTTP: the OCCI gateway's requests, and the Docker and Kubernetes API calls of the runtime.
    instrumentations: [new GrpcInstrumentation(), new HttpInstrumentation()],
    ...(exportFromEnv && extraProcessors.length === 0
      ? {}
      : { spanProcessors: extraProcessors.length > 0 ? extraProcessors : [new NoopSpanProcessor()] }),
  });
  sdk.start();
}

/** Flushes and stops telemetry: the last step of a graceful shutdown. */
export async function shutdownTelemetry(): Promise<void> {
  const running = sdk;
  sdk = undefined;
  await running?.shutdown();
}
