// Inputs given as text (a command line's --input NAME=VALUE): each converted to the type its
// input declares, so "1" is the integer 1 for an integer input and stays "1" for a string one.
import { strict as assert } from 'node:assert';
import { processTemplate } from '../../src/domain/validate';

const template = `tosca_definitions_version: tosca_simple_yaml_1_3
data_types:
  my.Port: { derived_from: integer, constraints: [ { in_range: [ 1, 65535 ] } ] }
  my.Pair:
    derived_from: tosca.datatypes.Root
    properties: { a: { type: integer }, b: { type: string } }
topology_template:
  inputs:
    count: { type: integer }
    ratio: { type: float }
    debug: { type: boolean }
    name: { type: string }
    port: { type: my.Port }
    tags: { type: list, entry_schema: { type: string } }
    sizes: { type: map, entry_schema: { type: scalar-unit.size } }
    pair: { type: my.Pair }
    version: { type: version }
`;

describe('inputs given as text', () => {
  it('are converted to their declared types and checked as such', () => {
    const r = processTemplate({
      text: template,
      textInputs: {
        count: '1',
        ratio: '0.5',
        debug: 'yes',
        name: '1',
        port: '8080',
        tags: '[a, b]',
        sizes: '{ small: 1 GB }',
        pair: '{ a: 1, b: x }',
        version: '1.0',
      },
    });
    assert.deepEqual(r.diagnostics, []);
    assert.deepEqual(r.topology?.inputValues, {
      count: 1,
      ratio: 0.5,
      debug: true,
      name: '1',
      port: 8080,
      tags: ['a', 'b'],
      sizes: { small: '1 GB' },
      pair: { a: 1, b: 'x' },
      version: '1.0',
    });
  });

  it('text that does not convert is reported against the type, with the constraints of the data type', () => {
    const r = processTemplate({ text: template, textInputs: { count: 'many', port: '70000', debug: 'maybe' } });
    const messages = r.diagnostics.filter((d) => d.severity === 'error').map((d) => d.message);
    assert.ok(
      messages.some((m) => /input count: "many" is not a valid integer/.test(m)),
      messages.join('\n'),
    );
    assert.ok(
      messages.some((m) => /input port: 70000 .*range/.test(m)),
      messages.join('\n'),
    );
    assert.ok(
      messages.some((m) => /input debug: "maybe" is not a valid boolean/.test(m)),
      messages.join('\n'),
    );
  });

  it('text inputs override the same inputs given as values', () => {
    const r = processTemplate({ text: template, inputs: { count: 5, name: 'x' }, textInputs: { count: '7' } });
    assert.equal(r.topology?.inputValues.count, 7);
    assert.equal(r.topology?.inputValues.name, 'x');
  });
});
