// The fast YAML reader against the `yaml` library (the reference): the same values and the
// same positions on every conformance template, INDIGO's custom types and tricky snippets; and
// what it does not handle goes to the library.
import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Diagnostics } from '../../src/domain/diagnostics';
import { fastParse, Unsupported } from '../../src/domain/fastyaml';
import { loadWithLibrary, loadYaml } from '../../src/domain/yaml';
import { conformanceDir, indigoTypesFile } from '../helpers';

function compare(text: string, name: string): boolean {
  let fast;
  try {
    fast = fastParse(text);
  } catch (error) {
    if (error instanceof Unsupported) return false;
    throw error;
  }
  const lib = loadWithLibrary(text, name, new Diagnostics(), false);
  assert.ok(lib.ok, `${name}: the library could not read it`);
  assert.deepEqual(fast.value, lib.value, `${name}: values differ`);
  const libPositions = Object.fromEntries([...lib.positions].filter(([k]) => k !== ''));
  const fastPositions = Object.fromEntries([...fast.positions]);
  assert.deepEqual(fastPositions, libPositions, `${name}: positions differ`);
  return true;
}

const snippets: Record<string, string> = {
  scalars: 'a: 1\nb: -2\nc: 0x1F\nd: 017\ne: 1.5\nf: .5\ng: 1e3\nh: 1.0e+3\ni: ~\nj: null\nk: yes\nl: Off\nm: y\nn: "q\\"uote\\n"\no: \'it\'\'s\'\np: 1.19.4\nq: 2024-01-31\nr: 10 GB\ns: .inf\nt: -.INF\nu: 1_000\nv: 0b101\nw: +3\nx: 1.\n',
  nesting: 'a:\n  b:\n    - c\n    - d: 1\n      e: [ 1, { f: g } ]\n  h:\n  - i\n  - j: k\n-   \n'.replace('-   \n', '') + 'z: end\n',
  flows: 'a: [ x: 1, y, "z": 2 ]\nb: { c: , d: [ ], e: {} }\nc: [ a,\n  b, # comment\n  c ]\nd: { url: "https://x.org/a:b", e: http://x.org }\n',
  blocks: 'a: |\n  line one\n  line two\n\nb: >\n  folded\n  text\n\n  new paragraph\nc: |-\n  stripped\nd: >+\n  kept\n\ne: end\n',
  seqitems: 'a:\n  -\n    b: 1\n  - - nested\n',
  keys: '"quoted key": 1\n\'single\': 2\n80: http\nkey with spaces: v\n? complex\n: value\n',
  comments: '# head\na: 1 # trailing\n\n# middle\nb:   # nothing\n  c: d\n',
  anchors: 'a: &x { b: 1 }\nc: *x\n',
  duplicates: 'a: 1\nb: 2\na: 3\n',
  document: '---\na: 1\n',
};

describe('fast YAML reader', () => {
  it('reads every conformance template like the yaml library', () => {
    let fast = 0;
    let total = 0;
    for (const c of readdirSync(conformanceDir)) {
      const file = join(conformanceDir, c, 'template.yaml');
      if (!existsSync(file)) continue;
      const text = readFileSync(file, 'utf8');
      if (c === 'error-yaml-syntax') continue;
      total++;
      if (compare(text, c)) fast++;
    }
    assert.ok(fast >= total - 2, `only ${fast} of ${total} conformance templates took the fast path`);
  });

  it("reads INDIGO's custom types like the yaml library", () => {
    assert.ok(compare(readFileSync(indigoTypesFile, 'utf8'), 'custom_types.yaml'), 'INDIGO types should take the fast path');
  });

  for (const [name, text] of Object.entries(snippets)) {
    it(`snippet: ${name}`, () => {
      const handled = compare(text, name);
      assert.equal(handled, !['keys', 'anchors', 'seqitems'].includes(name), `${name}: ${handled ? 'fast path' : 'library'} was not expected`);
      // Whichever path, the loader gives the library's values.
      const viaLoader = loadYaml(text, name, new Diagnostics(), false);
      assert.deepEqual(viaLoader.value, loadWithLibrary(text, name, new Diagnostics(), false).value);
    });
  }

  it('warns about duplicate keys and YAML 1.1 booleans on both paths', () => {
    for (const text of ['a: 1\na: yes\n', 'x: &y 1\na: 1\na: yes\n']) {
      const diags = new Diagnostics();
      loadYaml(text, 'f.yaml', diags);
      assert.deepEqual(diags.list.map((d) => [d.code, d.line, d.column]).sort(), [['DUPLICATE_KEY', text.split('\n').length - 1, 1], ['YAML11_BOOLEAN', text.split('\n').length - 1, 1]].sort());
    }
  });

  it('reports syntax errors with their position', () => {
    const diags = new Diagnostics();
    const loaded = loadYaml('a: [1, 2\nb: 3\n', 'bad.yaml', diags);
    assert.equal(loaded.ok, false);
    assert.equal(diags.list[0]?.code, 'YAML_SYNTAX');
    assert.ok(diags.list[0]!.line >= 1);
  });
});
