// Rules real templates met (issue 19): the spec's short names of normative types, SELF inside a
// relationship, function arguments in TOSCA 1.0 files and type definitions, typed operation
// inputs with nested data types, and substitution mappings against the substituted type.
import { strict as assert } from 'node:assert';
import { processTemplate } from '../../src/domain/validate';

const errors = (text: string) =>
  processTemplate({ text, fileName: 't.yaml' })
    .diagnostics.filter((d) => d.severity === 'error')
    .map((d) => `${d.line}:${d.column} ${d.code} ${d.message}`);

describe('template rules', () => {
  it('short names of normative network types: PortDef, PortSpec, Linkable, LinksTo, Port, Network', () => {
    const found = errors(`tosca_definitions_version: tosca_simple_yaml_1_3
node_types:
  my.Server:
    derived_from: Compute
    properties:
      port: { type: PortDef }
      spec: { type: PortSpec, required: false }
      info: { type: PortInfo, required: false }
    capabilities:
      link: { type: Linkable }
relationship_types:
  my.Link: { derived_from: LinksTo }
topology_template:
  node_templates:
    web: { type: my.Server, properties: { port: 80 } }
    net: { type: Network }
    port:
      type: Port
      requirements: [ { link: net }, { binding: web } ]
`);
    assert.deepEqual(found, []);
    assert.match(
      errors('tosca_definitions_version: tosca_simple_yaml_1_3\ndata_types:\n  my.D: { derived_from: PortDefinition }\n').join(),
      /unknown data type "PortDefinition"/,
    );
  });

  it('get_property [ SELF, ... ] inside a relationship reads the relationship', () => {
    const found = errors(`tosca_definitions_version: tosca_simple_yaml_1_3
relationship_types:
  my.Rel:
    derived_from: tosca.relationships.DependsOn
    properties:
      weight: { type: integer, default: 1 }
topology_template:
  relationship_templates:
    named:
      type: my.Rel
      interfaces:
        Configure:
          pre_configure_source:
            inputs:
              w: { get_property: [ SELF, weight ] }
              bad: { get_property: [ SELF, nosuch ] }
              s: { get_attribute: [ SOURCE, tosca_id ] }
  node_templates:
    a:
      type: tosca.nodes.Root
      requirements:
        - dependency:
            node: b
            relationship:
              type: my.Rel
              properties: { weight: { get_property: [ SELF, weight ] } }
              interfaces:
                Configure:
                  post_configure_source:
                    inputs:
                      w: { get_property: [ SELF, weight ] }
                      t: { get_attribute: [ TARGET, tosca_name ] }
                      bad: { get_property: [ SELF, nosuch2 ] }
    b: { type: tosca.nodes.Root }
`);
    assert.deepEqual(found, [
      '16:15 UNKNOWN_PROPERTY get_property: relationship named (my.Rel) has no property "nosuch"',
      '33:23 UNKNOWN_PROPERTY get_property: relationship a.dependency (my.Rel) has no property "nosuch2"',
    ]);
  });

  it('function arguments are counted in TOSCA 1.0 templates and in type definitions', () => {
    const template = (version: string) => `tosca_definitions_version: ${version}
node_types:
  my.N:
    derived_from: tosca.nodes.Root
    properties:
      p: { type: string, required: false }
    interfaces:
      Standard:
        create:
          implementation: x.yml
          inputs:
            ok: { get_property: [ SELF, p ] }
            bad: { get_property: [ SELF ] }
            bad2: { token: [ a ] }
            nested: { get_input: [ i, 0 ] }
topology_template:
  inputs:
    i: { type: list, entry_schema: { type: string }, default: [ a ] }
  node_templates:
    n: { type: my.N }
  outputs:
    o: { value: { get_input: [ i, 0 ] } }
`;
    assert.deepEqual(errors(template('tosca_simple_yaml_1_0')), [
      '13:13 INVALID_FUNCTION get_property: needs [ entity, (capability or requirement,) name ]',
      '14:13 INVALID_FUNCTION token: needs [ string, separator, index ]',
      '15:13 INVALID_FUNCTION get_input: takes one input name in tosca_simple_yaml_1_0 (got 2 arguments)',
      '22:10 INVALID_FUNCTION get_input: takes one input name in tosca_simple_yaml_1_0 (got 2 arguments)',
    ]);
    // The nested form is TOSCA 1.3's.
    assert.deepEqual(errors(template('tosca_simple_yaml_1_3')), [
      '13:13 INVALID_FUNCTION get_property: needs [ entity, (capability or requirement,) name ]',
      '14:13 INVALID_FUNCTION token: needs [ string, separator, index ]',
    ]);
  });

  it('typed interface and operation inputs are checked against their data types, nested ones included', () => {
    const found = errors(`tosca_definitions_version: tosca_simple_yaml_1_3
data_types:
  my.Inner:
    derived_from: tosca.datatypes.Root
    properties:
      n: { type: integer }
  my.Outer:
    derived_from: tosca.datatypes.Root
    properties:
      inner: { type: my.Inner }
interface_types:
  my.If:
    derived_from: tosca.interfaces.Root
    inputs:
      top: { type: my.Outer, required: false }
    run:
      inputs:
        x: { type: list, entry_schema: { type: my.Inner }, required: false }
node_types:
  my.N:
    derived_from: tosca.nodes.Root
    interfaces:
      I: { type: my.If }
topology_template:
  node_templates:
    a:
      type: my.N
      interfaces:
        I:
          inputs: { top: { inner: { n: bad0 } } }
          run:
            inputs: { x: [ { n: 1 }, { n: bad1, m: 2 } ], free: anything }
`);
    assert.deepEqual(found, [
      '30:37 TYPE_MISMATCH node template a interface I input top.inner.n: "bad0" is not a valid integer',
      '32:40 TYPE_MISMATCH node template a operation I.run input x[1].n: "bad1" is not a valid integer',
      '32:49 UNKNOWN_PROPERTY node template a operation I.run input x[1]: data type my.Inner has no property "m"',
    ]);
  });

  it('substitution mappings are checked against the substituted type', () => {
    const found = errors(`tosca_definitions_version: tosca_simple_yaml_1_3
node_types:
  my.Db:
    derived_from: tosca.nodes.Root
    properties:
      size: { type: integer }
      name: { type: string }
      opt: { type: string, required: false }
    capabilities:
      endpoint: { type: tosca.capabilities.Endpoint.Database }
      host: { type: tosca.capabilities.Container }
topology_template:
  inputs:
    size: { type: string, default: x }
  substitution_mappings:
    node_type: my.Db
    properties:
      size: [ size ]
    capabilities:
      endpoint: [ vm, host ]
      host: [ vm, host ]
  node_templates:
    vm: { type: tosca.nodes.Compute }
`);
    assert.deepEqual(found, [
      '15:3 MISSING_REQUIRED_PROPERTY substitution_mappings: required property "name" of my.Db is neither mapped nor an input of the topology',
      '18:7 SUBSTITUTION_MISMATCH substitution_mappings properties.size: input size is string, property size of my.Db is integer',
      '20:7 SUBSTITUTION_MISMATCH substitution_mappings capabilities.endpoint: vm.host is tosca.capabilities.Compute, not the tosca.capabilities.Endpoint.Database that my.Db declares',
    ]);
  });
});
