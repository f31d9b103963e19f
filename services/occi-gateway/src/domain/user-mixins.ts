// User mixins: tags a project defines for itself (GFD.221 4.3), under
// http://schemas.lapis.dev/occi/user/, applying to computes and storage.
import { OcciError, type OcciRequest } from './entity';
import { isMixinLocation, normalizeLocation } from './locations';
import { categoryId, KINDS, USER_MIXIN_SCHEME_PREFIX, type Category } from './model';

/** A user mixin as the gateway keeps it. */
export interface UserMixin {
  scheme: string;
  term: string;
  title: string;
  location: string;
  depends: string[];
}

export function userMixinCategory(m: UserMixin): Category {
  return { ...m, class: 'mixin', attributes: [], applies: [categoryId(KINDS.compute), categoryId(KINDS.storage)] };
}

/** Checks the mixins a request defines (POST /-/): their class, scheme, term and location. */
export function checkMixinDefinitions(request: OcciRequest): void {
  if (request.categories.length === 0) throw new OcciError(400, 'no mixin given');
  for (const m of request.categories) {
    if (m.class && m.class !== 'mixin') throw new OcciError(400, `${m.term}: only mixins can be defined, not a ${m.class}`);
    if (!m.scheme.startsWith(USER_MIXIN_SCHEME_PREFIX))
      throw new OcciError(400, `${m.term}: a user mixin's scheme must start with ${USER_MIXIN_SCHEME_PREFIX}`);
    if (!/^[a-z0-9_.-]+$/i.test(m.term)) throw new OcciError(400, `mixin term ${JSON.stringify(m.term)} is not valid`);
    if (m.location !== undefined && !isMixinLocation(m.location)) {
      throw new OcciError(
        400,
        `${m.term}: location ${JSON.stringify(m.location.slice(0, 200))} must be a path like /mixins/${m.term}/, outside the kinds' collections and /-/`,
      );
    }
  }
}

/** The project's user mixins once the request's are defined (a mixin defined again is replaced). */
export function withDefinedMixins(current: UserMixin[], request: OcciRequest): UserMixin[] {
  const mixins = current.filter((x) => !request.categories.some((m) => m.scheme + m.term === x.scheme + x.term));
  for (const m of request.categories) {
    mixins.push({
      scheme: m.scheme,
      term: m.term,
      title: m.title ?? m.term,
      location: normalizeLocation(m.location ?? `/mixins/${m.term}/`),
      depends: m.rel ? m.rel.split(/\s+/) : [],
    });
  }
  return mixins;
}
