// Big templates are read in two pieces (the node templates from the middle on by another thread,
// the rest here) and grafted together: the result must be exactly the one-piece reading, and any
// piece that cannot be read alone, or a cut that is not inside the topology's node_templates,
// must fall back to reading the whole text. The "other thread" here is this one (the adapter's
// real thread has its own test).
import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from '../../bench/bench';
import { Diagnostics } from '../../src/domain/diagnostics';
import { loadWithLibrary, loadYaml, readFastOrNothing, splitNodeTemplates, type ParallelReader } from '../../src/domain/yaml';
import { conformanceDir } from '../helpers';

/** Reads every piece handed over at once, on this thread, and counts the pieces and grafts. */
class SameThread implements ParallelReader {
  readonly minLength = 0;
  pieces = 0;
  start(text: string) {
    this.pieces++;
    const value = readFastOrNothing(text);
    return () => value;
  }
}

const oneThread = (text: string) => loadYaml(text, 't.yaml', new Diagnostics(), false).value;
const twoPieces = (text: string, reader = new SameThread()) => loadYaml(text, 't.yaml', new Diagnostics(), false, reader).value;

const nodes = (names: string[], body = (n: string) => `      type: tosca.nodes.Compute\n      properties: { name: ${n} }\n`) =>
  names.map((n) => `    ${n}:\n${body(n)}`).join('');
const topology = (inner: string, before = '', after = '') =>
  `tosca_definitions_version: tosca_simple_yaml_1_3\n${before}topology_template:\n  node_templates:\n${inner}${after}`;
const names = (count: number) => Array.from({ length: count }, (_, i) => `n${i}`);

describe('template YAML read in two pieces', () => {
  it('gives exactly the one-piece value for generated templates, in the same key order', () => {
    for (const n of [6, 99, 300]) {
      const text = generate(n, 'valid');
      const reader = new SameThread();
      const value = twoPieces(text, reader);
      assert.equal(reader.pieces, 1);
      assert.deepEqual(value, oneThread(text));
      const grafted = Object.keys((value as { topology_template: { node_templates: object } }).topology_template.node_templates);
      assert.deepEqual(
        grafted,
        Object.keys((oneThread(text) as typeof value & { topology_template: { node_templates: object } }).topology_template.node_templates),
      );
    }
  });

  it('gives the one-piece value for every conformance template', () => {
    let split = 0;
    for (const c of readdirSync(conformanceDir)) {
      const file = join(conformanceDir, c, 'template.yaml');
      if (!existsSync(file)) continue;
      const text = readFileSync(file, 'utf8');
      if (splitNodeTemplates(text)) split++;
      assert.deepEqual(twoPieces(text), oneThread(text), c);
    }
    assert.ok(split > 10, `only ${split} conformance templates could be cut`);
  });

  it('cuts only at a node template and keeps what follows node_templates in the head', () => {
    const text = topology(nodes(names(4)), '', '  outputs:\n    ip: { value: 1 }\n');
    const cut = splitNodeTemplates(text)!;
    assert.match(cut.body, /^ {4}n\d:\n/);
    assert.ok(cut.head.endsWith('  outputs:\n    ip: { value: 1 }\n'));
    assert.ok(!cut.body.includes('outputs'));
    assert.deepEqual(twoPieces(text), oneThread(text));
  });

  const tricky: Record<string, string> = {
    'block scalars, comments at column 0 and blank lines inside the node templates': topology(
      nodes(
        names(6),
        (n) =>
          `      type: tosca.nodes.Compute\n      description: |\n        ${n} line one\n\n        line two:\n# a comment at column 0\n\n      properties: { name: "${n}" }\n`,
      ),
    ),
    'a flow mapping over several lines': topology(
      nodes(names(6), (n) => `      type: tosca.nodes.Compute\n      properties: {\n        name: ${n},\n        size: 1 GB }\n`),
    ),
    'node_templates inside a description before the topology': topology(
      nodes(names(6)),
      `description: |\n  topology_template:\n    node_templates:\n      a:\n        type: x\n      b:\n        type: y\n      c:\n        type: z\n`,
    ),
    'the same node template on both sides of the cut (the library warns)': topology(nodes([...names(4), 'n0', 'n5'])),
    'an anchor in the head and its alias in the body': topology(
      `${nodes(names(3))}    a:\n      type: &t tosca.nodes.Compute\n${nodes(['x', 'y'])}    z:\n      type: *t\n`,
    ),
    'YAML 1.1 booleans in the body': topology(nodes(names(6), () => '      type: tosca.nodes.Compute\n      properties: { flag: yes }\n')),
    'a syntax error in the body': topology(`${nodes(names(6))}    broken: [ 1, 2\n`),
    'CRLF line ends': topology(nodes(names(6))).replace(/\n/g, '\r\n'),
    'a sequence where node templates belong': topology('    - a\n    - b\n    - c\n'),
  };
  for (const [name, text] of Object.entries(tricky)) {
    it(`falls back or agrees: ${name}`, () => {
      const [referenceDiags, splitDiags, wholeDiags] = [new Diagnostics(), new Diagnostics(), new Diagnostics()];
      const reference = loadWithLibrary(text, 't.yaml', referenceDiags);
      const split = loadYaml(text, 't.yaml', splitDiags, true, new SameThread());
      const whole = loadYaml(text, 't.yaml', wholeDiags);
      assert.equal(split.ok, whole.ok);
      assert.deepEqual(split.value, whole.value);
      // The same warnings and errors, at the same places, however the text was read.
      assert.deepEqual(splitDiags.sorted(), wholeDiags.sorted());
      assert.deepEqual(wholeDiags.sorted(), referenceDiags.sorted());
      if (reference.ok) assert.deepEqual(split.value, reference.value);
    });
  }

  it('grafts the piece where the cut is sound, and never where it is not', () => {
    // A piece that reads as a marker shows whether the head took it.
    const marker: ParallelReader = { minLength: 0, start: () => () => ({ value: { marker: {} } }) };
    const grafted = (text: string) => JSON.stringify(loadYaml(text, 't.yaml', new Diagnostics(), false, marker).value).includes('"marker"');
    assert.equal(grafted(tricky['block scalars, comments at column 0 and blank lines inside the node templates']!), true);
    assert.equal(grafted(tricky['a flow mapping over several lines']!), true);
    assert.equal(grafted(generate(300, 'valid')), true);
    assert.equal(grafted(tricky['node_templates inside a description before the topology']!), false);
  });

  it('reads everything itself when no thread is free', () => {
    const text = generate(300, 'valid');
    const busy: ParallelReader = { minLength: 0, start: () => undefined };
    assert.deepEqual(loadYaml(text, 't.yaml', new Diagnostics(), false, busy).value, oneThread(text));
  });

  it('reads everything itself when the other thread fails, and collects its answer all the same', () => {
    const text = generate(300, 'valid');
    let waited = 0;
    const failing: ParallelReader = { minLength: 0, start: () => () => (waited++, undefined) };
    assert.deepEqual(loadYaml(text, 't.yaml', new Diagnostics(), false, failing).value, oneThread(text));
    assert.equal(waited, 1);
    // A head that cannot be read fast (a YAML 1.1 boolean) still collects the piece it handed over.
    waited = 0;
    const head11 = text.replace('description: generated benchmark template', 'description: yes');
    const handing: ParallelReader = { minLength: 0, start: (t) => () => (waited++, readFastOrNothing(t)) };
    loadYaml(head11, 't.yaml', new Diagnostics(), false, handing);
    assert.equal(waited, 1);
  });
});
