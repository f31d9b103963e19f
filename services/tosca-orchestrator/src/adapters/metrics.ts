// tosca-orchestrator's metrics: deployments by phase (read from the bucket when Prometheus
// scrapes, at most every few seconds), how long operations (create, update, delete) take to
// end and how, and how long template validation takes on the template threads. Labels: phase,
// operation kind and outcome only; never a deployment id or a template name.
import { type Bucket, instrumentsOnFirstUse, lastKnown, platformMeter } from '@lapis/platform';
import type { Histogram } from '@opentelemetry/api';
import type { DeploymentRecord } from '../domain/deployment';

/** A bucket listing is not free: scrapes closer together than this get the last counts. */
const DEPLOYMENT_COUNT_TTL_MS = 5_000;

interface Instruments {
  operation: Histogram;
  validation: Histogram;
}

const tosca = instrumentsOnFirstUse(
  (meter): Instruments => ({
    operation: meter.createHistogram('lapis.tosca.operation.duration', {
      unit: 's',
      description: 'time from an operation (CreateDeployment, UpdateDeployment, DeleteDeployment) to its end, by kind and final phase',
    }),
    validation: meter.createHistogram('lapis.tosca.validation.duration', {
      unit: 'ms',
      description: "time to check a caller's template on a template thread, by outcome (valid, invalid, stopped)",
    }),
  }),
);

/** An operation that ended: `kind` as "tosca.CreateDeployment", `phase` the deployment's. */
export function recordOperation(kind: string, phase: string, createTime: string): void {
  const seconds = Math.max(0, (Date.now() - Date.parse(createTime)) / 1000);
  tosca().operation.record(seconds, { kind: kind.replace(/^tosca\./, ''), phase });
}

/** Times every template check of `threads` (its run method, wrapped in place). */
export function timeValidation<T extends { run(...args: never[]): Promise<{ valid: boolean }> }>(threads: T): T {
  const run = threads.run.bind(threads);
  threads.run = (async (...args: Parameters<T['run']>) => {
    const startedAt = performance.now();
    let outcome = 'stopped';
    try {
      const answer = await run(...args);
      outcome = answer.valid ? 'valid' : 'invalid';
      return answer;
    } finally {
      tosca().validation.record(performance.now() - startedAt, { outcome });
    }
  }) as T['run'];
  return threads;
}

const PHASES: DeploymentRecord['phase'][] = ['PENDING', 'CREATING', 'DEPLOYED', 'UPDATING', 'DELETING', 'DELETED', 'FAILED'];

/** Reports the deployments by phase at each collection. */
export function observeDeployments(deployments: Bucket<DeploymentRecord>): void {
  // Counted in the background: a scrape never waits for NATS.
  const counts = lastKnown(async () => {
    const byPhase = new Map<string, number>(PHASES.map((phase) => [phase, 0]));
    for (const { value } of await deployments.list()) byPhase.set(value.phase, (byPhase.get(value.phase) ?? 0) + 1);
    return byPhase;
  }, DEPLOYMENT_COUNT_TTL_MS);
  platformMeter()
    .createObservableGauge('lapis.tosca.deployments', { unit: '{deployment}', description: 'deployments, by phase' })
    .addCallback((result) => {
      for (const [phase, n] of counts() ?? []) result.observe(n, { phase });
    });
}
