// Actions (POST ?action=): start (a suspended compute is resumed), stop (method=poweroff: no
// grace period), restart (method=cold) and suspend (the container frozen) on a compute with an
// instance, or on every entity of a collection that offers the action now (a queued compute
// does not).
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import type { Credentials } from '../adapters/lapis';
import { OcciError, type OcciRequest } from '../domain/entity';
import { splitCategoryId } from '../domain/json';
import { ACTIONS, categoryId, KINDS, type Category, type EntityKind } from '../domain/model';
import { liveInstance } from './computes';
import type { GatewayContext } from './context';
import { hideOtherProjects } from './hide-other-projects';
import { list } from './read-entities';

/** POST /kind/?action=: the action on every entity of the collection that offers it now. */
export async function invokeAll(ctx: GatewayContext, c: Credentials, kind: EntityKind, term: string, request: OcciRequest): Promise<void> {
  actionOf(kind, term, request);
  for (const entity of await list(ctx, c, kind)) {
    if (entity.actions.some((a) => a.term === term)) await invoke(ctx, c, kind, entity.id, term, request);
  }
}

/** POST ?action=: `term` is the action from the query string, checked against the body. */
export async function invoke(
  ctx: GatewayContext,
  c: Credentials,
  kind: EntityKind,
  id: string,
  term: string,
  request: OcciRequest,
): Promise<void> {
  const action = actionOf(kind, term, request);
  const method = request.attributes.method;
  ctx.views.changed(c.project, kind, id);
  const instance = await liveInstance(ctx, c, id, `${term} can be invoked`);
  if (action === ACTIONS.suspend && method !== undefined && method !== 'suspend') {
    throw new OcciError(400, `suspend: method ${JSON.stringify(method)} is not offered; only "suspend" (frozen in memory)`);
  }
  try {
    await hideOtherProjects(kind, id, async () => {
      if (action === ACTIONS.start && instance.state === InstanceState.SUSPENDED) await ctx.lapis.resumeInstance(c, id);
      else if (action === ACTIONS.start) await ctx.lapis.startInstance(c, id);
      else if (action === ACTIONS.suspend) await ctx.lapis.suspendInstance(c, id);
      else if (action === ACTIONS.stop) await ctx.lapis.stopInstance(c, id, method === 'poweroff' ? 0 : undefined);
      else if (action === ACTIONS.restart) await ctx.lapis.rebootInstance(c, id, method === 'cold' ? 0 : undefined);
    });
  } finally {
    // A read made while the action ran may have kept the state before it.
    ctx.views.changed(c.project, kind, id);
  }
}

/** The action ?action= names, if the kind offers it and the body (if it names one) agrees. */
function actionOf(kind: EntityKind, term: string, request: OcciRequest): Category {
  const action = Object.values(ACTIONS).find((a) => a.term === term && (KINDS[kind] as Category).actions?.includes(categoryId(a)));
  if (!action) throw new OcciError(400, `${kind} has no action "${term}"`);
  const named = request.action ?? request.categories.map((x) => x.scheme + x.term)[0];
  if (named && named !== categoryId(action)) {
    const { term: bodyTerm } = splitCategoryId(named, 'action');
    throw new OcciError(400, `the body invokes "${bodyTerm}" but the query string says ?action=${term}`);
  }
  return action;
}
