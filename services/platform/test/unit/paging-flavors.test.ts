import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { DeviceKind } from '@lapis/proto/lapis/common/v1/common';
import type { LapisError } from '../../src/errors';
import { parseFlavors, parseQuantity } from '../../src/flavors';
import { loadFlavors } from '../../src/flavors-file';
import { MAX_PAGE_SIZE, paginate } from '../../src/paging';

describe('paging', () => {
  const items = Array.from({ length: 250 }, (_, i) => `item-${String(i).padStart(3, '0')}`);
  const key = (s: string) => s;

  it('walks a list page by page with opaque tokens, the last page without one', () => {
    const seen: string[] = [];
    let pageToken = '';
    do {
      const page = paginate(items, key, { pageSize: 100, pageToken });
      seen.push(...page.items);
      pageToken = page.nextPageToken;
    } while (pageToken);
    assert.deepEqual(seen, items);
  });

  it('stays right when an item before the cursor is removed between pages', () => {
    const first = paginate(items, key, { pageSize: 10, pageToken: '' });
    const second = paginate(items.slice(1), key, { pageSize: 10, pageToken: first.nextPageToken });
    assert.equal(second.items[0], 'item-010');
  });

  it('uses the default size for 0, cuts big sizes, refuses negative sizes and foreign tokens', () => {
    assert.equal(paginate(items, key, { pageSize: 0, pageToken: '' }).items.length, 100);
    assert.equal(paginate(Array(5000).fill('x'), key, { pageSize: 10_000, pageToken: '' }).items.length, MAX_PAGE_SIZE);
    assert.throws(
      () => paginate(items, key, { pageSize: -1, pageToken: '' }),
      (e: LapisError) => /page_size/.test(e.message),
    );
    assert.throws(
      () => paginate(items, key, { pageSize: 1, pageToken: 'garbage' }),
      (e: LapisError) => /page_token/.test(e.message),
    );
  });
});

describe('flavors', () => {
  it('parses quantities with binary and decimal units', () => {
    assert.equal(parseQuantity('2Gi'), 2 * 2 ** 30);
    assert.equal(parseQuantity('512Mi'), 512 * 2 ** 20);
    assert.equal(parseQuantity('1.5G'), 1.5e9);
    assert.equal(parseQuantity(3), 3);
    assert.throws(() => parseQuantity('lots'), /not a quantity/);
  });

  it('loads the repository flavors file', () => {
    const flavors = loadFlavors(join(__dirname, '../../../../../config/flavors.yaml'));
    const gpu = flavors.find((f) => f.name === 'g1.small');
    assert.equal(gpu?.resources?.gpus, 1);
    assert.equal(gpu?.devices[0]?.kind, DeviceKind.GPU);
    assert.equal(flavors.find((f) => f.name === 'm1.tiny')?.resources?.cpuMillis, 500);
  });

  it('reads the capabilities and read-only root only a flavor grants, refusing names that are not capabilities', () => {
    const [net, plain] = parseFlavors(
      {
        flavors: [
          { name: 'net', cpus: 1, memory: '1Gi', capabilities: ['NET_RAW', 'cap_sys_ptrace', 'NET_RAW'], read_only_root: true },
          { name: 'plain', cpus: 1, memory: '1Gi' },
        ],
      },
      'f.yaml',
    );
    assert.deepEqual(net?.capabilities, ['NET_RAW', 'SYS_PTRACE']);
    assert.equal(net?.readOnlyRootFilesystem, true);
    assert.deepEqual(plain?.capabilities, []);
    assert.equal(plain?.readOnlyRootFilesystem, false);
    for (const bad of ['ALL', 'NET_RAWR', '']) {
      assert.throws(
        () => parseFlavors({ flavors: [{ name: 'x', cpus: 1, memory: 1, capabilities: [bad] }] }, 'f.yaml'),
        /f\.yaml: flavors\[0\]\.capabilities: \[0\]: .* is not a Linux capability/,
        bad,
      );
    }
    assert.throws(
      () => parseFlavors({ flavors: [{ name: 'x', cpus: 1, memory: 1, capabilities: 'NET_RAW' }] }, 'f.yaml'),
      /capabilities: expected a list/,
    );
    assert.throws(
      () => parseFlavors({ flavors: [{ name: 'x', cpus: 1, memory: 1, read_only_root: 'yes' }] }, 'f.yaml'),
      /read_only_root: true or false/,
    );
  });

  it('names the entry and field of a bad flavor', () => {
    assert.throws(
      () =>
        parseFlavors(
          {
            flavors: [
              { name: 'ok', cpus: 1, memory: '1Gi' },
              { name: 'Bad Name', cpus: 1, memory: 1 },
            ],
          },
          'f.yaml',
        ),
      /f\.yaml: flavors\[1\]\.name/,
    );
    assert.throws(() => parseFlavors({ flavors: [{ name: 'a', cpus: 1 }] }, 'f.yaml'), /flavors\[0\]\.memory: required/);
    assert.throws(() => parseFlavors({ flavors: [{ name: 'a', cpus: 0, memory: 1 }] }, 'f.yaml'), /cpus: must be more than 0/);
    assert.throws(
      () =>
        parseFlavors(
          {
            flavors: [
              { name: 'a', cpus: 1, memory: 1 },
              { name: 'a', cpus: 1, memory: 1 },
            ],
          },
          'f.yaml',
        ),
      /defined twice/,
    );
  });
});
