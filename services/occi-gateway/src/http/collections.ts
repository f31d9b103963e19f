// GET on a collection: filtered (Category, X-OCCI-Attribute), paged, rendered. The application
// gives the same array for a collection until it changes (application/entity-views.ts), so an
// answer made for it is kept by that array and sent again for the same request; a changed
// collection is a new array, and its answers are made afresh.
import type { Entity } from '../domain/entity';
import { collectionAnswer, sendAnswer, type Answer } from './render';
import { attributeFilter, categoryFilter, filterEntities, header, page, type Exchange } from './request';

/** Kinds of request kept per collection (rendering, filter, page): beyond, the kept ones are dropped. */
const ANSWERS_PER_COLLECTION = 64;

const answers = new WeakMap<Entity[], Map<string, Answer>>();

export function sendEntityCollection(x: Exchange, entities: Entity[], body: string): void {
  // Everything the answer depends on besides the collection.
  const key = JSON.stringify([
    header(x.req, 'accept'),
    x.base,
    x.url.pathname,
    x.url.search,
    header(x.req, 'category'),
    header(x.req, 'x-occi-attribute'),
    header(x.req, 'content-type'),
    body,
  ]);
  let kept = answers.get(entities);
  let answer = kept?.get(key);
  if (!answer) {
    const paged = page(x, filterEntities(entities, categoryFilter(x, body), attributeFilter(x)));
    answer = collectionAnswer(header(x.req, 'accept'), x.base, paged.entities, undefined, paged.next);
    if (!kept) answers.set(entities, (kept = new Map()));
    if (kept.size >= ANSWERS_PER_COLLECTION) kept.clear();
    kept.set(key, answer);
  }
  sendAnswer(x, answer);
}
