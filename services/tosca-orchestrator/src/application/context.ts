// What the deployment use cases share: the stores, the ports and the bus they work with
// (EngineOptions), and the engine's running state (record edits, deployment loops, callers'
// tokens). The engine (engine.ts) builds it; each use case is a function of it.
import type { Bucket, EventBus, Lease, Logger } from '@lapis/platform';
import type { DeploymentRecord } from '../domain/deployment';
import type { OperationStore } from '../adapters/operations';
import type { Ports } from './ports';

export interface EngineOptions {
  deployments: Bucket<DeploymentRecord>;
  /** instance (claim) id -> deployment id */
  index: Bucket<{ deployment: string; key: string }>;
  /** The operations working on deployments (what GetOperation answers). */
  operations: OperationStore;
  ports: Ports;
  bus: EventBus;
  log: Logger;
  /** Durable consumer name for the runtime's events. */
  consumer?: string;
  /**
   * How long a DELETED deployment stays readable (with its operations) before its records go;
   * undefined keeps them for ever. Without it a busy site's buckets only grow, and so does
   * every start, which reads them all.
   */
  deletedRetentionMs?: number;
  /**
   * One lease per deployment being driven (ownership.ts): replicas sharing these buckets drive
   * each deployment from one replica at a time.
   */
  leases: Bucket<Lease>;
  /** Names this replica in its leases; default: host, pid and a random part. */
  replica?: string;
  /** How long a stopped or crashed replica's deployments wait before another takes them over; default 3 s. */
  leaseMs?: number;
  /** How long a step waits for a scheduler or runtime that cannot be reached; default 15 s. */
  peerWaitMs?: number;
}

export interface EngineContext {
  readonly options: EngineOptions;
  /** Changes the deployment's record (edits made meanwhile are written together: record-edits.ts). */
  change(id: string, edit: (r: DeploymentRecord) => void): Promise<void>;
  /** Runs the deployment's loop (one at a time per deployment; a kick while running runs it again). */
  kick(id: string): void;
  /** Whether the engine is stopping: nothing more is started or retried. */
  stopped(): boolean;
  /** Whether this replica drives the deployment (holds its lease). */
  owns(id: string): boolean;
  /** Callers' tokens, in memory only: a resumed deployment goes on with the service's token. */
  readonly tokens: Map<string, string>;
  /** Claims being submitted: their first events may come before their ids are recorded. */
  readonly submissions: { inflight: number };
}

/** Phases a deployment rests in until it is updated or deleted. */
export const terminalPhases = new Set(['DEPLOYED', 'DELETED', 'FAILED']);
