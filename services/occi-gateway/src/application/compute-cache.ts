// Computes as last read, per id. A compute is read far more often than it changes: its entity
// is kept COMPUTE_TTL_MS, and dropped at once when an event says its claim or instance changed
// (adapters/compute-events.ts), or when this gateway changes it. What no event announces (a
// queued claim's pending reason) is at most that old.
import type { Entity } from '../domain/entity';

const COMPUTE_TTL_MS = 5_000;
const COMPUTE_CACHE_MAX = 20_000;

export class ComputeCache {
  private readonly computes = new Map<string, { project: string; entity: Entity; until: number }>();

  /** The kept entity, for the project that owns it only (anyone else asks the scheduler, which decides). */
  get(id: string, project: string): Entity | undefined {
    const hit = this.computes.get(id);
    return hit && hit.until > Date.now() && hit.project === project ? hit.entity : undefined;
  }

  remember(project: string, entity: Entity): void {
    if (this.computes.size >= COMPUTE_CACHE_MAX) this.computes.delete(this.computes.keys().next().value!);
    this.computes.set(entity.id, { project, entity, until: Date.now() + COMPUTE_TTL_MS });
  }

  /** An event (or this gateway) changed the compute: the next read asks Lapis again. */
  invalidate(id: string): void {
    this.computes.delete(id);
  }
}
