// The orchestrator's operations (CreateDeployment, UpdateDeployment, DeleteDeployment) as records
// in the key-value store (`tosca-operations`), so they can be fetched, listed and waited on
// through lapis.common.v1.OperationsService, also after a restart. An operation is named
// `operations/tosca/<deployment>/<generation>`: the deployment's generation it works on. While it
// runs, its progress is the deployment itself; it ends with the deployment's DEPLOYED, DELETED or
// FAILED, or when a later operation on the same deployment takes over (ABORTED).
import { type Bucket, Code } from '@lapis/platform';
import type { DeploymentRecord } from '../domain/deployment';
import { recordOperation } from './metrics';

export type OperationKind = 'tosca.CreateDeployment' | 'tosca.UpdateDeployment' | 'tosca.DeleteDeployment';

export interface OperationRecord {
  name: string;
  kind: OperationKind;
  deploymentId: string;
  generation: number;
  project: string;
  createTime: string;
  updateTime: string;
  done: boolean;
  /** The deployment's phase when the operation ended. */
  phase?: DeploymentRecord['phase'];
  /** Set when it ended without success (gRPC status code and message). */
  error?: { code: number; message: string };
}

export const operationName = (deployment: string, generation: number) => `operations/tosca/${deployment}/${generation}`;

/** The deployment and generation a name stands for, or undefined when it is not one of ours. */
export function parseOperationName(name: string): { deploymentId: string; generation: number } | undefined {
  const m = /^operations\/tosca\/([A-Za-z0-9_-]+)\/(\d+)$/.exec(name);
  return m ? { deploymentId: m[1]!, generation: Number(m[2]) } : undefined;
}

/** Key-value key of an operation (no slashes in keys: they stay readable as subjects). */
const keyOf = (deployment: string, generation: number) => `${deployment}.${generation}`;

const terminal = new Set<DeploymentRecord['phase']>(['DEPLOYED', 'DELETED', 'FAILED']);

export class OperationStore {
  constructor(readonly bucket: Bucket<OperationRecord>) {}

  /** Records the operation now working on the deployment (its `operation` and `generation`); idempotent. */
  async begin(record: DeploymentRecord, kind: OperationKind): Promise<OperationRecord> {
    const now = new Date().toISOString();
    const op: OperationRecord = {
      name: record.operation,
      kind,
      deploymentId: record.id,
      generation: record.generation,
      project: record.project,
      createTime: now,
      updateTime: now,
      done: false,
    };
    const stored = await this.bucket.mutate(keyOf(record.id, record.generation), (current) => current ?? op);
    return stored?.value ?? op;
  }

  /** Ends an operation (nothing changes if it has ended already). */
  async finish(name: string, phase: DeploymentRecord['phase'], error?: OperationRecord['error']): Promise<void> {
    const parsed = parseOperationName(name);
    if (!parsed) return;
    const ended = await this.bucket.mutate(keyOf(parsed.deploymentId, parsed.generation), (current) => {
      if (!current || current.done) return undefined;
      return { ...current, done: true, phase, error, updateTime: new Date().toISOString() };
    });
    if (ended) recordOperation(ended.value.kind, phase, ended.value.createTime);
  }

  /** Ends the operation when the deployment's phase ends it (DEPLOYED, DELETED, FAILED). */
  async settle(record: Pick<DeploymentRecord, 'operation' | 'phase' | 'reason'>): Promise<void> {
    if (!terminal.has(record.phase)) return;
    await this.finish(
      record.operation,
      record.phase,
      record.phase === 'FAILED' ? { code: Code.FAILED_PRECONDITION, message: record.reason || 'the deployment failed' } : undefined,
    );
  }

  async get(name: string): Promise<OperationRecord | undefined> {
    const parsed = parseOperationName(name);
    if (!parsed) return undefined;
    return (await this.bucket.get(keyOf(parsed.deploymentId, parsed.generation)))?.value;
  }

  /** Removes every operation of a deployment (when its record goes). */
  async forget(deploymentId: string): Promise<void> {
    for (const key of await this.bucket.keys(`${deploymentId}.*`)) await this.bucket.delete(key);
  }

  async list(): Promise<OperationRecord[]> {
    return (await this.bucket.list()).map((e) => e.value);
  }
}
