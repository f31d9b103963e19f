// The OCCI gateway's requests as a metric: their duration by method, kind and status, where
// kind is the entity kind of the path (compute, storage, storagelink, network,
// networkinterface), "query" for the query interface, "root" for "/", and "mixin" for
// anything else (a mixin collection, or a path that is none). Labels are a fixed vocabulary:
// never an entity id, a mixin's path or a user.
import { platformMeter } from '@lapis/platform';
import type { Histogram } from '@opentelemetry/api';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE']);
const KINDS = new Set(['compute', 'storage', 'storagelink', 'network', 'networkinterface']);

let duration: Histogram | undefined;

/** The kind label of a request path. */
export function kindOf(path: string): string {
  if (path === '/') return 'root';
  if (path === '/-/' || path === '/.well-known/org/ogf/occi/-/') return 'query';
  const first = /^\/([a-z]+)\/[^/]*$/.exec(path)?.[1];
  return first && KINDS.has(first) ? first : 'mixin';
}

/** One request, once its response has been sent. */
export function recordRequest(method: string | undefined, path: string, status: number, startedAt: number): void {
  // Made on first use, after telemetry has started (`-r @lapis/platform/register`).
  duration ??= platformMeter().createHistogram('lapis.occi.request.duration', {
    unit: 'ms',
    description: 'OCCI requests, by method, kind (compute, storage, ..., query, root, mixin) and status',
  });
  duration.record(performance.now() - startedAt, {
    method: method && METHODS.has(method) ? method : 'other',
    kind: kindOf(path),
    status,
  });
}
