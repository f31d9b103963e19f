// StreamInstanceLogs: what an instance's workload wrote, and with `follow` what it writes from
// then on, shared among every follower of the instance (log-follows.ts) where the engine can
// follow a log.
import { failedPrecondition } from '@lapis/platform';
import type { LogChunk, LogOptions } from '../adapters/backend';
import type { Scope } from '../domain/door';
import { stateName } from '../domain/states';
import type { InstanceRecords } from './instance-records';
import { LogFollows } from './log-follows';
import type { AgentContext } from './settings';

export class InstanceLogs {
  /** One engine log stream per followed instance (where the backend can follow logs). */
  readonly follows?: LogFollows;

  constructor(
    private readonly ctx: AgentContext,
    private readonly records: InstanceRecords,
  ) {
    const { backend } = ctx.deps;
    if (backend.followLogs) this.follows = new LogFollows(backend, backend.followLogs.bind(backend));
  }

  async *stream(id: string, options: LogOptions, scope: Scope): AsyncIterable<LogChunk> {
    const instance = await this.records.inScope(id, scope);
    const node = this.ctx.settings.node;
    if (instance.node !== node)
      throw failedPrecondition(`instance ${id} runs on node ${instance.node}; this is node ${node}`, 'WRONG_NODE');
    if (!instance.backendId) throw failedPrecondition(`instance ${id} has no container (${stateName(instance.state)})`, 'NO_CONTAINER');
    if (options.follow && this.follows) yield* this.follows.follow(instance.backendId, options);
    else yield* this.ctx.deps.backend.logs(instance.backendId, options);
  }
}
