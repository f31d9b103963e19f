// SyncNow as a lapis.common.v1.Operation (kind images.SyncNow, metadata SyncProgress): the
// policies' syncs run one after another, each repository's status added to the progress as it
// is done; idempotent by request_id; followed, cancelled and listed through the
// OperationsService served beside it.
import { createHash, randomUUID } from 'node:crypto';
import { aborted, Code, failedPrecondition, notFound, RevisionConflict, type Logger } from '@lapis/platform';
import type { Any } from '@lapis/proto/google/protobuf/any';
import type { Operation } from '@lapis/proto/lapis/common/v1/common';
import { SyncProgress, SyncResult } from '@lapis/proto/lapis/images/v1/images';
import type { Stores } from '../adapters/store';
import type { Policies } from './policies';
import type { SyncRuns } from './sync-runs';

const PROGRESS_TYPE = 'type.googleapis.com/lapis.images.v1.SyncProgress';
export const SYNC_KIND = 'images.SyncNow';

export class SyncOperations {
  /** Operation id -> cancels it (stops its remaining policies, aborts the running one). */
  private readonly cancels = new Map<string, AbortController>();

  constructor(private readonly parts: { stores: Stores; policies: Policies; runs: SyncRuns; log: Logger }) {}

  /** Starts a sync as an operation; a request_id seen before gives the same operation. */
  async start(policyName: string, repositories: readonly string[], requestId: string): Promise<Operation> {
    const id = requestId
      ? createHash('sha256')
          .update(`${policyName}\n${repositories.join(',')}\n${requestId}`)
          .digest('hex')
          .slice(0, 32)
      : randomUUID().replace(/-/g, '');
    const name = `operations/${id}`;
    const existing = await this.parts.stores.operations.get(id);
    if (existing) return existing.value;
    const policies = policyName ? [await this.parts.policies.get(policyName)] : await this.parts.policies.list();
    const progress: SyncProgress = { repositories: [] };
    const now = new Date();
    const operation: Operation = {
      name,
      kind: SYNC_KIND,
      metadata: packProgress(progress),
      done: false,
      result: undefined,
      createTime: now,
      updateTime: now,
      project: '',
    };
    try {
      await this.parts.stores.operations.create(id, operation);
    } catch (error) {
      if (error instanceof RevisionConflict) return (await this.parts.stores.operations.get(id))!.value;
      throw error;
    }
    const write = async (done: boolean) => {
      progress.repositories.sort((a, b) => `${a.policy}/${a.repository}`.localeCompare(`${b.policy}/${b.repository}`));
      const failed = progress.repositories.filter((r) => r.result === SyncResult.FAILED);
      await this.parts.stores.operations.mutate(id, (current) => ({
        ...(current ?? operation),
        metadata: packProgress(progress),
        updateTime: new Date(),
        done,
        result: !done
          ? undefined
          : cancel.signal.aborted
            ? { $case: 'error', error: { code: Code.CANCELLED, message: `operation ${name} was cancelled`, details: [] } }
            : failed.length > 0 && failed.length === progress.repositories.length
              ? {
                  $case: 'error',
                  error: {
                    code: Code.INTERNAL,
                    message: failed
                      .flatMap((r) => r.errors.map((e) => `${r.repository}${e.tag ? `:${e.tag}` : ''}: ${e.message}`))
                      .join('; ')
                      .slice(0, 2000),
                    details: [],
                  },
                }
              : { $case: 'response', response: packProgress(progress) },
      }));
    };
    // One write at a time, in order: progress writes are not waited for, and two at once used to
    // collide, retry, and land after the final write, taking `done` back (a watcher then waited
    // for ever).
    let written: Promise<unknown> = Promise.resolve();
    const save = (done: boolean) => {
      const next = written.then(() => write(done));
      written = next.catch(() => undefined);
      return next;
    };
    const cancel = new AbortController();
    this.cancels.set(id, cancel);
    void (async () => {
      for (const policy of policies) {
        if (cancel.signal.aborted) break;
        await this.parts.runs
          .run(
            policy,
            repositories,
            (status) => {
              progress.repositories.push(status);
              void save(false).catch(() => undefined);
            },
            cancel.signal,
          )
          .catch((error: unknown) => this.parts.log.error({ err: error, policy: policy.name }, 'sync failed'));
      }
      await save(true);
    })()
      .catch((error: unknown) => this.parts.log.error({ err: error, operation: name }, 'operation failed to record'))
      .finally(() => this.cancels.delete(id));
    return operation;
  }

  async get(name: string): Promise<Operation> {
    const id = name.replace(/^operations\//, '');
    const found = /^[0-9a-f]{32}$/.test(id) ? await this.parts.stores.operations.get(id) : undefined;
    if (!found) throw notFound(`operation ${name} does not exist`, 'OPERATION_NOT_FOUND');
    return found.value;
  }

  async cancel(name: string): Promise<Operation> {
    const operation = await this.get(name);
    if (operation.done) throw aborted(`operation ${name} is already done`, 'OPERATION_DONE');
    const cancel = this.cancels.get(name.replace(/^operations\//, ''));
    if (!cancel) throw failedPrecondition(`operation ${name} is not running in this process`, 'OPERATION_NOT_LOCAL');
    cancel.abort();
    return operation;
  }

  async list(): Promise<Operation[]> {
    return (await this.parts.stores.operations.list()).map((e) => e.value).sort((a, b) => a.name.localeCompare(b.name));
  }
}

export function packProgress(progress: SyncProgress): Any {
  return { typeUrl: PROGRESS_TYPE, value: Buffer.from(SyncProgress.encode(progress).finish()) };
}

export function unpackProgress(any: Any | undefined): SyncProgress {
  return any ? SyncProgress.decode(any.value) : { repositories: [] };
}
