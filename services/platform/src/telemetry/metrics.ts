// Metrics for a Lapis service: where they go, chosen by the standard OTEL_METRICS_EXPORTER
// (prometheus, the default: a /metrics endpoint on the service's own metrics port; otlp: pushed
// with the standard OTEL_EXPORTER_OTLP_* variables; none), plus the process figures every service
// has. The Prometheus endpoint is opened by startService once the config is parsed (metrics-server.ts),
// so it is bound like the gRPC listener; the readers exist from the first line of the process.
import { OTLPMetricExporter as OtlpGrpcMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as OtlpJsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OtlpProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { metrics, type Meter } from '@opentelemetry/api';
import { type IMetricReader, PeriodicExportingMetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';

export const METER_NAME = '@lapis/platform';

let prometheus: PrometheusExporter | undefined;

/** The Prometheus reader, when OTEL_METRICS_EXPORTER chose it (startService serves it). */
export function prometheusReader(): PrometheusExporter | undefined {
  return prometheus;
}

/** The metric readers OTEL_METRICS_EXPORTER names (default prometheus); none for "none". */
export function metricReadersFromEnv(env: NodeJS.ProcessEnv): IMetricReader[] {
  const named = (env.OTEL_METRICS_EXPORTER ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const names = named.length > 0 ? [...new Set(named)] : ['prometheus'];
  if (names.includes('none')) return [];
  const otlp = (): PushMetricExporter => {
    const protocol = env.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
    if (protocol === 'grpc') return new OtlpGrpcMetricExporter();
    if (protocol === 'http/json') return new OtlpJsonMetricExporter();
    return new OtlpProtoMetricExporter();
  };
  return names.flatMap((name): IMetricReader[] => {
    if (name === 'prometheus') {
      // No server of its own: startService serves it on LAPIS_METRICS_PORT.
      prometheus = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
      return [prometheus];
    }
    if (name === 'otlp') {
      const interval = Number(env.OTEL_METRIC_EXPORT_INTERVAL) || 60_000;
      return [new PeriodicExportingMetricReader({ exporter: otlp(), exportIntervalMillis: interval })];
    }
    process.stderr.write(`OTEL_METRICS_EXPORTER: unknown exporter "${name}" ignored (prometheus, otlp, none)\n`);
    return [];
  });
}

/** The platform's meter (a no-op one until the SDK has started). */
export function platformMeter(): Meter {
  return metrics.getMeter(METER_NAME);
}

/**
 * A module's instruments, made on first use: a process that starts telemetry first (every
 * service does, with `-r @lapis/platform/register`) then gets real instruments, not the API's
 * no-op ones that a module-level `createCounter` would have made at import.
 */
export function instrumentsOnFirstUse<T>(make: (meter: Meter) => T): () => T {
  let made: T | undefined;
  return () => {
    made ??= make(platformMeter());
    return made;
  };
}

/**
 * Process CPU and memory (semantic conventions process.cpu.time, process.memory.usage); the
 * event loop, heap and GC figures come from @opentelemetry/instrumentation-runtime-node.
 */
export function recordProcessMetrics(meter: Meter): void {
  meter
    .createObservableCounter('process.cpu.time', { unit: 's', description: 'CPU time used by this process, by mode' })
    .addCallback((result) => {
      const { user, system } = process.cpuUsage();
      result.observe(user / 1e6, { 'cpu.mode': 'user' });
      result.observe(system / 1e6, { 'cpu.mode': 'system' });
    });
  meter
    .createObservableGauge('process.memory.usage', { unit: 'By', description: 'resident set size of this process' })
    .addCallback((result) => result.observe(process.memoryUsage.rss()));
}

/**
 * Keeps a label's distinct values bounded: the first `limit` values seen are kept, every later
 * one is reported as "other". For labels a tenant chooses (a project name), so that a hostile
 * tenant creating projects cannot blow up the number of series a site's Prometheus stores.
 */
export class BoundedLabel {
  static readonly OTHER = 'other';
  private readonly seen = new Set<string>();

  constructor(readonly limit = 100) {}

  of(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size >= this.limit) return BoundedLabel.OTHER;
    this.seen.add(value);
    return value;
  }
}

/**
 * What `load` last answered, for observable instruments whose figures need I/O (a NATS request,
 * a bucket listing): a collection never waits for it (a scrape must answer while NATS is down);
 * it starts a new load when the last one is older than `maxAgeMs` and reports the one it has.
 */
export function lastKnown<T>(load: () => Promise<T>, maxAgeMs = 1_000): () => T | undefined {
  let value: T | undefined;
  let loadedAt = 0;
  let loading = false;
  return () => {
    if (!loading && Date.now() - loadedAt >= maxAgeMs) {
      loading = true;
      load().then(
        (loaded) => {
          value = loaded;
          loadedAt = Date.now();
          loading = false;
        },
        () => {
          loading = false;
        },
      );
    }
    return value;
  };
}
