// The deployment engine: deployments as records in the key-value store (changed with
// compare-and-set), driven step by step through the scheduler and the runtime (the Ports), and
// moved on by the runtime's instance_state_changed events. A restarted orchestrator resumes
// every deployment that was not finished; replicas drive each deployment from one replica at a
// time (ownership.ts). This class holds the running state and starts and stops; each use case
// is its own file (deploy, update, undeploy, cancel, resume, retention).
import type { RunningConsumer } from '@lapis/platform';
import type { DeploymentRecord } from '../domain/deployment';
import type { Topology } from '../domain/model';
import { cancel } from './cancel';
import type { EngineContext, EngineOptions } from './context';
import { deploy } from './deploy';
import { DeploymentLoops } from './deployment-loops';
import { drive } from './drive';
import { consumeInstanceEvents } from './instance-events';
import { RecordEdits } from './record-edits';
import { startSweeping, sweepDeleted } from './retention';
import { Ownership } from './ownership';
import { needsDriving, pickUp, resume } from './resume';
import { undeploy } from './undeploy';
import { update } from './update';

export type { EngineOptions } from './context';
export { newDeploymentId } from './deploy';

export class DeploymentEngine {
  private readonly ctx: EngineContext;
  private readonly loops: DeploymentLoops;
  private readonly ownership: Ownership;
  private consumer?: RunningConsumer;
  private sweeper?: NodeJS.Timeout;

  constructor(options: EngineOptions) {
    const edits = new RecordEdits(options.deployments);
    this.ownership = new Ownership(options);
    this.loops = new DeploymentLoops((id) => this.run(id), options.log);
    this.ctx = {
      options,
      change: (id, edit) => edits.change(id, edit),
      kick: (id) => this.loops.kick(id),
      stopped: () => this.loops.stopped,
      owns: (id) => this.ownership.leases.holds(id),
      tokens: new Map(),
      submissions: { inflight: 0 },
    };
  }

  /** Consumes the runtime's events, resumes what a previous process left unfinished, sweeps deleted deployments. */
  async start(): Promise<void> {
    this.consumer = await consumeInstanceEvents(this.ctx);
    await this.ownership.start((id) => this.loops.kick(id));
    await resume(this.ctx);
    this.sweeper = startSweeping(this.ctx);
  }

  /** Stops driving, and hands what it drove over to the other replicas. */
  async stop(): Promise<void> {
    const loops = this.loops.stop();
    clearInterval(this.sweeper);
    try {
      await this.consumer?.stop();
      await loops;
    } finally {
      await this.ownership.stop(); // its watches too, even when NATS is gone
    }
  }

  /** One run of a deployment's loop, on the replica that holds its lease; the lease goes once it rests. */
  private async run(id: string): Promise<void> {
    const { leases } = this.ownership;
    const took = await leases.take(id);
    if (took === 'other') return;
    if (took === 'taken') await pickUp(this.ctx, id);
    await drive(this.ctx, id);
    const entry = await this.ctx.options.deployments.get(id);
    if (!entry || !needsDriving(entry.value)) await leases.release(id);
  }

  /** Stores a new deployment and starts it. */
  create(record: DeploymentRecord, topology: Topology, token?: string): Promise<DeploymentRecord> {
    return deploy(this.ctx, record, topology, token);
  }

  /** A new template or inputs: only what the plan's difference says changes. */
  update(id: string, change: (r: DeploymentRecord) => Topology, token?: string): Promise<DeploymentRecord> {
    return update(this.ctx, id, change, token);
  }

  /** Undeploys whatever the deployment is doing (undeploy.ts). */
  delete(id: string, token?: string): Promise<DeploymentRecord | undefined> {
    return undeploy(this.ctx, id, token);
  }

  /** Cancels the creation or update under way (cancel.ts); undefined when nothing ran. */
  cancel(id: string): Promise<DeploymentRecord | undefined> {
    return cancel(this.ctx, id);
  }

  /** Removes the records of deployments DELETED longer ago than the retention (retention.ts). */
  sweep(now = Date.now()): Promise<string[]> {
    return sweepDeleted(this.ctx, now);
  }

  /** Runs the deployment's loop (one at a time per deployment; a kick while running runs it again). */
  kick(id: string): void {
    this.loops.kick(id);
  }

  /** Waits until nothing is running for the deployment (tests, shutdown). */
  idle(id: string): Promise<void> {
    return this.loops.idle(id);
  }
}
