// The query interface (/-/): every category this server knows for the project (kinds, actions,
// mixins, os_tpl = trusted images, resource_tpl = flavors, its user mixins), and user mixins
// defined (POST/PUT) and removed (DELETE).
import type { Credentials } from '../adapters/lapis';
import { OcciError, type OcciRequest } from '../domain/entity';
import { STATIC_CATEGORIES, type Category } from '../domain/model';
import { checkMixinDefinitions, userMixinCategory, withDefinedMixins } from '../domain/user-mixins';
import type { GatewayContext } from './context';

export async function categories(ctx: GatewayContext, c: Credentials): Promise<Category[]> {
  const templates = await ctx.templates.templatesFor(c);
  const user = ctx.store.userMixins(c.project);
  return [...STATIC_CATEGORIES, ...templates.images, ...templates.flavors, ...user.map(userMixinCategory)];
}

/** POST /-/: user mixins, scheme under http://schemas.lapis.dev/occi/user/. */
export async function addMixins(ctx: GatewayContext, c: Credentials, request: OcciRequest): Promise<void> {
  checkMixinDefinitions(request);
  await ctx.store.changeUserMixins(c.project, (current) => withDefinedMixins(current, request));
}

/** DELETE /-/: every mixin named must be defined. */
export async function removeMixins(ctx: GatewayContext, c: Credentials, request: OcciRequest): Promise<void> {
  if (request.categories.length === 0) throw new OcciError(400, 'no mixin given');
  const current = ctx.store.userMixins(c.project);
  for (const m of request.categories) {
    if (!current.some((x) => x.scheme === m.scheme && x.term === m.term))
      throw new OcciError(404, `mixin ${m.scheme}${m.term} is not defined`);
  }
  await ctx.store.changeUserMixins(c.project, (mixins) =>
    mixins.filter((x) => !request.categories.some((m) => m.scheme === x.scheme && m.term === x.term)),
  );
}
