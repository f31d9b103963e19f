// The client's side of paging (paging.ts is the server's): every item of a List call, asked
// for page after page until one comes without a next page token.

/** Every item in the `field` list of the pages `page(pageToken)` answers, in order. */
export async function listAll<K extends string, T>(
  field: K,
  page: (pageToken: string) => Promise<Record<K, T[]> & { nextPageToken: string }>,
): Promise<T[]> {
  const items: T[] = [];
  let pageToken = '';
  do {
    const response = await page(pageToken);
    items.push(...response[field]);
    pageToken = response.nextPageToken;
  } while (pageToken);
  return items;
}
