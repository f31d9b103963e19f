// What each OCCI request does in Lapis, what the HTTP layer (http/) and the wiring use:
// templates from the catalogue and the flavors, computes as scheduler claims (joined with their
// runtime instances), storage as runtime volumes, storage links as attachments made while the
// compute runs; what only OCCI knows (titles, summaries, user mixins) in the gateway's own
// store. Renderings are not its business. Each use case is its own file; this class holds the
// shared context (context.ts).
import type { Logger } from '@lapis/platform';
import type { Credentials, LapisClients } from '../adapters/lapis';
import type { OcciStore } from '../adapters/store';
import type { Entity, OcciRequest } from '../domain/entity';
import type { Category, EntityKind } from '../domain/model';
import { invoke, invokeAll } from './actions';
import type { GatewayContext } from './context';
import { create } from './create-entity';
import { EntityViews } from './entity-views';
import { deleteEntity } from './delete-entity';
import { mixinAt, mixinMembers, updateMixinMembers } from './mixin-collections';
import { addMixins, categories, removeMixins } from './query-interface';
import { get, list } from './read-entities';
import { TemplateCache } from './templates';
import { update } from './update-entity';

export class Gateway {
  private readonly ctx: GatewayContext;

  /** `viewMaxAgeMs`: the oldest a view is served (entity-views.ts). */
  constructor(lapis: LapisClients, store: OcciStore, log: Logger, viewMaxAgeMs: number) {
    const views = new EntityViews(viewMaxAgeMs, (error, project, kind) =>
      log.warn({ err: error, project, kind }, 'could not list the collection again'),
    );
    this.ctx = { lapis, store, log, templates: new TemplateCache(lapis), views };
  }

  // ---- the query interface (query-interface.ts) ----
  categories(c: Credentials): Promise<Category[]> {
    return categories(this.ctx, c);
  }
  addMixins(c: Credentials, request: OcciRequest): Promise<void> {
    return addMixins(this.ctx, c, request);
  }
  removeMixins(c: Credentials, request: OcciRequest): Promise<void> {
    return removeMixins(this.ctx, c, request);
  }

  // ---- entities (read-entities.ts, create-entity.ts, update-entity.ts, delete-entity.ts) ----
  list(c: Credentials, kind: EntityKind): Promise<Entity[]> {
    return list(this.ctx, c, kind);
  }
  get(c: Credentials, kind: EntityKind, id: string): Promise<Entity> {
    return get(this.ctx, c, kind, id);
  }
  create(c: Credentials, kind: EntityKind, request: OcciRequest, requestId?: string): Promise<Entity> {
    return create(this.ctx, c, kind, request, requestId);
  }
  update(c: Credentials, kind: EntityKind, id: string, request: OcciRequest, mode: 'partial' | 'full'): Promise<Entity> {
    return update(this.ctx, c, kind, id, request, mode);
  }
  delete(c: Credentials, kind: EntityKind, id: string): Promise<void> {
    return deleteEntity(this.ctx, c, kind, id);
  }

  // ---- actions (actions.ts) ----
  invokeAll(c: Credentials, kind: EntityKind, term: string, request: OcciRequest): Promise<void> {
    return invokeAll(this.ctx, c, kind, term, request);
  }
  invoke(c: Credentials, kind: EntityKind, id: string, term: string, request: OcciRequest): Promise<void> {
    return invoke(this.ctx, c, kind, id, term, request);
  }

  // ---- user mixins' collections (mixin-collections.ts) ----
  async mixinAt(c: Credentials, path: string): Promise<Category | undefined> {
    return mixinAt(this.ctx, c, path);
  }
  mixinMembers(c: Credentials, mixin: Category): Promise<Entity[]> {
    return mixinMembers(this.ctx, c, mixin);
  }
  updateMixinMembers(c: Credentials, mixin: Category, locations: string[], mode: 'add' | 'remove' | 'replace'): Promise<void> {
    return updateMixinMembers(this.ctx, c, mixin, locations, mode);
  }

  /** An event changed the entity (without `id`: maybe any of the kind): the next read asks Lapis again. */
  changed(project: string, kind: EntityKind, id?: string): void {
    this.ctx.views.changed(project, kind, id);
  }
}
