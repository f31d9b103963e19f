// One JSON logger per process (pino to stdout). Every line carries the active trace and
// span ids, so a log line leads to its trace and back. Secrets stay out: logged errors keep
// only the fields below (a client library's error can hold the request it failed on: the
// Kubernetes client's `body`, dockerode's `json`), and the fields that hold secrets are
// censored where a call site logs an object that has them.
import { context, trace } from '@opentelemetry/api';
import { pino, type Logger } from 'pino';
import { scrubText } from './telemetry/allow-list';

export type { Logger };

/** What a logged error may show: what it is, what it says, where it came from. */
const ERROR_FIELDS = ['type', 'message', 'stack', 'code', 'reason', 'statusCode', 'errno', 'syscall'] as const;

/** pino's error serializer, with the allow-list applied to the error and to its causes. */
function serializeError(value: unknown): unknown {
  if (typeof value === 'string') return scrubText(value);
  if (!(value instanceof Error)) return value;
  const full = pino.stdSerializers.errWithCause(value) as unknown as Record<string, unknown>;
  const kept: Record<string, unknown> = {};
  for (const field of ERROR_FIELDS) {
    const v = full[field];
    if (v !== undefined) kept[field] = typeof v === 'string' ? scrubText(v) : v;
  }
  if (value.cause !== undefined) kept.cause = serializeError(value.cause);
  return kept;
}

/**
 * Where secrets sit in what a call site might log: a caller's token, a request's headers, an
 * instance spec (alone or as `spec`). Named paths only: wildcards made every child logger (two
 * per gRPC call) and every line several times slower.
 */
const SECRET_FIELDS = ['environment', 'userData', 'sshPublicKeys'];
const REDACT_PATHS = [
  'authorization',
  'token',
  'password',
  'headers.authorization',
  'request.headers.authorization',
  'caller.token',
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((field) => `spec.${field}`),
];

export function createLogger(service: string, level = 'info'): Logger {
  // Synchronous writes: lines keep their order and none is lost when the process exits
  // (an asynchronous write still in flight at exit can land after a later, flushed one).
  return pino(
    {
      name: service,
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: serializeError },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      mixin() {
        const span = trace.getSpan(context.active());
        if (!span) return {};
        const { traceId, spanId } = span.spanContext();
        return { trace_id: traceId, span_id: spanId };
      },
    },
    pino.destination({ dest: 1, sync: true }),
  );
}
