// GET on a collection: filtered (Category, X-OCCI-Attribute), paged, rendered. The application
// gives the same array for a collection until it changes (application/entity-views.ts), so an
// answer made for it is kept by that array and sent again for the same request; a changed
// collection is a new array, and its answers are made afresh. A large body goes gzipped to a
// client that takes it (a thousand computes in JSON are most of a megabyte, a twentieth of it
// compressed), compressed once per kept answer.
import { gzipSync } from 'node:zlib';
import type { Entity } from '../domain/entity';
import { acceptsGzip } from '../domain/negotiate';
import { collectionAnswer, sendAnswer, type Answer } from './render';
import { attributeFilter, categoryFilter, filterEntities, header, page, type Exchange } from './request';

/** Kinds of request kept per collection (rendering, filter, page): beyond, the kept ones are dropped. */
const ANSWERS_PER_COLLECTION = 64;

/** Bodies from this size go gzipped to a client that takes it. */
const GZIP_FROM = 8 * 1024;

interface Kept {
  answer: Answer;
  gzipped?: Buffer;
}

const answers = new WeakMap<Entity[], Map<string, Kept>>();

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
  let byKey = answers.get(entities);
  let kept = byKey?.get(key);
  if (!kept) {
    const paged = page(x, filterEntities(entities, categoryFilter(x, body), attributeFilter(x)));
    kept = { answer: collectionAnswer(header(x.req, 'accept'), x.base, paged.entities, undefined, paged.next) };
    if (!byKey) answers.set(entities, (byKey = new Map()));
    if (byKey.size >= ANSWERS_PER_COLLECTION) byKey.clear();
    byKey.set(key, kept);
  }
  const { answer } = kept;
  if (answer.body.length < GZIP_FROM) return sendAnswer(x, answer);
  if (!acceptsGzip(header(x.req, 'accept-encoding')))
    return sendAnswer(x, { ...answer, headers: { ...answer.headers, Vary: 'Accept-Encoding' } });
  kept.gzipped ??= gzipSync(answer.body);
  sendAnswer(x, { headers: { ...answer.headers, 'Content-Encoding': 'gzip', Vary: 'Accept-Encoding' }, body: kept.gzipped });
}
