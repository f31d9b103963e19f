// What the gateway knows of each project's entities, one view per project and kind: collections
// and entity GETs are served from it instead of asking the services each time. It is kept
// current by the services' events (adapters/entity-events.ts) and by this gateway's own
// changes: an entity they name is marked changed, and read again (alone, or with one listing)
// before the view is served again, so a read after an announced change shows it. What no event
// announces (a claim queued through another client or replica, a queued claim's pending reason)
// shows within maxAgeMs (LAPIS_OCCI_VIEW_MAX_AGE_MS): a view is listed again in the background
// once half that old, and never served older. A restarted gateway starts with no view at all.
import { isDeepStrictEqual } from 'node:util';
import type { Entity } from '../domain/entity';
import type { EntityKind } from '../domain/model';

/** More changed entities than this are read with one listing rather than one by one. */
const ONE_BY_ONE_MAX = 32;
/** A view larger than this is not listed again for entity reads alone: each entity read is cheaper then. */
const BULK_REFRESH_MAX = 10_000;
/** Views kept (project x kind); the least recently made goes first. */
const VIEWS_MAX = 4_000;
/**
 * How long an entity deleted through this gateway stays out of its view while Lapis still
 * tears it down (a placed claim's instance is removed after the DELETE is answered).
 */
const DELETED_HIDDEN_MS = 120_000;

/** How a view reads its kind: all of the project's entities, and (where Lapis can) one of them, undefined once gone. */
export interface ViewLoaders {
  all: () => Promise<Entity[]>;
  one?: (id: string) => Promise<Entity | undefined>;
}

interface Entry {
  entity: Entity;
  /** When Lapis last said so. */
  at: number;
}

class View {
  entries = new Map<string, Entry>();
  /** Entities changed since they were read, with the change's sequence number. */
  readonly changed = new Map<string, number>();
  /** When the last complete listing started (0: never), and the last change it covers. */
  listedAt = 0;
  listedMark = -1;
  /** The last change to the whole collection (one that names no entity). */
  wholeChanged = 0;
  listing?: { mark: number; done: Promise<void> };
  readonly reading = new Map<string, { mark: number; done: Promise<void> }>();
  /** The entities in order, the same array until one of them changes. */
  snapshot?: Entity[];
  /** What the caller derived from the snapshot (the entities with what OCCI keeps laid over), by key. */
  derived?: { snapshot: Entity[]; key: string; value: Entity[] };
  /** Entities deleted through this gateway, and when: kept out of the view while they go. */
  readonly deleted = new Map<string, number>();

  hidden(id: string): boolean {
    const at = this.deleted.get(id);
    if (at === undefined) return false;
    if (Date.now() - at < DELETED_HIDDEN_MS) return true;
    this.deleted.delete(id);
    return false;
  }
}

export class EntityViews {
  private readonly views = new Map<string, View>();
  /** Counts changes, so a read that started before a change does not clear it. */
  private sequence = 0;

  constructor(
    private readonly maxAgeMs: number,
    private readonly onBackgroundError: (error: unknown, project: string, kind: EntityKind) => void = () => {},
  ) {}

  /** The project's entities of `kind`, current as described above. */
  async collection(project: string, kind: EntityKind, loaders: ViewLoaders): Promise<Entity[]> {
    const view = this.viewOf(project, kind);
    // Every change announced before this request is in what it is served.
    const needed = this.sequence;
    const age = Date.now() - view.listedAt;
    const oneByOne = loaders.one !== undefined && view.changed.size <= ONE_BY_ONE_MAX;
    if (!view.listedAt || age >= this.maxAgeMs || view.wholeChanged > view.listedMark || (view.changed.size && !oneByOne)) {
      await this.list(view, loaders.all, needed);
    } else this.listInBackground(view, project, kind, loaders.all);
    // A listing that started before a change does not cover it: those entities are read again.
    const stale = [...view.changed].filter(([, at]) => at <= needed).map(([id]) => id);
    if (stale.length && loaders.one) await Promise.all(stale.map((id) => this.readOne(view, id, loaders.one!, needed)));
    else if (stale.length) await this.list(view, loaders.all, needed);
    view.snapshot ??= [...view.entries.values()].map((e) => e.entity);
    return view.snapshot;
  }

  /**
   * Lists the kind again in the background when the view is half its age old (or was never
   * listed): one listing keeps every entity of it recent, where reading each alone would ask
   * Lapis once per entity. Not for a view of more than BULK_REFRESH_MAX entities.
   */
  refresh(project: string, kind: EntityKind, all: () => Promise<Entity[]>): void {
    const view = this.viewOf(project, kind);
    if (view.entries.size <= BULK_REFRESH_MAX) this.listInBackground(view, project, kind, all);
  }

  private listInBackground(view: View, project: string, kind: EntityKind, all: () => Promise<Entity[]>): void {
    if (view.listing || Date.now() - view.listedAt <= this.maxAgeMs / 2) return;
    this.list(view, all, this.sequence).catch((error: unknown) => this.onBackgroundError(error, project, kind));
  }

  /**
   * `derive(snapshot)`, kept while the snapshot and `key` (what else it depends on) stay the
   * same, so an unchanged collection is the same array: the HTTP layer keeps its renderings by it.
   */
  derived(project: string, kind: EntityKind, snapshot: Entity[], key: string, derive: (entities: Entity[]) => Entity[]): Entity[] {
    const view = this.viewOf(project, kind);
    const kept = view.derived;
    if (kept && kept.snapshot === snapshot && kept.key === key) return kept.value;
    const value = derive(snapshot);
    if (snapshot === view.snapshot) view.derived = { snapshot, key, value };
    return value;
  }

  /** The entity, if the view has it unchanged and recent; otherwise the caller reads it (`mark` first, then `remember`). */
  get(project: string, kind: EntityKind, id: string): Entity | undefined {
    const view = this.views.get(viewKey(project, kind));
    const entry = view?.entries.get(id);
    if (!entry || view!.changed.has(id) || Date.now() - entry.at >= this.maxAgeMs) return undefined;
    return entry.entity;
  }

  /** Taken before reading an entity from Lapis, given back to `remember`. */
  mark(): number {
    return this.sequence;
  }

  /** What Lapis said of the entity (undefined: it is gone), unless a change came after `mark`. */
  remember(project: string, kind: EntityKind, id: string, entity: Entity | undefined, mark = this.sequence): void {
    note(this.viewOf(project, kind), id, entity, mark);
  }

  /** The entity was deleted through this gateway: out of the view at once, though Lapis may still be removing it. */
  deleted(project: string, kind: EntityKind, id: string): void {
    this.sequence += 1;
    const view = this.viewOf(project, kind);
    view.deleted.set(id, Date.now());
    if (view.entries.delete(id)) view.snapshot = undefined;
    view.changed.delete(id);
  }

  /** An event or this gateway changed the entity (without `id`: the kind's whole collection). */
  changed(project: string, kind: EntityKind, id?: string): void {
    this.sequence += 1;
    const view = this.views.get(viewKey(project, kind));
    if (!view) return;
    if (id === undefined) view.wholeChanged = this.sequence;
    else view.changed.set(id, this.sequence);
  }

  private viewOf(project: string, kind: EntityKind): View {
    const key = viewKey(project, kind);
    let view = this.views.get(key);
    if (!view) {
      if (this.views.size >= VIEWS_MAX) this.views.delete(this.views.keys().next().value!);
      view = new View();
      this.views.set(key, view);
    }
    return view;
  }

  /** Lists the kind again, one listing at a time per view, covering every change up to `needed`. */
  private list(view: View, all: () => Promise<Entity[]>, needed: number): Promise<void> {
    if (view.listing && view.listing.mark >= needed) return view.listing.done;
    if (view.listing) return view.listing.done.catch(() => {}).then(() => this.list(view, all, needed));
    const mark = this.sequence;
    const startedAt = Date.now();
    const done = (async () => {
      try {
        const listed = await all();
        const next = new Map<string, Entry>();
        for (const entity of listed) {
          if (view.hidden(entity.id)) continue;
          const kept = view.entries.get(entity.id);
          next.set(entity.id, { entity: kept && isDeepStrictEqual(kept.entity, entity) ? kept.entity : entity, at: startedAt });
        }
        // What this gateway learned while the listing ran is newer than the listing.
        for (const [id, entry] of view.entries) if (entry.at > startedAt) next.set(id, entry);
        const same = next.size === view.entries.size && [...next].every(([id, e]) => view.entries.get(id)?.entity === e.entity);
        view.entries = next;
        if (!same) view.snapshot = undefined;
        for (const [id, at] of view.changed) if (at <= mark) view.changed.delete(id);
        view.listedAt = startedAt;
        view.listedMark = mark;
      } finally {
        view.listing = undefined;
      }
    })();
    view.listing = { mark, done };
    return done;
  }

  /** Reads one entity again (one read at a time per entity), covering every change up to `needed`. */
  private readOne(view: View, id: string, one: (id: string) => Promise<Entity | undefined>, needed: number): Promise<void> {
    const reading = view.reading.get(id);
    if (reading && reading.mark >= needed) return reading.done;
    const mark = this.sequence;
    const done = one(id)
      .then((entity) => note(view, id, entity, mark))
      .finally(() => {
        if (view.reading.get(id)?.done === done) view.reading.delete(id);
      });
    view.reading.set(id, { mark, done });
    return done;
  }
}

/** What Lapis said of one entity (undefined: gone), read after `mark`; a later change keeps it marked. */
function note(view: View, id: string, found: Entity | undefined, mark: number): void {
  if ((view.changed.get(id) ?? 0) > mark) return;
  const entity = found && view.hidden(id) ? undefined : found;
  view.changed.delete(id);
  const kept = view.entries.get(id);
  if (entity && kept && isDeepStrictEqual(kept.entity, entity)) {
    kept.at = Date.now();
    return;
  }
  if (entity) view.entries.set(id, { entity, at: Date.now() });
  else if (!view.entries.delete(id)) return;
  view.snapshot = undefined;
}

const viewKey = (project: string, kind: EntityKind) => `${kind}\u0000${project}`;
