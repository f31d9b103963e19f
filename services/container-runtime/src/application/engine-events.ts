// The engine's events for this node's workloads (Docker's start, die, oom, destroy; a pod
// watch's equivalents) as state changes: a crash is ERROR with its exit code or OOMKilled, a
// clean exit STOPPED, a restart by the restart policy RUNNING again, a workload removed behind
// Lapis's back ERROR. What Lapis does itself (stop, delete, reboot) is expected and ignored.
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { EngineEvent } from '../adapters/backend';
import { applyExit, applyObserved } from '../domain/observed';
import { TERMINAL } from '../domain/states';
import type { InstanceRecords } from './instance-records';
import type { AgentContext } from './settings';

/** How long a workload's events are still ignored after Lapis stopped or removed it (they may be on their way). */
const SETTLE_MS = 2_000;

export class EngineEvents {
  /** Instances whose workload Lapis itself is stopping or removing: their "die" is expected. */
  private readonly quiet = new Set<string>();
  private readonly oomKilled = new Set<string>();
  private stopped = false;

  constructor(
    private readonly ctx: AgentContext,
    private readonly records: InstanceRecords,
  ) {}

  /** Lapis is about to stop or remove the instance's workload: its events are not news. */
  expect(id: string): void {
    this.quiet.add(id);
  }

  /** Done: the instance's events count again. */
  done(id: string): void {
    this.quiet.delete(id);
  }

  /** Done, but the engine's events of what was done may still arrive for a moment. */
  doneSoon(id: string): void {
    setTimeout(() => this.quiet.delete(id), SETTLE_MS).unref();
  }

  /** The engine reported an OOM kill of the instance's workload that no "die" has consumed yet. */
  wasOomKilled(id: string): boolean {
    return this.oomKilled.has(id);
  }

  /** The agent stops: events that still come are left for the next agent's reconcile. */
  stop(): void {
    this.stopped = true;
  }

  async handle(event: EngineEvent): Promise<void> {
    if (this.stopped) return;
    if (event.action === 'oom') {
      this.oomKilled.add(event.instanceId);
      return;
    }
    if (this.quiet.has(event.instanceId)) return;
    const { backend } = this.ctx.deps;
    await this.ctx.locks.with([`i:${event.instanceId}`], async () => {
      if (this.quiet.has(event.instanceId)) return;
      const current = (await this.records.get(event.instanceId))?.value;
      if (!current || current.node !== this.ctx.settings.node || current.backendId !== event.backendId) return;
      if (event.action === 'destroy') {
        if (!TERMINAL.has(current.state)) {
          await this.records.setState(current.id, (i) => {
            i.state = InstanceState.ERROR;
            i.stateReason = 'container removed outside Lapis';
            i.backendId = '';
            i.addresses = [];
          });
        }
        return;
      }
      if (event.action === 'die' && (current.state === InstanceState.RUNNING || current.state === InstanceState.ERROR)) {
        const oom = this.oomKilled.delete(current.id);
        const observed = await backend.inspect(event.backendId);
        const exitCode = event.exitCode ?? observed?.exitCode ?? 0;
        await this.records.setState(current.id, (i) => applyExit(i, exitCode, oom || !!observed?.oomKilled));
      } else if (event.action === 'start' && (current.state === InstanceState.ERROR || current.state === InstanceState.STOPPED)) {
        const observed = await backend.inspect(event.backendId);
        if (observed?.running) await this.records.setState(current.id, (i) => applyObserved(i, observed, 'restarted', false));
      }
    });
  }
}
