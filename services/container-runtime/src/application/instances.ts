// An instance's life after its creation (create-instance.ts): Get and List, Start, Stop,
// Reboot, Suspend and Resume, Resize and Delete, and the teardown that preemption shares with Delete. Every
// mutation takes the instance's lock, checks the state it needs and the tenant's door
// (domain/door.ts), and replays a request id it has already done.
import { failedPrecondition } from '@lapis/platform';
import { InstanceState, type Resources } from '@lapis/proto/lapis/common/v1/common';
import type { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import { checkTenantResize, checkTenantRestart, type Scope } from '../domain/door';
import { applyObserved } from '../domain/observed';
import { requireState, TERMINAL } from '../domain/states';
import { checkResize } from '../domain/validate';
import type { EngineEvents } from './engine-events';
import type { RequestLog } from './idempotency';
import type { InstanceRecords } from './instance-records';
import type { AgentContext } from './settings';
import type { Workloads } from './workloads';

export class Instances {
  constructor(
    private readonly ctx: AgentContext,
    private readonly records: InstanceRecords,
    private readonly requests: RequestLog,
    private readonly engine: EngineEvents,
    private readonly workloads: Workloads,
  ) {}

  get(id: string, scope: Scope): Promise<Instance> {
    return this.records.inScope(id, scope);
  }

  async list(scope: Scope, filter: { project: string; state: InstanceState; node: string }): Promise<Instance[]> {
    const project = scope.admin ? filter.project : scope.project;
    return (await this.records.all())
      .filter((i) => (!project || i.project === project) && (!filter.node || i.node === filter.node))
      .filter((i) => (filter.state ? i.state === filter.state : i.state !== InstanceState.DELETED))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  async start(id: string, requestId: string, scope: Scope): Promise<Instance> {
    const { backend } = this.ctx.deps;
    return this.mutation('StartInstance', id, requestId, scope, async (instance) => {
      if (instance.state === InstanceState.RUNNING) return instance;
      requireState('start', id, instance.state, [InstanceState.STOPPED, InstanceState.ERROR]);
      checkTenantRestart(scope, 'start', id, instance.state);
      if (!instance.backendId)
        throw failedPrecondition(`instance ${id} has no container (${instance.stateReason}); delete it`, 'NO_CONTAINER');
      if (backend.recreates) return this.workloads.remake(instance, 'start', this.ctx.settings.stopTimeoutS, instance.spec!, 'started');
      await backend.start(instance.backendId);
      return this.observe(id, 'started');
    });
  }

  async stop(id: string, timeoutS: number, requestId: string, scope: Scope): Promise<Instance> {
    const { backend } = this.ctx.deps;
    return this.mutation('StopInstance', id, requestId, scope, async (instance) => {
      if (instance.state === InstanceState.STOPPED) return instance;
      requireState('stop', id, instance.state, [InstanceState.RUNNING, InstanceState.SUSPENDED, InstanceState.ERROR]);
      this.engine.expect(id);
      try {
        // A frozen container gets its SIGTERM only once it runs again.
        if (instance.state === InstanceState.SUSPENDED) await backend.resume!(instance.backendId);
        await backend.stop(instance.backendId, timeoutS);
        const observed = await backend.inspect(instance.backendId);
        return await this.records.setState(id, (i) => {
          i.state = InstanceState.STOPPED;
          i.stateReason = 'stopped';
          i.exitCode = observed?.exitCode ?? 0;
        });
      } finally {
        this.engine.done(id);
      }
    });
  }

  async reboot(id: string, timeoutS: number, requestId: string, scope: Scope): Promise<Instance> {
    const { backend } = this.ctx.deps;
    return this.mutation('RebootInstance', id, requestId, scope, async (instance) => {
      requireState('reboot', id, instance.state, [InstanceState.RUNNING, InstanceState.STOPPED, InstanceState.ERROR]);
      checkTenantRestart(scope, 'reboot', id, instance.state);
      if (backend.recreates) {
        if (!instance.backendId)
          throw failedPrecondition(`instance ${id} has no container (${instance.stateReason}); delete it`, 'NO_CONTAINER');
        return this.workloads.remake(instance, 'reboot', timeoutS, instance.spec!, 'rebooted');
      }
      this.engine.expect(id);
      try {
        await backend.restart(instance.backendId, timeoutS);
        return await this.observe(id, 'rebooted');
      } finally {
        this.engine.done(id);
      }
    });
  }

  /**
   * Freezes a RUNNING instance where it is (SUSPENDED). It keeps its claim, its room on the node
   * and its memory, so resuming starts no work beside the scheduler: the tenant may do both.
   */
  async suspend(id: string, requestId: string, scope: Scope): Promise<Instance> {
    const { backend } = this.ctx.deps;
    return this.mutation('SuspendInstance', id, requestId, scope, async (instance) => {
      if (instance.state === InstanceState.SUSPENDED) return instance;
      if (!backend.suspend) {
        throw failedPrecondition(
          `cannot suspend instance ${id}: ${backend.suspendRefusal ?? "this node's engine has no pause"}`,
          'NO_SUSPEND',
        );
      }
      requireState('suspend', id, instance.state, [InstanceState.RUNNING]);
      await backend.suspend(instance.backendId);
      return this.observe(id, 'suspended');
    });
  }

  async resume(id: string, requestId: string, scope: Scope): Promise<Instance> {
    const { backend } = this.ctx.deps;
    return this.mutation('ResumeInstance', id, requestId, scope, async (instance) => {
      if (instance.state === InstanceState.RUNNING) return instance;
      requireState('resume', id, instance.state, [InstanceState.SUSPENDED]);
      await backend.resume!(instance.backendId);
      return this.observe(id, 'resumed');
    });
  }

  async resize(id: string, flavor: string, resources: Resources | undefined, requestId: string, scope: Scope): Promise<Instance> {
    const { backend, flavors } = this.ctx.deps;
    return this.mutation('ResizeInstance', id, requestId, scope, async (instance) => {
      requireState('resize', id, instance.state, [InstanceState.RUNNING, InstanceState.STOPPED]);
      const next = checkResize(flavor, resources, flavors, instance.spec!.resources!);
      checkTenantResize(scope, id, next, instance.placedResources, instance.spec!.resources!);
      if (backend.recreates && instance.state === InstanceState.RUNNING) {
        const spec = { ...instance.spec!, resources: next, ...(flavor ? { flavor } : {}) };
        return this.workloads.remake(instance, 'resize', this.ctx.settings.stopTimeoutS, spec, `resized to ${flavor || 'new resources'}`);
      }
      // A stopped pod-backed instance has no pod: the next start makes it with the new resources.
      if (!backend.recreates) await backend.resize(instance.backendId, next);
      return this.records.setState(
        id,
        (i) => {
          i.spec = { ...i.spec!, resources: next, ...(flavor ? { flavor } : {}) };
        },
        { announceAlways: true },
      );
    });
  }

  async delete(id: string, timeoutS: number, requestId: string, scope: Scope): Promise<Instance> {
    const current = await this.records.inScope(id, scope);
    // Deleted or preempted: nothing of it is left on the node; deleting it again changes nothing.
    if (TERMINAL.has(current.state)) return current;
    return this.mutation('DeleteInstance', id, requestId, scope, async (instance) => {
      if (TERMINAL.has(instance.state)) return instance;
      requireState('delete', id, instance.state, [
        InstanceState.RUNNING,
        InstanceState.SUSPENDED,
        InstanceState.STOPPED,
        InstanceState.ERROR,
        InstanceState.CREATING,
      ]);
      return this.teardownLocked(instance, timeoutS, InstanceState.DELETED, 'deleted');
    });
  }

  /** Ends an instance the scheduler took back (preemption): removed like a delete, recorded as `state`. */
  async teardown(id: string, timeoutS: number, state: InstanceState, reason: string): Promise<Instance> {
    return this.ctx.locks.with([`i:${id}`], async () => {
      const instance = (await this.records.get(id))!.value;
      if (TERMINAL.has(instance.state)) return instance;
      return this.teardownLocked(instance, timeoutS, state, reason);
    });
  }

  /** Stops gracefully (SIGTERM, then kill after the timeout), removes everything, records `state`. */
  private async teardownLocked(instance: Instance, timeoutS: number, state: InstanceState, reason: string): Promise<Instance> {
    const { backend } = this.ctx.deps;
    this.engine.expect(instance.id);
    // A frozen container gets its SIGTERM only once it runs again.
    if (instance.state === InstanceState.SUSPENDED) await backend.resume?.(instance.backendId).catch(() => undefined);
    if (instance.backendId && (await backend.inspect(instance.backendId))?.running) {
      await backend.stop(instance.backendId, timeoutS);
    }
    await this.workloads.cleanup(instance);
    return this.records.setState(instance.id, (i) => {
      i.state = state;
      i.stateReason = reason;
      i.addresses = [];
      i.volumeAttachments = [];
      i.devices = i.devices.map((d) => ({ ...d, allocatedTo: '' }));
    });
  }

  /** The instance of this node, in scope, locked; replays a mutation already done under the request id. */
  private async mutation(
    method: string,
    id: string,
    requestId: string,
    scope: Scope,
    work: (instance: Instance) => Promise<Instance>,
  ): Promise<Instance> {
    if (requestId && (await this.requests.find(method, scope, requestId)) === id) return this.get(id, scope);
    const node = this.ctx.settings.node;
    return this.ctx.locks.with([`i:${id}`], async () => {
      const instance = await this.get(id, scope);
      if (instance.node !== node) {
        throw failedPrecondition(`instance ${id} runs on node ${instance.node}; this is node ${node}`, 'WRONG_NODE', {
          node: instance.node,
        });
      }
      const result = await work(instance);
      if (requestId) await this.requests.remember(method, scope, requestId, id);
      return result;
    });
  }

  /** Reads the container and records RUNNING/STOPPED/ERROR from it. */
  private async observe(id: string, reason: string): Promise<Instance> {
    const instance = (await this.records.get(id))!.value;
    const observed = instance.backendId ? await this.ctx.deps.backend.inspect(instance.backendId) : undefined;
    return this.records.setState(id, (i) => applyObserved(i, observed, reason, this.engine.wasOomKilled(id)));
  }
}
