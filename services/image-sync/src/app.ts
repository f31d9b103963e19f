// image-sync's moving parts around the Syncer: policies (loaded from the file at start, then
// managed over gRPC), SyncNow operations, one sync at a time per policy, and the interval
// timer that starts scheduled syncs.
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { aborted, alreadyExists, Code, failedPrecondition, notFound, RevisionConflict, type Logger } from '@lapis/platform';
import { Any } from '@lapis/proto/google/protobuf/any';
import type { Operation } from '@lapis/proto/lapis/common/v1/common';
import { SyncProgress, SyncResult, type RepositorySyncStatus, type SyncPolicy } from '@lapis/proto/lapis/images/v1/images';
import { statusKey, type Stores } from './adapters/store';
import { checkPolicy, destinationOf, intervalMs, policiesFromYaml } from './domain/policy';
import type { Syncer } from './sync';

const PROGRESS_TYPE = 'type.googleapis.com/lapis.images.v1.SyncProgress';
export const SYNC_KIND = 'images.SyncNow';

export interface AppOptions {
  stores: Stores;
  syncer: Syncer;
  log: Logger;
  /** How often the scheduler looks for policies that are due (default 1 s). */
  tickMs?: number;
}

export class ImageSyncApp {
  private readonly running = new Map<string, Promise<RepositorySyncStatus[]>>();
  private readonly controllers = new Map<string, AbortController>();
  private readonly lastStart = new Map<string, number>();
  /** Operation id -> cancels it (stops its remaining policies, aborts the running one). */
  private readonly operationCancels = new Map<string, AbortController>();
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly options: AppOptions) {}

  get stores() {
    return this.options.stores;
  }

  /** Loads the policy file: each policy is created, or replaced when it differs. */
  async loadPolicyFile(file: string): Promise<SyncPolicy[]> {
    const policies = policiesFromYaml(readFileSync(file, 'utf8'), file);
    for (const policy of policies) await this.stores.policies.put(policy.name, policy);
    this.options.log.info({ file, policies: policies.map((p) => p.name) }, 'policies loaded');
    return policies;
  }

  async createPolicy(policy: SyncPolicy): Promise<SyncPolicy> {
    checkPolicy(policy);
    try {
      await this.stores.policies.create(policy.name, policy);
    } catch (error) {
      if (!(error instanceof RevisionConflict)) throw error;
      const existing = await this.stores.policies.get(policy.name);
      // The same request retried: the same answer.
      if (existing && JSON.stringify(existing.value) === JSON.stringify(policy)) return existing.value;
      throw alreadyExists(`policy ${policy.name} exists`, 'POLICY_EXISTS');
    }
    return policy;
  }

  async updatePolicy(policy: SyncPolicy): Promise<SyncPolicy> {
    checkPolicy(policy);
    const existing = await this.stores.policies.get(policy.name);
    if (!existing) throw notFound(`policy ${policy.name} does not exist`, 'POLICY_NOT_FOUND');
    await this.stores.policies.update(policy.name, policy, existing.revision);
    return policy;
  }

  async getPolicy(name: string): Promise<SyncPolicy> {
    const found = await this.stores.policies.get(name);
    if (!found) throw notFound(`policy ${name} does not exist`, 'POLICY_NOT_FOUND');
    return found.value;
  }

  async listPolicies(): Promise<SyncPolicy[]> {
    return (await this.stores.policies.list()).map((e) => e.value).sort((a, b) => a.name.localeCompare(b.name));
  }

  async deletePolicy(name: string, pruneImages: boolean): Promise<void> {
    const policy = await this.getPolicy(name);
    this.controllers.get(name)?.abort();
    await this.running.get(name)?.catch(() => undefined);
    const images = [...(await this.options.syncer.catalogue()).values()].filter((i) => i.policy === name);
    if (pruneImages) {
      for (const image of images) await this.options.syncer.removeImage(image, images);
    }
    for (const repository of policy.repositories) await this.stores.statuses.delete(statusKey(name, destinationOf(policy, repository))).catch(() => undefined);
    await this.stores.policies.delete(name);
  }

  async statuses(policy: string): Promise<RepositorySyncStatus[]> {
    const entries = await this.stores.statuses.list(policy ? `${policy}.>` : '>');
    return entries.map((e) => e.value).sort((a, b) => `${a.policy}/${a.repository}`.localeCompare(`${b.policy}/${b.repository}`));
  }

  /** Syncs one policy now, or waits for the sync already running (one at a time per policy). */
  syncPolicy(policy: SyncPolicy, repositories: readonly string[] = [], onDone?: (status: RepositorySyncStatus) => void, cancel?: AbortSignal): Promise<RepositorySyncStatus[]> {
    const previous = this.running.get(policy.name) ?? Promise.resolve([]);
    const next = previous
      .catch(() => [])
      .then(() => {
        const controller = new AbortController();
        if (cancel?.aborted) controller.abort();
        cancel?.addEventListener('abort', () => controller.abort(), { once: true });
        this.controllers.set(policy.name, controller);
        this.lastStart.set(policy.name, Date.now());
        return this.options.syncer.syncPolicy(policy, repositories, controller.signal, onDone);
      });
    this.running.set(policy.name, next);
    void next.finally(() => {
      if (this.running.get(policy.name) === next) this.running.delete(policy.name);
    }).catch(() => undefined);
    return next;
  }

  /** Starts a sync as an operation; a request_id seen before gives the same operation. */
  async startOperation(policyName: string, repositories: readonly string[], requestId: string): Promise<Operation> {
    const id = requestId ? createHash('sha256').update(`${policyName}\n${repositories.join(',')}\n${requestId}`).digest('hex').slice(0, 32) : randomUUID().replace(/-/g, '');
    const name = `operations/${id}`;
    const existing = await this.stores.operations.get(id);
    if (existing) return existing.value;
    const policies = policyName ? [await this.getPolicy(policyName)] : await this.listPolicies();
    const progress: SyncProgress = { repositories: [] };
    const now = new Date();
    const operation: Operation = {
      name, kind: SYNC_KIND, metadata: packProgress(progress), done: false, result: undefined, createTime: now, updateTime: now, project: '',
    };
    try {
      await this.stores.operations.create(id, operation);
    } catch (error) {
      if (error instanceof RevisionConflict) return (await this.stores.operations.get(id))!.value;
      throw error;
    }
    const write = async (done: boolean) => {
      progress.repositories.sort((a, b) => `${a.policy}/${a.repository}`.localeCompare(`${b.policy}/${b.repository}`));
      const failed = progress.repositories.filter((r) => r.result === SyncResult.FAILED);
      await this.stores.operations.mutate(id, (current) => ({
        ...(current ?? operation),
        metadata: packProgress(progress),
        updateTime: new Date(),
        done,
        result: !done
          ? undefined
          : cancel.signal.aborted
            ? { $case: 'error', error: { code: Code.CANCELLED, message: `operation ${name} was cancelled`, details: [] } }
            : failed.length > 0 && failed.length === progress.repositories.length
            ? { $case: 'error', error: { code: Code.INTERNAL, message: failed.flatMap((r) => r.errors.map((e) => `${r.repository}${e.tag ? `:${e.tag}` : ''}: ${e.message}`)).join('; ').slice(0, 2000), details: [] } }
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
    this.operationCancels.set(id, cancel);
    void (async () => {
      for (const policy of policies) {
        if (cancel.signal.aborted) break;
        await this.syncPolicy(
          policy,
          repositories,
          (status) => {
            progress.repositories.push(status);
            void save(false).catch(() => undefined);
          },
          cancel.signal,
        ).catch((error: unknown) => this.options.log.error({ err: error, policy: policy.name }, 'sync failed'));
      }
      await save(true);
    })()
      .catch((error: unknown) => this.options.log.error({ err: error, operation: name }, 'operation failed to record'))
      .finally(() => this.operationCancels.delete(id));
    return operation;
  }

  async getOperation(name: string): Promise<Operation> {
    const id = name.replace(/^operations\//, '');
    const found = /^[0-9a-f]{32}$/.test(id) ? await this.stores.operations.get(id) : undefined;
    if (!found) throw notFound(`operation ${name} does not exist`, 'OPERATION_NOT_FOUND');
    return found.value;
  }

  async cancelOperation(name: string): Promise<Operation> {
    const operation = await this.getOperation(name);
    if (operation.done) throw aborted(`operation ${name} is already done`, 'OPERATION_DONE');
    const cancel = this.operationCancels.get(name.replace(/^operations\//, ''));
    if (!cancel) throw failedPrecondition(`operation ${name} is not running in this process`, 'OPERATION_NOT_LOCAL');
    cancel.abort();
    return operation;
  }

  async listOperations(): Promise<Operation[]> {
    return (await this.stores.operations.list()).map((e) => e.value).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Starts syncs of policies whose interval has passed since their last start. */
  startScheduler(): void {
    const tick = async () => {
      for (const policy of await this.listPolicies()) {
        const every = intervalMs(policy);
        if (every <= 0 || this.running.has(policy.name)) continue;
        const last = this.lastStart.get(policy.name) ?? (await this.lastRun(policy));
        if (Date.now() - last >= every) {
          this.options.log.info({ policy: policy.name }, 'scheduled sync');
          this.lastStart.set(policy.name, Date.now());
          void this.syncPolicy(policy).catch((error: unknown) => this.options.log.error({ err: error, policy: policy.name }, 'scheduled sync failed'));
        }
      }
    };
    const loop = () => {
      this.timer = setTimeout(() => void tick().catch((error: unknown) => this.options.log.warn({ err: error }, 'scheduler tick failed')).finally(() => this.timer && loop()), this.options.tickMs ?? 1_000);
    };
    loop();
  }

  /** Stops scheduling, cancels running syncs and waits for them. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const controller of this.controllers.values()) controller.abort();
    await Promise.all([...this.running.values()].map((p) => p.catch(() => undefined)));
  }

  private async lastRun(policy: SyncPolicy): Promise<number> {
    const statuses = await this.statuses(policy.name);
    const times = statuses.map((s) => s.startTime?.getTime() ?? 0);
    return times.length ? Math.min(...times) : 0;
  }
}

export function packProgress(progress: SyncProgress): Any {
  return { typeUrl: PROGRESS_TYPE, value: Buffer.from(SyncProgress.encode(progress).finish()) };
}

export function unpackProgress(any: Any | undefined): SyncProgress {
  return any ? SyncProgress.decode(any.value) : { repositories: [] };
}

