// Instance records: kept in KV with compare-and-set, mirrored in memory for the lists, and
// announced as `instanceStateChanged` whenever their state moves.
import { BucketMirror, type EventBus, type Logger, notFound, withRetries } from '@lapis/platform';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { Instance as InstanceCodec, type Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import type { Store } from '../adapters/store';
import { type Scope, visibleTo } from '../domain/door';
import { stateName } from '../domain/states';

export class InstanceRecords {
  private readonly index: BucketMirror<Instance>;

  constructor(
    private readonly store: Store,
    private readonly bus: EventBus,
    private readonly log: Logger,
    /** Called after every announced change (the heartbeat follows soon). */
    private readonly onChange: () => void,
  ) {
    this.index = new BucketMirror(store.instances, (bytes) => InstanceCodec.decode(bytes));
  }

  start(): Promise<void> {
    return this.index.start();
  }

  stop(): void {
    this.index.stop();
  }

  /** The record as stored, with its revision. */
  get(id: string): Promise<{ value: Instance; revision: number } | undefined> {
    return this.store.instances.get(id);
  }

  /** The record of an instance the caller may see; NOT_FOUND otherwise, whether it exists or not. */
  async inScope(id: string, scope: Scope): Promise<Instance> {
    const found = await this.store.instances.get(id);
    if (!found || !visibleTo(scope, found.value.project)) throw notFound(`instance ${id} not found`, 'INSTANCE_NOT_FOUND');
    return found.value;
  }

  /** Every instance of every node, from the in-memory index. */
  async all(): Promise<Instance[]> {
    return this.index.values();
  }

  /** Writes an instance with compare-and-set (create when `revision` is undefined) and notes it in the index. */
  async write(instance: Instance, revision: number | undefined): Promise<number> {
    const next =
      revision === undefined
        ? await this.store.instances.create(instance.id, instance)
        : await this.store.instances.update(instance.id, instance, revision);
    this.index.note(instance.id, structuredClone(instance), next);
    return next;
  }

  /** Read-modify-write of an instance; announces the change when the state moved. */
  async setState(id: string, change: (instance: Instance) => void, options: { announceAlways?: boolean } = {}): Promise<Instance> {
    const result = await this.setStateIf(id, () => true, change, options);
    if (!result) throw notFound(`instance ${id} not found`, 'INSTANCE_NOT_FOUND');
    return result;
  }

  /**
   * setState when the record as it is now passes `only` (read in the same compare-and-set):
   * undefined, and nothing written, when it does not or there is no record.
   */
  async setStateIf(
    id: string,
    only: (current: Instance) => boolean,
    change: (instance: Instance) => void,
    options: { announceAlways?: boolean } = {},
  ): Promise<Instance | undefined> {
    let previous = InstanceState.UNSPECIFIED;
    let changed = false;
    let passed = false;
    const result = await this.store.instances.mutate(id, (current) => {
      passed = !!current && only(current);
      if (!current || !passed) return undefined;
      previous = current.state;
      const next = { ...current, spec: current.spec ? { ...current.spec } : undefined };
      change(next);
      changed = next.state !== previous || !!options.announceAlways;
      next.updateTime = new Date();
      if (changed) next.generation = current.generation + 1;
      return next;
    });
    if (!result || !passed) return undefined;
    this.index.note(id, structuredClone(result.value), result.revision);
    if (changed) await this.announce(result.value, previous);
    return result.value;
  }

  /** Publishes `instanceStateChanged` (message id `<id>.<STATE>.<generation>`, so a retry is one event). */
  async announce(instance: Instance, previous: InstanceState): Promise<void> {
    const id = `${instance.id}.${stateName(instance.state)}.${instance.generation}`;
    const payload = {
      $case: 'instanceStateChanged' as const,
      instanceStateChanged: {
        instanceId: instance.id,
        project: instance.project,
        node: instance.node,
        state: instance.state,
        previousState: previous,
        reason: instance.stateReason,
        addresses: instance.addresses,
        exitCode: instance.exitCode,
        resources: instance.spec?.resources,
      },
    };
    await withRetries(() => this.bus.publish(payload, instance.id, id), { attempts: 3, delayMs: (failed) => 200 * failed }).catch((error) =>
      this.log.error({ err: error, event: id }, 'instance event not published'),
    );
    this.onChange();
  }
}
