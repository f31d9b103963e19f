// ExecInInstance: files written into a running instance and a command run there, on the node
// that runs it, by admins and the services only (the TOSCA orchestrator's lifecycle operations).
import { failedPrecondition } from '@lapis/platform';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { ExecRequest, ExecResult } from '../adapters/backend';
import { checkExec, type Scope } from '../domain/door';
import { stateName } from '../domain/states';
import type { InstanceRecords } from './instance-records';
import type { AgentContext } from './settings';

export class InstanceExec {
  constructor(
    private readonly ctx: AgentContext,
    private readonly records: InstanceRecords,
  ) {}

  async run(id: string, request: ExecRequest, scope: Scope): Promise<ExecResult> {
    checkExec(scope, id);
    const instance = await this.records.inScope(id, scope);
    const { node } = this.ctx.settings;
    if (instance.node !== node)
      throw failedPrecondition(`instance ${id} runs on node ${instance.node}; this is node ${node}`, 'WRONG_NODE');
    if (instance.state !== InstanceState.RUNNING || !instance.backendId)
      throw failedPrecondition(`instance ${id} is ${stateName(instance.state)}: commands run only in a RUNNING instance`, 'NOT_RUNNING');
    const { backend } = this.ctx.deps;
    if (!backend.exec)
      throw failedPrecondition(
        `node ${node}'s engine cannot run commands in its instances (not implemented for it yet)`,
        'EXEC_NOT_SUPPORTED',
      );
    return backend.exec(instance.backendId, request);
  }
}
