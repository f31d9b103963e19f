// The node agent's metrics: its instances by state (read from the in-memory index when
// Prometheus scrapes), how long an instance takes from placement to RUNNING, volume
// attachments, reconcile time, and the engine's (Docker's, Kubernetes') errors by operation.
// Labels: backend, state, operation and outcome only; never an instance, volume or project id.
import { instrumentsOnFirstUse, platformMeter } from '@lapis/platform';
import type { Counter, Histogram } from '@opentelemetry/api';
import { type Backend, backendToJSON, InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import type { RuntimeBackend } from '../adapters/backend';
import { stateName, TERMINAL } from '../domain/states';

interface Instruments {
  start: Histogram;
  attachments: Counter;
  reconcile: Histogram;
  engineErrors: Counter;
}

const runtime = instrumentsOnFirstUse(
  (meter): Instruments => ({
    start: meter.createHistogram('lapis.runtime.instance.start.duration', {
      unit: 'ms',
      description: 'time from a create (a placement) to the instance RUNNING, by backend and outcome (ok, error)',
    }),
    attachments: meter.createCounter('lapis.runtime.volume.attachments', {
      unit: '{operation}',
      description: 'volume attach and detach operations, by operation and outcome (ok, error)',
    }),
    reconcile: meter.createHistogram('lapis.runtime.reconcile.duration', {
      unit: 'ms',
      description: 'time of one reconcile of the records with the engine and the node',
    }),
    engineErrors: meter.createCounter('lapis.runtime.engine.errors', {
      unit: '{error}',
      description: 'calls to the engine (Docker, Kubernetes) that failed, by backend and operation',
    }),
  }),
);

export type Outcome = 'ok' | 'error';

/** "docker", "kubernetes". */
const backendLabel = (backend: Backend) => backendToJSON(backend).replace('BACKEND_', '').toLowerCase();

export function recordInstanceStart(backend: Backend, outcome: Outcome, startedAt: number): void {
  runtime().start.record(performance.now() - startedAt, { backend: backendLabel(backend), outcome });
}

export function countVolumeAttachment(operation: 'attach' | 'detach', outcome: Outcome): void {
  runtime().attachments.add(1, { operation, outcome });
}

export function recordReconcile(startedAt: number): void {
  runtime().reconcile.record(performance.now() - startedAt);
}

/** Runs an async step and counts it by outcome; rethrows what it throws. */
export async function counted<T>(step: () => Promise<T>, count: (outcome: Outcome) => void): Promise<T> {
  try {
    const value = await step();
    count('ok');
    return value;
  } catch (error) {
    count('error');
    throw error;
  }
}

/**
 * The backend, with every failed call counted by operation (the method's name). Only calls
 * that return a promise are watched; streams and watches go through as they are.
 */
export function countingEngineErrors<B extends RuntimeBackend>(backend: B): B {
  return new Proxy(backend, {
    get(target, property) {
      const value = Reflect.get(target, property);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      return (...args: unknown[]) => {
        const result = value.apply(target, args);
        if (!(result instanceof Promise)) return result;
        return result.catch((error: unknown) => {
          runtime().engineErrors.add(1, { backend: backendLabel(target.kind), operation: property });
          throw error;
        });
      };
    },
  });
}

const REPORTED = [InstanceState.SCHEDULED, InstanceState.CREATING, InstanceState.RUNNING, InstanceState.STOPPED, InstanceState.ERROR];

/** Reports this node's instances by state at each collection (deleted ones left out). */
export function observeInstances(node: string, all: () => Promise<Instance[]>): void {
  platformMeter()
    .createObservableGauge('lapis.runtime.instances', { unit: '{instance}', description: "this node's instances, by state" })
    .addCallback(async (result) => {
      // States with none are reported as 0, so a series does not vanish when it empties.
      const counts = new Map<string, number>(REPORTED.map((state) => [stateName(state), 0]));
      for (const instance of await all()) {
        if (instance.node !== node || TERMINAL.has(instance.state)) continue;
        const state = stateName(instance.state);
        counts.set(state, (counts.get(state) ?? 0) + 1);
      }
      for (const [state, n] of counts) result.observe(n, { state });
    });
}
