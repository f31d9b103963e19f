// What the OCCI use cases share: the Lapis clients (each call with the OCCI client's own
// token), the gateway's store of what only OCCI knows, the log, the templates kept a short while
// and the entity views. The Gateway (gateway.ts) builds it; each use case is a function of it.
import type { Logger } from '@lapis/platform';
import type { Credentials, LapisClients } from '../adapters/lapis';
import type { OcciStore } from '../adapters/store';
import type { Category } from '../domain/model';
import { userMixinCategory } from '../domain/user-mixins';
import type { EntityViews } from './entity-views';
import type { TemplateCache } from './templates';

export interface GatewayContext {
  readonly lapis: LapisClients;
  /** User mixins, and the title, summary and user mixins of entities: what only OCCI knows. */
  readonly store: OcciStore;
  readonly log: Logger;
  readonly templates: TemplateCache;
  /** What the gateway knows of each project's entities, kept current by the events. */
  readonly views: EntityViews;
}

/** The project's user mixins as categories. */
export function userMixinCategories(ctx: GatewayContext, c: Credentials): Category[] {
  return ctx.store.userMixins(c.project).map(userMixinCategory);
}
