// The deployment engine: deployments as records in the key-value store (changed with
// compare-and-set), driven step by step through the scheduler and the runtime (the Ports), and
// moved on by the runtime's instance_state_changed events. A restarted orchestrator resumes
// every deployment that was not finished.
import { randomUUID } from 'node:crypto';
import { RetryLater, RevisionConflict, type Bucket, type EventBus, type Logger, type RunningConsumer } from '@lapis/platform';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { DeploymentStateChanged } from '@lapis/proto/lapis/events/v1/events';
import { DeploymentState } from '@lapis/proto/lapis/tosca/v1/tosca';
import { applyPlan, nextSteps, wantNothing, type DeploymentRecord, type Step } from '../domain/deployment';
import { plan, type Existing } from '../domain/plan';
import type { AttachmentPlan, InstancePlan, VolumePlan } from '../domain/plan';
import type { Topology } from '../domain/model';
import { OperationCode, type OperationKind, type OperationStore } from './operations';

/** What the engine needs from the rest of Lapis (gRPC clients in production). */
/**
 * Whom the engine acts for: the caller's token while it has it, else the service's own (an
 * admin) acting in the deployment's project, so a resumed deployment stays in its project.
 */
export interface ActAs {
  token?: string;
  project: string;
}

export interface Ports {
  submitClaim(spec: InstancePlan, requestId: string, as: ActAs): Promise<string>;
  /** Ends the claim (idempotent); `placed`: it had been given a node, so an instance may exist there. */
  cancelClaim(claimId: string, requestId: string, as: ActAs): Promise<{ placed: boolean }>;
  /**
   * Removes the instance from its node, whatever its state (an instance in ERROR outlives its
   * ended claim): `deleted` once it is gone, `absent` when the runtime has no such instance (yet),
   * `elsewhere` when it runs on a node this runtime does not serve (its events tell when it goes).
   */
  deleteInstance(instanceId: string, requestId: string, as: ActAs): Promise<'deleted' | 'absent' | 'elsewhere'>;
  /** On `node` (where the instance it is attached to runs), or where the runtime decides. */
  createVolume(spec: VolumePlan, requestId: string, as: ActAs, node?: string): Promise<string>;
  deleteVolume(volumeId: string, requestId: string, as: ActAs): Promise<void>;
  attachVolume(volumeId: string, instanceId: string, spec: AttachmentPlan, requestId: string, as: ActAs): Promise<void>;
}

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
}

interface QueuedEdit {
  edit: (r: DeploymentRecord) => void;
  resolve: () => void;
  reject: (error: unknown) => void;
}

const terminal = new Set(['DEPLOYED', 'DELETED', 'FAILED']);

export class DeploymentEngine {
  private consumer?: RunningConsumer;
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  /** Callers' tokens, in memory only: a resumed deployment goes on with the service's token. */
  private readonly tokens = new Map<string, string>();
  private stopped = false;
  private sweeper?: NodeJS.Timeout;
  /** Claims being submitted: their first events may come before their ids are recorded. */
  private inflight = 0;
  /** Edits of a deployment's record waiting for the next write, and the write on its way. */
  private readonly edits = new Map<string, QueuedEdit[]>();
  private readonly writes = new Map<string, Promise<void>>();

  constructor(private readonly options: EngineOptions) {}

  async start(): Promise<void> {
    this.consumer = await this.options.bus.consume({
      durable: this.options.consumer ?? 'tosca-instances',
      subject: 'lapis.runtime.instance_state_changed.>',
      // A new orchestrator has no deployments that older events could be about; an existing
      // durable consumer goes on from where it stopped.
      deliverNew: true,
      // An event may come before its claim is known (RetryLater): 50 tries are 10 s of that.
      maxDeliver: 50,
      handler: async (event) => {
        if (event.payload?.$case !== 'instanceStateChanged') return;
        await this.onInstance(event.payload.instanceStateChanged);
      },
    });
    // Resume what a previous process left unfinished. A claim whose submission was cut short
    // is submitted again with the same request id (the scheduler gives back the same claim).
    for (const { key, value } of await this.options.deployments.list()) {
      // An operation whose record or end was not written before a stop is written now.
      await this.options.operations.begin(value, value.generation === 0 ? 'tosca.CreateDeployment' : value.action === 'delete' ? 'tosca.DeleteDeployment' : 'tosca.UpdateDeployment');
      await this.options.operations.settle(value);
      if (Object.values(value.instances).some((i) => i.state === 'submitted' && !i.claimId)) {
        await this.change(key, (r) => {
          for (const i of Object.values(r.instances)) if (i.state === 'submitted' && !i.claimId) i.state = 'wanted';
        });
      }
      if (!terminal.has(value.phase) || (value.action === 'delete' && value.phase === 'FAILED' && this.hasLive(value))) this.kick(key);
    }
    const retention = this.options.deletedRetentionMs;
    if (retention !== undefined) {
      const sweep = () => void this.sweep().catch((error) => this.options.log.warn({ err: error }, 'sweeping deleted deployments failed'));
      this.sweeper = setInterval(sweep, Math.min(Math.max(retention / 2, 1_000), 600_000));
      this.sweeper.unref();
      sweep();
    }
  }

  /**
   * Removes the records of deployments DELETED longer ago than the retention: the deployment,
   * its operations and its instances' index entries (the index last written, first removed, so
   * a late event finds no owner rather than a missing record). Returns the removed ids.
   */
  async sweep(now = Date.now()): Promise<string[]> {
    const retention = this.options.deletedRetentionMs;
    if (retention === undefined) return [];
    const expired = (await this.options.deployments.list()).filter((e) => e.value.phase === 'DELETED' && Date.parse(e.value.updateTime) + retention <= now);
    if (!expired.length) return [];
    const ids = new Set(expired.map((e) => e.key));
    for (const entry of await this.options.index.list()) if (ids.has(entry.value.deployment)) await this.options.index.delete(entry.key);
    for (const { key, revision } of expired) {
      await this.options.operations.forget(key);
      // Only as it was read: a deployment changed since (it cannot come back from DELETED) stays.
      await this.options.deployments.delete(key, revision).catch((error: unknown) => {
        if (!(error instanceof RevisionConflict)) throw error;
      });
    }
    this.options.log.info({ deployments: [...ids] }, 'records of deleted deployments removed');
    return [...ids];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.sweeper);
    await this.consumer?.stop();
    await Promise.allSettled([...this.running.values()]);
  }

  private hasLive(r: DeploymentRecord): boolean {
    return Object.values(r.instances).some((i) => i.state !== 'deleted') || Object.values(r.volumes).some((v) => v.state !== 'deleted');
  }

  /** Stores a new deployment and starts it. */
  async create(record: DeploymentRecord, topology: Topology, token?: string): Promise<DeploymentRecord> {
    applyPlan(record, plan(topology));
    record.action = 'create';
    record.phase = 'PENDING';
    await this.options.deployments.create(record.id, record);
    await this.options.operations.begin(record, 'tosca.CreateDeployment');
    if (token) this.tokens.set(record.id, token);
    this.kick(record.id);
    return record;
  }

  /** A new template or inputs: only what the plan's difference says changes. */
  async update(id: string, change: (r: DeploymentRecord) => Topology, token?: string): Promise<DeploymentRecord> {
    let previous = '';
    const updated = await this.options.deployments.mutate(id, (current) => {
      if (!current) return undefined;
      previous = current.operation;
      const topology = change(current);
      const existing: Existing = new Map();
      for (const [key, inst] of Object.entries(current.instances)) {
        if (inst.state === 'deleted' || inst.state === 'unwanted' || key.includes('~')) continue;
        const list = existing.get(inst.spec.node) ?? [];
        list.push({ key, instanceId: inst.claimId });
        existing.set(inst.spec.node, list);
      }
      current.generation++;
      applyPlan(current, plan(topology, existing));
      current.action = 'update';
      current.phase = 'UPDATING';
      current.updateTime = new Date().toISOString();
      current.operation = `operations/tosca/${id}/${current.generation}`;
      return current;
    });
    if (!updated) throw new Error(`deployment ${id} vanished`);
    await this.takeOver(previous, updated.value, 'tosca.UpdateDeployment');
    if (token) this.tokens.set(id, token);
    this.kick(id);
    return updated.value;
  }

  /**
   * Undeploys whatever the deployment is doing: a creation or update still running is cut short
   * (nothing more is submitted; what is in flight is removed once it answers), a FAILED one
   * (kept, rolled back, or whose rollback stopped) has what is left removed and ends DELETED. A
   * deletion already under way is left as it is.
   */
  async delete(id: string, token?: string): Promise<DeploymentRecord | undefined> {
    let previous = '';
    const updated = await this.options.deployments.mutate(id, (current) => {
      if (!current || current.phase === 'DELETED' || (current.action === 'delete' && current.phase !== 'FAILED')) return undefined;
      previous = current.operation;
      current.generation++;
      wantNothing(current);
      current.action = 'delete';
      current.phase = 'DELETING';
      current.updateTime = new Date().toISOString();
      current.operation = `operations/tosca/${id}/${current.generation}`;
      return current;
    });
    // (mutate answers the entry as it is when nothing changed)
    if (updated && previous) await this.takeOver(previous, updated.value, 'tosca.DeleteDeployment');
    if (token) this.tokens.set(id, token);
    this.kick(id);
    return updated?.value;
  }

  /**
   * Cancels the creation or update under way: nothing more is made, and what was made is
   * removed (kept with keep_on_failure); the deployment is FAILED, its operation CANCELLED. A
   * deletion is not cancelled. Answers the deployment as it is after, undefined when nothing ran.
   */
  async cancel(id: string): Promise<DeploymentRecord | undefined> {
    const reason = 'cancelled';
    let changed = false;
    const updated = await this.options.deployments.mutate(id, (current) => {
      if (!current || current.action === 'delete' || terminal.has(current.phase)) return undefined;
      changed = true;
      current.phase = 'FAILED';
      current.reason = reason;
      current.updateTime = new Date().toISOString();
      if (!current.keepOnFailure) {
        wantNothing(current);
        current.action = 'delete';
      }
      return current;
    });
    if (!updated || !changed) return undefined;
    await this.options.operations.finish(updated.value.operation, 'FAILED', { code: OperationCode.CANCELLED, message: `operation ${updated.value.operation} was cancelled` });
    await this.publishPhase(updated.value);
    this.kick(id);
    return updated.value;
  }

  /** A new operation works on the deployment: the one it takes over from ends (ABORTED) if it still ran. */
  private async takeOver(previous: string, record: DeploymentRecord, kind: OperationKind): Promise<void> {
    if (previous && previous !== record.operation) {
      await this.options.operations.finish(previous, record.phase, { code: OperationCode.ABORTED, message: `superseded by ${kind} (${record.operation})` });
    }
    await this.options.operations.begin(record, kind);
  }

  /** Runs the deployment's loop (one at a time per deployment; a kick while running runs it again). */
  kick(id: string): void {
    if (this.stopped) return;
    if (this.running.has(id)) {
      this.again.add(id);
      return;
    }
    const run = this.drive(id)
      .catch((error) => this.options.log.error({ err: error, deployment: id }, 'deployment step failed'))
      .finally(() => {
        this.running.delete(id);
        if (this.again.delete(id)) this.kick(id);
      });
    this.running.set(id, run);
  }

  /** Waits until nothing is running for the deployment (tests, shutdown). */
  async idle(id: string): Promise<void> {
    while (this.running.has(id)) await this.running.get(id);
  }

  private async drive(id: string): Promise<void> {
    for (let round = 0; round < 1000 && !this.stopped; round++) {
      const entry = await this.options.deployments.get(id);
      if (!entry) return;
      const record = entry.value;
      // FAILED and kept: nothing more happens until an update or a deletion.
      if (record.phase === 'FAILED' && record.action !== 'delete') return;
      const { steps, phase, reason } = nextSteps(record);
      if (phase === 'FAILED' && record.action !== 'delete') {
        await this.setPhase(id, phase, reason, !record.keepOnFailure);
        if (record.keepOnFailure) return;
        continue;
      }
      if (record.phase !== phase || record.reason !== reason) await this.setPhase(id, phase, reason, false);
      if (!steps.length) return;
      await Promise.all(steps.map((step) => this.perform(id, record, step)));
    }
  }

  private async setPhase(id: string, phase: DeploymentRecord['phase'], reason: string, rollback: boolean): Promise<void> {
    let changed: DeploymentRecord | undefined;
    await this.options.deployments.mutate(id, (current) => {
      if (!current) return undefined;
      if (current.phase === phase && current.reason === reason && !rollback) return undefined;
      current.phase = phase;
      current.reason = reason;
      current.updateTime = new Date().toISOString();
      if (rollback) {
        wantNothing(current);
        current.action = 'delete';
      }
      changed = current;
      return current;
    });
    if (changed) {
      await this.options.operations.settle(changed);
      await this.publishPhase(changed);
    }
  }

  /** Everyone else (the gateway, users' tools) learns of a deployment's new phase from the bus. */
  private async publishPhase(r: DeploymentRecord): Promise<void> {
    const event = DeploymentStateChanged.fromPartial({ deploymentId: r.id, project: r.project, state: DeploymentState[r.phase], reason: r.reason });
    await this.options.bus.publish({ $case: 'deploymentStateChanged', deploymentStateChanged: event }, r.id, `${r.id}.${r.phase}.${r.generation}.${r.reason.length}`).catch((error) => this.options.log.warn({ err: error, deployment: r.id }, 'could not publish the deployment state'));
  }

  private async perform(id: string, record: DeploymentRecord, step: Step): Promise<void> {
    const { log } = this.options;
    // Removing is retried a little (every removal is idempotent): a runtime restarting must not
    // leave a deletion FAILED. A deletion that still fails is FAILED; deleting again retries it.
    const attempts = record.action === 'delete' ? 4 : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.performOnce(id, record, step);
        return;
      } catch (error) {
        if (attempt < attempts && !this.stopped) {
          log.info({ err: error, deployment: id, step, attempt }, 'deletion step failed; retrying');
          await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt));
          continue;
        }
        log.warn({ err: error, deployment: id, step }, 'deployment step failed');
        await this.setPhase(id, 'FAILED', `${step.kind} ${step.key} failed: ${(error as Error).message}`, !record.keepOnFailure && record.action !== 'delete');
        if (record.action === 'delete') throw error;
        return;
      }
    }
  }

  private async performOnce(id: string, record: DeploymentRecord, step: Step): Promise<void> {
    const as: ActAs = { token: this.tokens.get(id), project: record.project };
    const requestId = `${id}:${step.kind}:${step.key}:${record.generation}`;
    const { ports } = this.options;
    {
      switch (step.kind) {
        case 'submitClaim': {
          const inst = record.instances[step.key]!;
          await this.change(id, (r) => {
            const i = r.instances[step.key];
            if (i?.state === 'wanted') Object.assign(i, { state: 'submitted', submitRequestId: requestId });
          });
          this.inflight++;
          try {
            const claimId = await ports.submitClaim(inst.spec, requestId, as);
            await this.options.index.put(claimId, { deployment: id, key: step.key });
            await this.change(id, (r) => {
              const i = r.instances[step.key]!;
              i.claimId = claimId;
              // Deleted while the submission was on its way: the claim goes too.
              if (i.state === 'deleted') i.state = 'unwanted';
            });
          } finally {
            this.inflight--;
          }
          return;
        }
        case 'createVolume': {
          const att = Object.values(record.attachments).find((a) => a.spec.volume === step.key);
          const host = att ? record.instances[att.spec.instance]?.host : undefined;
          const volumeId = await ports.createVolume(record.volumes[step.key]!.spec, requestId, as, host);
          await this.change(id, (r) => {
            const v = r.volumes[step.key]!;
            // Deleted while it was being made: it is removed in turn.
            Object.assign(v, { volumeId, state: v.state === 'wanted' ? 'created' : 'unwanted' });
          });
          return;
        }
        case 'attachVolume': {
          const att = record.attachments[step.key]!;
          const volumeId = record.volumes[att.spec.volume]!.volumeId!;
          const instanceId = record.instances[att.spec.instance]!.claimId!;
          await ports.attachVolume(volumeId, instanceId, att.spec, requestId, as);
          await this.change(id, (r) => { r.attachments[step.key]!.state = 'attached'; });
          return;
        }
        case 'cancelClaim': {
          const inst = record.instances[step.key]!;
          let claimId = inst.claimId;
          if (!claimId && inst.submitRequestId) {
            // Its submission never answered: the same request id gives back the same claim.
            claimId = await ports.submitClaim(inst.spec, inst.submitRequestId, as);
            await this.options.index.put(claimId, { deployment: id, key: step.key });
            await this.change(id, (r) => { r.instances[step.key]!.claimId = claimId; });
          }
          if (!claimId) {
            await this.change(id, (r) => { r.instances[step.key]!.state = 'deleted'; });
            return;
          }
          await this.change(id, (r) => { r.instances[step.key]!.state = 'deleting'; });
          const { placed } = await ports.cancelClaim(claimId, requestId, as);
          // Cancelling a claim that has ended (its instance in ERROR) does not remove the
          // instance: the runtime is asked directly.
          const gone = await ports.deleteInstance(claimId, requestId, as);
          if (gone === 'deleted' || (gone === 'absent' && !placed)) {
            await this.change(id, (r) => {
              const i = r.instances[step.key]!;
              if (i.state === 'deleting' || i.state === 'unwanted') i.state = 'deleted';
            });
          }
          // Otherwise the runtime's events tell (a placement it has not made yet is made and
          // then removed; one it makes after the cancellation is seen running and deleted again).
          return;
        }
        case 'deleteVolume': {
          const vol = record.volumes[step.key]!;
          if (vol.volumeId) await ports.deleteVolume(vol.volumeId, requestId, as);
          await this.change(id, (r) => {
            r.volumes[step.key]!.state = 'deleted';
            for (const a of Object.values(r.attachments)) if (a.spec.volume === step.key) a.state = 'detached';
          });
          return;
        }
      }
    }
  }

  /**
   * Changes the deployment's record. Every step of a deployment writes that one record, so
   * the edits made while a write is on its way are applied together by the next one: one
   * compare-and-set for many parallel steps instead of each retrying against the others.
   */
  private change(id: string, edit: (r: DeploymentRecord) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const queued = this.edits.get(id);
      if (queued) return void queued.push({ edit, resolve, reject });
      this.edits.set(id, [{ edit, resolve, reject }]);
      const write = (this.writes.get(id) ?? Promise.resolve()).then(() => this.writeEdits(id));
      this.writes.set(id, write);
      void write.finally(() => this.writes.get(id) === write && this.writes.delete(id));
    });
  }

  private async writeEdits(id: string): Promise<void> {
    const edits = this.edits.get(id) ?? [];
    this.edits.delete(id);
    // An edit that throws (an event that must wait) fails alone; the others are written.
    const failed = new Map<QueuedEdit, unknown>();
    try {
      await this.options.deployments.mutate(
        id,
        (current) => {
          if (!current) return undefined;
          failed.clear();
          for (const e of edits) {
            try {
              e.edit(current);
            } catch (error) {
              failed.set(e, error);
            }
          }
          current.updateTime = new Date().toISOString();
          return current;
        },
        100,
      );
    } catch (error) {
      for (const e of edits) e.reject(error);
      return;
    }
    for (const e of edits) (failed.has(e) ? e.reject(failed.get(e)) : e.resolve());
  }

  private async onInstance(event: { instanceId: string; node: string; state: InstanceState; reason: string; addresses: { network: string; ip: string }[] }): Promise<void> {
    const owner = await this.options.index.get(event.instanceId);
    if (!owner) {
      if (this.inflight > 0) throw new RetryLater(`instance ${event.instanceId} is not known yet`, 200);
      return;
    }
    const { deployment, key } = owner.value;
    await this.change(deployment, (r) => {
      const inst = r.instances[key];
      // The index is written as soon as SubmitClaim answers, the record just after: an event
      // in between records the claim id itself. An end waits for the record instead: it may be
      // the last word of an earlier claim of the same key.
      if (inst && !inst.claimId && inst.state === 'submitted') {
        if ([InstanceState.DELETED, InstanceState.ERROR, InstanceState.PREEMPTED].includes(event.state)) throw new RetryLater(`claim ${event.instanceId} is not recorded yet`, 200);
        inst.claimId = event.instanceId;
      }
      if (!inst || inst.claimId !== event.instanceId) return;
      switch (event.state) {
        case InstanceState.RUNNING:
          // Made after its cancellation reached the node: deleted again.
          if (inst.state === 'deleting') inst.state = 'unwanted';
          if (inst.state === 'submitted' || inst.state === 'wanted') inst.state = 'running';
          if (inst.state !== 'running') break;
          inst.addresses = event.addresses.map((a) => ({ network: a.network, ip: a.ip }));
          if (event.node) inst.host = event.node;
          break;
        case InstanceState.DELETED:
        case InstanceState.PREEMPTED:
          // Events may come twice (redelivery): a deleted instance stays deleted.
          if (inst.state === 'deleting' || inst.state === 'unwanted' || inst.state === 'deleted') inst.state = 'deleted';
          else if (inst.state !== 'error') {
            inst.state = 'error';
            inst.reason = event.reason || (event.state === InstanceState.DELETED ? 'deleted outside the deployment' : InstanceState[event.state]);
          }
          break;
        case InstanceState.ERROR:
          // An instance in ERROR is still on its node (and holds its volumes): one being deleted
          // is deleted again, directly on the runtime.
          if (inst.state === 'deleting') inst.state = 'unwanted';
          else if (inst.state !== 'error' && inst.state !== 'unwanted' && inst.state !== 'deleted') {
            inst.state = 'error';
            inst.reason = event.reason || InstanceState[event.state];
          }
          break;
        default:
          break;
      }
    });
    this.kick(deployment);
  }
}

export const newDeploymentId = () => `dep-${randomUUID().slice(0, 12)}`;
