// Paging for every List call (AIP-158): page_size 0 means the default, a larger one than the
// maximum is cut to it, and page_token is an opaque cursor (the last key of the previous page),
// so a page stays right when items are added or removed between calls.
import { invalidArgument } from './errors';

export interface PageRequest {
  pageSize: number;
  pageToken: string;
}

export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1_000;

/** The items after the request's cursor, at most one page of them; `items` sorted by key. */
export function paginate<T>(items: readonly T[], keyOf: (item: T) => string, request: PageRequest): Page<T> {
  if (request.pageSize < 0) throw invalidArgument([{ field: 'page_size', description: 'must not be negative' }]);
  const size = Math.min(request.pageSize || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
  let start = 0;
  if (request.pageToken) {
    const after = decodeToken(request.pageToken);
    start = items.findIndex((item) => keyOf(item) > after);
    if (start < 0) start = items.length;
  }
  const page = items.slice(start, start + size);
  const last = page[page.length - 1];
  const more = start + size < items.length;
  return { items: page, nextPageToken: more && last !== undefined ? encodeToken(keyOf(last)) : '' };
}

const PREFIX = 'after:';

function encodeToken(key: string): string {
  return Buffer.from(PREFIX + key).toString('base64url');
}

function decodeToken(token: string): string {
  const text = Buffer.from(token, 'base64url').toString();
  if (!text.startsWith(PREFIX)) {
    throw invalidArgument([{ field: 'page_token', description: 'is not a token this service gave out' }]);
  }
  return text.slice(PREFIX.length);
}
