// The node's record: its capacity, what its instances hold, its devices and cached images.
// Written to `runtime-nodes` and published as `nodeHeartbeat` every LAPIS_HEARTBEAT_MS, and
// soon (coalesced, 250 ms) after every instance change, so the scheduler sees room freed or
// taken at once. GetNode and ListNodes read it.
import { notFound } from '@lapis/platform';
import { type Node, NodeState } from '@lapis/proto/lapis/runtime/v1/runtime';
import { allocatedBy, nodeDevices } from '../domain/node';
import { HOLDS_ROOM } from '../domain/states';
import type { Background } from './background';
import type { InstanceRecords } from './instance-records';
import type { AgentContext } from './settings';

/** Changes within this time make one heartbeat. */
const COALESCE_MS = 250;
/** The engine's image list is read at most this often (a heartbeat per change must stay cheap). */
const IMAGES_MAX_AGE_MS = 30_000;

export class Heartbeat {
  private soonTimer?: NodeJS.Timeout;
  private stopped = false;
  private cachedImages: { at: number; digests: string[] } = { at: 0, digests: [] };

  constructor(
    private readonly ctx: AgentContext,
    private readonly records: InstanceRecords,
    private readonly background: Background,
  ) {}

  /** Writes and publishes the node's record now. */
  async beat(): Promise<Node> {
    const node = await this.record();
    await this.ctx.deps.store.nodes.put(this.ctx.settings.node, node);
    await this.ctx.deps.bus.publish({ $case: 'nodeHeartbeat', nodeHeartbeat: { node } }, this.ctx.settings.node);
    return node;
  }

  /** A heartbeat within COALESCE_MS, one for every change in that time. */
  soon(): void {
    if (this.stopped || this.soonTimer) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined;
      this.background.track(this.beat());
    }, COALESCE_MS);
    this.soonTimer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.soonTimer);
  }

  /** This node's record as it is now. */
  async record(): Promise<Node> {
    const { settings } = this.ctx;
    const instances = (await this.records.all()).filter((i) => i.node === settings.node && HOLDS_ROOM.has(i.state));
    return {
      name: settings.node,
      backend: this.ctx.deps.backend.kind,
      partition: settings.partition,
      state: NodeState.READY,
      capacity: { ...settings.capacity, gpus: settings.inventory.gpus.length },
      allocated: allocatedBy(instances),
      devices: nodeDevices(settings.inventory, instances),
      cachedImages: await this.imagesOnNode(),
      labels: {},
      heartbeatTime: new Date(),
      instanceCount: instances.length,
    };
  }

  /** GetNode: this node as it is now, another as its last heartbeat left it. */
  async get(name: string): Promise<Node> {
    if (!name || name === this.ctx.settings.node) return this.record();
    const found = await this.ctx.deps.store.nodes.get(name);
    if (!found) throw notFound(`node ${name} not found`, 'NODE_NOT_FOUND');
    return found.value;
  }

  /** ListNodes: every node of the partition (all where it is empty), by name. */
  async list(partition: string): Promise<Node[]> {
    const self = this.ctx.settings.node;
    const nodes = (await this.ctx.deps.store.nodes.list()).map((e) => (e.key === self ? undefined : e.value)).filter((n): n is Node => !!n);
    nodes.push(await this.record());
    return nodes.filter((n) => !partition || n.partition === partition).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  private async imagesOnNode(): Promise<string[]> {
    if (Date.now() - this.cachedImages.at > IMAGES_MAX_AGE_MS) {
      this.cachedImages = { at: Date.now(), digests: await this.ctx.deps.backend.cachedImages().catch(() => this.cachedImages.digests) };
    }
    return this.cachedImages.digests;
  }
}
