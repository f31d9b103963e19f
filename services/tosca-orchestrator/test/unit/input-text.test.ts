// Inputs given as text (a command line's --input NAME=VALUE): each converted to the type its
// input declares, so "1" is the integer 1 for an integer input and stays "1" for a string one.
import { strict as assert } from 'node:assert';
import { typedInputs } from '../../src/domain/input-text';
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

  it('what is said of a given value names its input (a fault of the value, not of the template)', () => {
    const r = processTemplate({
      text: `${template}    required_one: { type: integer }\n`,
      inputs: { ratio: 'x' },
      textInputs: { count: 'many' },
    });
    const errors = r.diagnostics.filter((d) => d.severity === 'error');
    const about = (input: string) => errors.filter((d) => d.input === input).map((d) => d.code);
    assert.deepEqual(about('count'), ['TYPE_MISMATCH']);
    assert.deepEqual(about('ratio'), ['TYPE_MISMATCH']);
    assert.deepEqual(about('required_one'), ['MISSING_INPUT']);
    assert.ok(
      errors.every((d) => d.input !== undefined),
      JSON.stringify(errors),
    );
    const broken = processTemplate({
      text: template.replace('ratio: { type: float }', 'ratio: { type: no.such.Type }'),
      textInputs: { count: '1' },
    });
    assert.ok(
      broken.diagnostics.some((d) => d.severity === 'error' && d.input === undefined),
      JSON.stringify(broken.diagnostics),
    );
  });

  it('a given value that does not fit where the template uses it names its input; one refused for its own type is said once', () => {
    const server = (defaults = '') => `tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  inputs:
    cpus: { type: float${defaults} }
  node_templates:
    server:
      type: tosca.nodes.Compute
      capabilities:
        host:
          properties: { num_cpus: { get_input: cpus } }
`;
    const errorsOf = (r: ReturnType<typeof processTemplate>) =>
      r.diagnostics.filter((d) => d.severity === 'error').map((d) => [d.input, d.path, d.message]);
    assert.deepEqual(errorsOf(processTemplate({ text: server(), textInputs: { cpus: '1.5' } })), [
      [
        'cpus',
        'topology_template.node_templates.server.capabilities.host.properties.num_cpus',
        'capability host of server property num_cpus (from get_input): 1.5 is not a valid integer',
      ],
    ]);
    assert.deepEqual(errorsOf(processTemplate({ text: server(), textInputs: { cpus: 'x' } })), [
      ['cpus', 'topology_template.inputs.cpus', 'input cpus: "x" is not a valid float'],
    ]);
    // The template's own default is the template's fault.
    const byDefault = errorsOf(processTemplate({ text: server(', default: 1.5'), inputs: {} }));
    assert.equal(byDefault.length, 1, JSON.stringify(byDefault));
    assert.equal(byDefault[0]![0], undefined);
  });

  it('a deployment keeps the typed values: text converted, undeclared text left as text, values as given', () => {
    const r = processTemplate({ text: template, inputs: { count: 5, name: 'x' }, textInputs: { count: '7', ratio: '0.25', other: '1' } });
    assert.deepEqual(typedInputs(r.topology?.inputValues, { count: 5, name: 'x' }, { count: '7', ratio: '0.25', other: '1' }), {
      count: 7,
      name: 'x',
      ratio: 0.25,
      other: '1',
    });
  });
});
