// Template YAML read as the established TOSCA tools read it (PyYAML, YAML 1.1): values,
// positions of keys, and the warnings real templates need. Most templates take the fast
// path (js-yaml); the `yaml` library is the reference, and both must give the same values.
import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Diagnostics } from '../../src/domain/diagnostics';
import { loadWithLibrary, loadYaml } from '../../src/domain/yaml';
import { conformanceDir, indigoTypesFile } from '../helpers';

const sameAsLibrary = (text: string, name: string) =>
  assert.deepEqual(
    loadYaml(text, name, new Diagnostics(), false).value,
    loadWithLibrary(text, name, new Diagnostics(), false).value,
    `${name}: values differ`,
  );

describe('template YAML', () => {
  it("reads every conformance template and INDIGO's types exactly as the reference library does", () => {
    let count = 0;
    for (const c of readdirSync(conformanceDir)) {
      const file = join(conformanceDir, c, 'template.yaml');
      if (!existsSync(file) || c === 'error-yaml-syntax') continue;
      sameAsLibrary(readFileSync(file, 'utf8'), c);
      count++;
    }
    assert.ok(count > 20);
    sameAsLibrary(readFileSync(indigoTypesFile, 'utf8'), 'custom_types.yaml');
  });

  const snippets: Record<string, string> = {
    scalars:
      "a: 1\nb: -2\nc: 0x1F\nd: 017\ne: 1.5\nf: .5\ng: 1e3\nh: 1.0e+3\ni: ~\nj: null\nk: yes\nl: Off\nm: y\nn: \"q\\\"uote\\n\"\no: 'it''s'\np: 1.19.4\nq: 2024-01-31\nr: 10 GB\ns: .inf\nu: 1_000\nw: +3\n",
    flows: 'a: [ x: 1, y, "z": 2 ]\nb: { c: , d: [ ], e: {} }\nd: { url: "https://x.org/a:b", e: http://x.org }\n',
    blocks: 'a: |\n  line one\n  line two\n\nb: >\n  folded\n  text\nc: |-\n  stripped\ne: end\n',
    anchors: 'a: &x { b: 1 }\nc: *x\n',
    duplicates: 'a: 1\nb: 2\na: 3\n',
    words: 'description: turn it on\nflag: "yes"\nversion: 1.0\n',
    // No yes/no: these reach the fast reading, which must hand YAML 1.1-only numbers to the library.
    numbers11: 'a: 017\nb: 0o17\nc: 0b101\nd: 1:30\ne: 1_000\nf: 6e3\ng: +3\nh: -0.5\ni: .inf\nj: 0x1F\n',
    keys: '1: a\n1.5: b\ntrue: c\n~: d\n"q": e\nnested: { a: [ { b: [ 1, [ 2 ] ] } ] }\n',
    empty: '',
    merge: 'a: { x: 1 }\nb: { <<: { y: 2 }, z: 3 }\n',
    tagged: 'a: !!str 5\nb: 5\n',
    // Plain scalars the fast reading settles without the schema: numbers with a space, short words.
    spaced: 'a: 2 GB\nb: 2001-12-14 21:59:43.10 -5\nc: -1 h\nd: .5 s\ne: +1 m\nf: 1 2\ng: 1:30 x\n',
    words11: 'os: ab\nab: typ\nn: Null\nf: FALSE\nt: True\nw: yesno\nx: ONE\ny: of\n',
    booleans11: 'a: ON\nb: oN\nc: NO\nd: Yes\ne: OFF\nf: nO\n',
    others: 'a: /data\nb: ~\nc: $x\nd: _1\ne: =\nf: ~x\ng: (1)\nh: \\1\ni: ^2\nj: "@x"\n',
  };
  for (const [name, text] of Object.entries(snippets)) it(`snippet: ${name}`, () => sameAsLibrary(text, name));

  it('reads plain templates without the library, and hands it the YAML 1.1 and unusual ones', () => {
    const fast = (text: string) => {
      const loaded = loadYaml(text, 'f.yaml', new Diagnostics(), false);
      // The fast reading finds positions only when a diagnostic asks; the library has them at once.
      return loaded.ok && loaded.positions.size === 0;
    };
    assert.equal(fast(readFileSync(join(conformanceDir, 'docker-app-volume', 'template.yaml'), 'utf8')), true);
    assert.equal(fast('a: [ x: 1, y ]\nb: |\n  text\nc: "on"\nd: turn it on\n'), true);
    assert.equal(fast('a: yes\nb: [ Off ]\n'), true, 'YAML 1.1 booleans are read fast (and warned about with their own position)');
    for (const text of ['a: oN\n', 'a: 017\n', 'a: 1\na: 2\n', 'a: &x 1\nb: *x\n', 'a: !!str 1\n', '--- 1\n--- 2\n', 'a: [1, 2\n']) {
      assert.equal(fast(text), false, JSON.stringify(text));
    }
  });

  it('reads YAML 1.1 scalars the way PyYAML does', () => {
    const { value } = loadYaml('k: yes\nl: Off\nm: y\nn: 017\no: 1.19.4\np: ~\nq: 10 GB\n', 'f.yaml', new Diagnostics(), false);
    assert.deepEqual(value, { k: true, l: false, m: 'y', n: 15, o: '1.19.4', p: null, q: '10 GB' });
  });

  it('turns implicit pairs in flow sequences into one-entry maps', () => {
    const { value } = loadYaml('a: [ x: 1, y, "z": 2 ]\n', 'f.yaml', new Diagnostics(), false);
    assert.deepEqual(value, { a: [{ x: 1 }, 'y', { z: 2 }] });
  });

  it('knows where every key is, for diagnostics', () => {
    const diags = new Diagnostics();
    const loaded = loadWithLibrary('a:\n  b:\n    - c: 1\n', 'f.yaml', diags, false);
    // Offsets into the text: "a" at 0, "b" on line 2 after two spaces, "c" after "    - ".
    assert.deepEqual(
      [...loaded.positions].filter(([k]) => k),
      [
        ['a', 0],
        ['a.b', 5],
        ['a.b[0]', 14],
        ['a.b[0].c', 14],
      ],
    );
  });

  it("reads INDIGO's public custom types file", () => {
    const loaded = loadYaml(readFileSync(indigoTypesFile, 'utf8'), 'custom_types.yaml', new Diagnostics(), false);
    assert.ok(loaded.ok);
    assert.ok(Object.keys((loaded.value as { node_types: object }).node_types).length > 10);
  });

  it('warns about duplicate keys and YAML 1.1 booleans, with their line', () => {
    for (const text of ['a: 1\na: yes\n', 'x: &y 1\na: 1\na: yes\n']) {
      const diags = new Diagnostics();
      loadYaml(text, 'f.yaml', diags);
      assert.deepEqual(
        diags.list.map((d) => [d.code, d.line, d.column]).sort(),
        [
          ['DUPLICATE_KEY', text.split('\n').length - 1, 1],
          ['YAML11_BOOLEAN', text.split('\n').length - 1, 1],
        ].sort(),
      );
    }
  });

  it('warns about YAML 1.1 booleans read fast exactly as the library does (line, column, path)', () => {
    const texts = [
      'a: yes\n',
      'yes\n',
      'top:\n  inner:\n    flag: No\n    list:\n      - ON\n      - 1\n      - off\n',
      'a: [ x: on, Off, { "q": YES } ]\nb: { c: NO, \'d\': On }\n',
      'seq:\n  - - no\n    - { e: yes }\n  - key: off\n',
      ...['indigo-slurm-cluster', 'indigo-galaxy-portal'].map((c) => readFileSync(join(conformanceDir, c, 'template.yaml'), 'utf8')),
    ];
    for (const text of texts) {
      const fast = new Diagnostics();
      const loaded = loadYaml(text, 'f.yaml', fast);
      assert.equal(loaded.positions.size, 0, `read fast: ${JSON.stringify(text.slice(0, 40))}`);
      const library = new Diagnostics();
      assert.deepEqual(loaded.value, loadWithLibrary(text, 'f.yaml', library).value);
      assert.ok(library.list.length > 0);
      assert.deepEqual(fast.sorted(), library.sorted(), JSON.stringify(text.slice(0, 40)));
    }
    const quiet = new Diagnostics();
    loadYaml('a: yes\n', 'f.yaml', quiet, false);
    assert.deepEqual(quiet.list, [], 'no style warnings when they are not asked for');
  });

  it('reports syntax errors with their position', () => {
    const diags = new Diagnostics();
    const loaded = loadYaml('a: [1, 2\nb: 3\n', 'bad.yaml', diags);
    assert.equal(loaded.ok, false);
    assert.equal(diags.list[0]?.code, 'YAML_SYNTAX');
    assert.ok(diags.list[0]!.line >= 1);
  });

  describe('bounds (a template comes from a tenant)', () => {
    const read = (text: string) => {
      const diags = new Diagnostics();
      const loaded = loadYaml(text, 't.yaml', diags);
      return { loaded, errors: diags.list.filter((d) => d.severity === 'error').map((d) => `${d.line}:${d.column} ${d.code}`) };
    };
    const laughs = (levels: number) => {
      let t = 'a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n';
      for (let i = 1; i <= levels; i++)
        t += `a${i}: &a${i} [${Array(9)
          .fill(`*a${i - 1}`)
          .join(', ')}]\n`;
      return t;
    };

    it('refuses aliases as the yaml library does (its alias limit), at the alias, without expanding them', () => {
      // Two levels (81 strings) the library accepts; from three it refuses, at the first *a2.
      assert.deepEqual(read(laughs(2)).errors, []);
      assert.equal((read(laughs(2)).loaded.value as { a2: string[][] }).a2.flat().length, 81);
      assert.deepEqual(read(laughs(3)).errors, ['4:10 YAML_ALIAS_LIMIT']);
      assert.deepEqual(read(laughs(9)).errors, ['4:10 YAML_ALIAS_LIMIT']);
      // An anchor used as often as the library allows (its count starts at 1) is fine; once more,
      // at the 100th *x, is not.
      const uses = (n: number) => `x: &x { a: 1 }\nl: [${Array(n).fill('*x').join(', ')}]\n`;
      assert.deepEqual(read(uses(99)).errors, []);
      assert.deepEqual(read(uses(100)).errors, ['2:401 YAML_ALIAS_LIMIT']);
    });

    it('caps what aliases add in all, where each stays under the alias limit', () => {
      // 99 uses of a list of 2,000 values: 198,000 values from 6 KB of text. The cap (100,000)
      // is passed inside the 50th *x.
      const text = `x: &x [${Array(2000).fill('v').join(', ')}]\nl: [${Array(99).fill('*x').join(', ')}]\n`;
      assert.deepEqual(read(text).errors, ['2:201 YAML_ALIAS_LIMIT']);
    });

    it('refuses nesting over 100 levels, read fast or by the library, at the first level too many', () => {
      assert.deepEqual(read(`a: ${'['.repeat(99)}${']'.repeat(99)}\n`).errors, []);
      assert.deepEqual(read(`a: ${'['.repeat(100)}${']'.repeat(100)}\n`).errors, ['1:103 YAML_TOO_DEEP']);
      // With an anchor the library reads it; the same limit, the same place.
      assert.deepEqual(read(`x: &x 1\na: ${'['.repeat(100)}${']'.repeat(100)}\n`).errors, ['2:103 YAML_TOO_DEEP']);
      // Nesting built by aliases counts too: 60 levels put 50 levels deep, at the alias.
      assert.deepEqual(read(`x: &x ${'['.repeat(60)}${']'.repeat(60)}\ny: ${'['.repeat(50)}*x${']'.repeat(50)}\n`).errors, [
        '2:54 YAML_TOO_DEEP',
      ]);
    });

    it('spares the library a text nested thousands deep after a syntax error, but not a long shallow one', () => {
      const deep = read(`a: [\nb: ${'['.repeat(500_000)}${']'.repeat(500_000)}\n`);
      assert.deepEqual(deep.errors, ['2:402 YAML_TOO_DEEP']);
      for (const eol of ['\n', '\r\n']) {
        const lines = Array.from({ length: 2000 }, (_, i) => `- key${i}: { a: [b] }${eol}  more: - x${eol}`);
        const shallow = read(`top:${eol}${lines.join('')}bad: [${eol}`);
        assert.ok(
          shallow.errors.length > 0 && shallow.errors.every((e) => e.endsWith('YAML_SYNTAX')),
          JSON.stringify(shallow.errors.slice(0, 3)),
        );
      }
    });
  });
});
