// One JSON logger per process (pino to stdout). Every line carries the active trace and
// span ids, so a log line leads to its trace and back.
import { context, trace } from '@opentelemetry/api';
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(service: string, level = 'info'): Logger {
  // Synchronous writes: lines keep their order and none is lost when the process exits
  // (an asynchronous write still in flight at exit can land after a later, flushed one).
  return pino(
    {
      name: service,
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
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
