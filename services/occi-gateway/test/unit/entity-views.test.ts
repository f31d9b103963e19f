// The gateway's views (application/entity-views.ts) with loaders written here in place of Lapis:
// what a read after a change is served, and that a listing which started before a change does
// not hide it.
import { strict as assert } from 'node:assert';
import { EntityViews } from '../../src/application/entity-views';
import type { Entity } from '../../src/domain/entity';

const compute = (id: string, state = 'active'): Entity => ({
  kind: 'compute',
  id,
  location: `/compute/${id}`,
  mixins: [],
  attributes: { 'occi.core.id': id, 'occi.compute.state': state },
  actions: [],
  links: [],
});

/** What "Lapis" has, and how often it was asked. */
function lapis(initial: Entity[]) {
  const has = new Map(initial.map((e) => [e.id, e]));
  const asked = { all: 0, one: 0 };
  let gate: Promise<void> | undefined;
  return {
    has,
    asked,
    /** Holds listings until the returned function is called. */
    holdListings(): () => void {
      let release!: () => void;
      gate = new Promise((resolve) => (release = resolve));
      return () => {
        gate = undefined;
        release();
      };
    },
    loaders: {
      all: async () => {
        asked.all += 1;
        const snapshot = [...has.values()];
        await gate;
        return snapshot;
      },
      one: async (id: string) => {
        asked.one += 1;
        return has.get(id);
      },
    },
  };
}

const ids = (entities: Entity[]) => entities.map((e) => e.id);

describe('entity views', () => {
  it('lists once, then serves the same array until something changes', async () => {
    const views = new EntityViews(60_000);
    const source = lapis([compute('a'), compute('b')]);
    const first = await views.collection('p', 'compute', source.loaders);
    assert.deepEqual(ids(first), ['a', 'b']);
    assert.equal(await views.collection('p', 'compute', source.loaders), first);
    assert.deepEqual(source.asked, { all: 1, one: 0 });
    assert.deepEqual(views.get('p', 'compute', 'a'), compute('a'));
  });

  it('reads a changed entity again before serving: a new one, a changed one, a gone one', async () => {
    const views = new EntityViews(60_000);
    const source = lapis([compute('a'), compute('b')]);
    await views.collection('p', 'compute', source.loaders);
    source.has.set('c', compute('c'));
    source.has.set('a', compute('a', 'inactive'));
    source.has.delete('b');
    for (const id of ['a', 'b', 'c']) views.changed('p', 'compute', id);
    const after = await views.collection('p', 'compute', source.loaders);
    assert.deepEqual(ids(after), ['a', 'c']);
    assert.equal(after[0]!.attributes['occi.compute.state'], 'inactive');
    assert.deepEqual(source.asked, { all: 1, one: 3 });
    assert.equal(views.get('p', 'compute', 'b'), undefined);
  });

  it('keeps a change that came while a listing ran marked, and reads it again', async () => {
    const views = new EntityViews(60_000);
    const source = lapis([compute('a')]);
    const release = source.holdListings();
    const listing = views.collection('p', 'compute', source.loaders);
    await new Promise((resolve) => setImmediate(resolve));
    // The listing took its snapshot; then "a" stops and an event says so.
    source.has.set('a', compute('a', 'inactive'));
    views.changed('p', 'compute', 'a');
    release();
    await listing;
    const after = await views.collection('p', 'compute', source.loaders);
    assert.equal(after[0]!.attributes['occi.compute.state'], 'inactive');
  });

  it('lists again when a change names no entity, or when the view is older than its age', async () => {
    const views = new EntityViews(60_000);
    const source = lapis([compute('a')]);
    await views.collection('p', 'compute', source.loaders);
    source.has.set('n', compute('n'));
    views.changed('p', 'compute');
    assert.deepEqual(ids(await views.collection('p', 'compute', source.loaders)), ['a', 'n']);
    assert.equal(source.asked.all, 2);
    const young = new EntityViews(0);
    await young.collection('p', 'compute', source.loaders);
    await young.collection('p', 'compute', source.loaders);
    assert.equal(source.asked.all, 4, 'a view of age 0 is listed at every read');
  });

  it('keeps projects apart, and forgets nothing a remember after a later change would undo', async () => {
    const views = new EntityViews(60_000);
    const source = lapis([compute('a')]);
    await views.collection('p', 'compute', source.loaders);
    assert.equal(views.get('q', 'compute', 'a'), undefined);
    const mark = views.mark();
    views.changed('p', 'compute', 'a');
    // A read that started before the change does not clear it.
    views.remember('p', 'compute', 'a', compute('a'), mark);
    assert.equal(views.get('p', 'compute', 'a'), undefined);
    views.remember('p', 'compute', 'a', compute('a', 'inactive'));
    assert.equal(views.get('p', 'compute', 'a')?.attributes['occi.compute.state'], 'inactive');
  });
});
