import { strict as assert } from 'node:assert';
import { listAll } from '../../src/list-all';
import { paginate } from '../../src/paging';

describe('listAll', () => {
  it('asks for page after page, each with the token the last one gave, and gives every item in order', async () => {
    const names = Array.from({ length: 25 }, (_, i) => `name-${String(i).padStart(2, '0')}`);
    const asked: string[] = [];
    const all = await listAll('names', async (pageToken) => {
      asked.push(pageToken);
      const page = paginate(names, (n) => n, { pageSize: 10, pageToken });
      return { names: page.items, nextPageToken: page.nextPageToken };
    });
    assert.deepEqual(all, names);
    assert.equal(asked.length, 3);
    assert.equal(asked[0], '');
  });

  it('asks once for a list that fits one page, or is empty', async () => {
    let asked = 0;
    assert.deepEqual(await listAll('items', async () => (asked++, { items: [] as number[], nextPageToken: '' })), []);
    assert.equal(asked, 1);
  });
});
