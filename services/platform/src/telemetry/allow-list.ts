// What a span may carry when it leaves the process. Instrumentations put whatever they see
// into attributes (dockerode sends a whole container spec, env and user data included, as the
// query string of its create URL), so every span passes an allow-list of attributes as it
// ends, whoever made it and whenever the attribute was set. A new attribute stays out until
// it is added here. Free text that cannot be allow-listed (names, status messages, exception
// messages) loses URL query strings, URL credentials and bearer tokens.
import type { Context } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';

/** What people need to follow a request: which call, to where, how it ended. */
export const ALLOWED_ATTRIBUTES: ReadonlySet<string> = new Set([
  // gRPC (instrumentation-grpc)
  'rpc.system',
  'rpc.service',
  'rpc.method',
  'rpc.grpc.status_code',
  'grpc.error_name',
  // HTTP (instrumentation-http, stable conventions); URLs pass without their query
  'http.request.method',
  'http.response.status_code',
  'http.route',
  'url.scheme',
  'url.path',
  'url.full',
  'server.address',
  'server.port',
  'network.peer.address',
  'network.peer.port',
  'network.protocol.version',
  'error.type',
  // NATS (the platform's bus and the scheduler's placements)
  'messaging.system',
  'messaging.operation.type',
  'messaging.destination.name',
  'messaging.destination.template',
  'messaging.message.id',
  'messaging.consumer.group.name',
  // TOSCA lifecycle operations (the orchestrator's span per operation)
  'tosca.node.name',
  'tosca.operation.name',
  'process.exit.code',
]);

/** Attributes of span events (recordException): the kind of error and what it says. */
const ALLOWED_EVENT_ATTRIBUTES: ReadonlySet<string> = new Set(['exception.type', 'exception.message', 'exception.escaped']);

const URL_ATTRIBUTES: ReadonlySet<string> = new Set(['url.full', 'url.path']);

/** Links carry only the context they point to. */
const NO_ATTRIBUTES: ReadonlySet<string> = new Set();

/** Whether a text could hold what scrubText takes out (most hold none: skip the regexes). */
const mayHoldSecrets = (text: string) => /[?#@]|bearer|basic/i.test(text);

/** A URL without credentials, query or fragment. */
export function withoutQuery(url: string): string {
  if (!mayHoldSecrets(url)) return url;
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@?#\s]*@/i, '$1').replace(/[?#].*$/s, '');
}

/** Free text without what could carry a secret: URL queries and credentials, bearer tokens. */
export function scrubText(text: string): string {
  if (!mayHoldSecrets(text)) return text;
  return text
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@?#\s]*@/gi, '$1')
    .replace(/\?[^\s#"']+/g, '')
    .replace(/\b(bearer|basic)\s+[^\s"',;]+/gi, '$1 [redacted]');
}

function allowed(attributes: Record<string, unknown>, keep: ReadonlySet<string>): void {
  for (const key of Object.keys(attributes)) {
    if (!keep.has(key)) delete attributes[key];
    else if (URL_ATTRIBUTES.has(key) && typeof attributes[key] === 'string') attributes[key] = withoutQuery(attributes[key]);
    else if (key === 'exception.message' && typeof attributes[key] === 'string') attributes[key] = scrubText(attributes[key]);
  }
}

/**
 * Filters a span in place while it ends (`onEnding` runs before any processor's `onEnd`, so
 * no exporter ever sees the unfiltered span, whatever the processors' order). The SDK calls
 * `onEnding` experimental: tools/mesh/test/secrets.test.ts fails if an upgrade stops calling it.
 */
export class AllowListSpanProcessor implements SpanProcessor {
  onStart(_span: Span, _parentContext: Context): void {}

  onEnding(span: Span): void {
    allowed(span.attributes as Record<string, unknown>, ALLOWED_ATTRIBUTES);
    for (const event of span.events) if (event.attributes) allowed(event.attributes as Record<string, unknown>, ALLOWED_EVENT_ATTRIBUTES);
    for (const link of span.links) if (link.attributes) allowed(link.attributes as Record<string, unknown>, NO_ATTRIBUTES);
    const name = scrubText(span.name);
    if (name !== span.name) span.updateName(name);
    if (span.status.message) span.setStatus({ code: span.status.code, message: scrubText(span.status.message) });
  }

  onEnd(_span: ReadableSpan): void {}

  async forceFlush(): Promise<void> {}

  async shutdown(): Promise<void> {}
}
