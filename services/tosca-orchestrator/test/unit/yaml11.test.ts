// What YAML 1.1 readers (PyYAML, which the established TOSCA tools use) accept and YAML 1.2
// refuses is read as they read it, with a warning where it bends the spec (issue 19); and the
// TOSCA NFV profile (tosca_simple_profile_for_nfv_1_0_0) is known. The expected values are what
// PyYAML 6 reads from the same text.
import { strict as assert } from 'node:assert';
import { Diagnostics } from '../../src/domain/diagnostics';
import { processTemplate } from '../../src/domain/validate';
import { loadYaml } from '../../src/domain/yaml';

/** A types file in the style of ETSI NFV SOL001's (written for this test). */
const typesFile = `tosca_definitions_version: tosca_simple_yaml_1_2
data_types:
  acme.datatypes.nfv.Rule:
    derived_from: tosca.datatypes.Root
    properties:
      protocol:
        type: string
        required: true
        constraints:
          - valid_values: [ tcp, udp, icmp, sctp,
        gre, esp ]
        default: tcp
      port:
        type: integer
        required: false
        constraints: [ { in_range: [ 0, 65535 ] } ]# a port number
      note:
        type: string
        required: false
        default: "a long note
      that goes on"
node_types:
  acme.nodes.nfv.Firewall:
    derived_from: tosca.nodes.Root
    properties:
      rule: { type: acme.datatypes.nfv.Rule }
`;

const read = (text: string) => {
  const diags = new Diagnostics();
  const loaded = loadYaml(text, 'types.yaml', diags);
  return { ...loaded, diagnostics: diags.sorted() };
};

describe('YAML 1.1 leniency', () => {
  it('reads what PyYAML reads, warning at each place it bends YAML 1.2', () => {
    const r = read(typesFile);
    assert.equal(r.ok, true, JSON.stringify(r.diagnostics));
    const props = (r.value as { data_types: Record<string, { properties: Record<string, unknown> }> }).data_types[
      'acme.datatypes.nfv.Rule'
    ]!.properties;
    assert.deepEqual(props, {
      protocol: {
        type: 'string',
        required: true,
        constraints: [{ valid_values: ['tcp', 'udp', 'icmp', 'sctp', 'gre', 'esp'] }],
        default: 'tcp',
      },
      port: { type: 'integer', required: false, constraints: [{ in_range: [0, 65535] }] },
      note: { type: 'string', required: false, default: 'a long note that goes on' },
    });
    assert.deepEqual(
      r.diagnostics.map((d) => `${d.severity} ${d.code} ${d.line}:${d.column}`),
      ['warning YAML11_LENIENCY 11:1', 'warning YAML11_LENIENCY 16:52', 'warning YAML11_LENIENCY 21:1'],
    );
  });

  it('positions after a bend point into the original text', () => {
    const text = `${typesFile}topology_template:\n  node_templates:\n    fw: { type: acme.nodes.nfv.Firewall, properties: { rule: { protocol: ftp } } }\n`;
    const r = processTemplate({ text, fileName: 't.yaml' });
    const error = r.diagnostics.find((d) => d.severity === 'error');
    assert.deepEqual(
      error && { code: error.code, line: error.line, column: error.column },
      { code: 'CONSTRAINT_VIOLATION', line: 29, column: 64 },
      JSON.stringify(r.diagnostics),
    );
  });

  it('a types file with these bends imported by a template: the same verdict as PyYAML-based tools', () => {
    const template = `tosca_definitions_version: tosca_simple_yaml_1_2
imports: [ types.yaml ]
topology_template:
  node_templates:
    fw: { type: acme.nodes.nfv.Firewall, properties: { rule: { protocol: gre, port: 22 } } }
`;
    const r = processTemplate({ text: template, fileName: 't.yaml', files: { 'types.yaml': typesFile } });
    assert.equal(r.valid, true, JSON.stringify(r.diagnostics));
    assert.ok(r.diagnostics.every((d) => d.code === 'YAML11_LENIENCY' && d.file === 'types.yaml'));
  });

  it('what neither YAML 1.1 nor 1.2 reads stays an error with its position', () => {
    const r = read('a:\n  b: [ x, y\n  c: 1\n');
    assert.equal(r.ok, false);
    assert.equal(r.diagnostics[0]?.code, 'YAML_SYNTAX');
    const tabs = read('a:\n\tb: 1\n');
    assert.equal(tabs.ok, false);
    assert.deepEqual([tabs.diagnostics[0]?.line, tabs.diagnostics[0]?.code], [2, 'YAML_SYNTAX']);
  });

  it('block scalars, quotes inside plain scalars and brackets inside them are left alone', () => {
    const r = read(`a: it's [not] a flow, "nor" a quote
b: |
  [ unbalanced
c: [ x,
 y ]
`);
    assert.equal(r.ok, true, JSON.stringify(r.diagnostics));
    assert.deepEqual(r.value, { a: 'it\'s [not] a flow, "nor" a quote', b: '[ unbalanced\n', c: ['x', 'y'] });
    assert.deepEqual(
      r.diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`),
      [],
      'c is indented enough (more than its key)',
    );
  });
});

describe('TOSCA NFV profile 1.0', () => {
  const template = (version: string) => `tosca_definitions_version: ${version}
topology_template:
  node_templates:
    VDU1:
      type: tosca.nodes.nfv.VDU
      capabilities:
        host: { properties: { num_cpus: 1, mem_size: 512 MB, disk_size: 1 GB } }
    CP1:
      type: tosca.nodes.nfv.CP
      properties: { type: vPort }
      requirements: [ { virtualLink: VL1 }, { virtualBinding: VDU1 } ]
    VL1:
      type: tosca.nodes.nfv.VL
      properties: { vendor: ACME, network_name: net0 }
    VL2:
      type: tosca.nodes.nfv.VL.ELine
`;

  it('tosca_simple_profile_for_nfv_1_0_0 brings the profile types', () => {
    const r = processTemplate({ text: template('tosca_simple_profile_for_nfv_1_0_0'), fileName: 't.yaml' });
    assert.deepEqual(
      r.diagnostics.map((d) => `${d.line}:${d.column} ${d.code} ${d.message}`),
      ['15:5 MISSING_REQUIRED_PROPERTY node template VL2: required property "vendor" of tosca.nodes.nfv.VL.ELine is missing'],
    );
    assert.deepEqual(r.topology?.order, ['VDU1', 'VL1', 'CP1', 'VL2']);
  });

  it('other versions do not know them', () => {
    const r = processTemplate({ text: template('tosca_simple_yaml_1_3'), fileName: 't.yaml' });
    assert.ok(r.diagnostics.some((d) => d.code === 'UNKNOWN_TYPE' && /tosca\.nodes\.nfv\.VDU/.test(d.message)));
  });

  it('a template defining tosca.nodes.nfv.* types itself (as SOL001 does) keeps its own', () => {
    const own = `tosca_definitions_version: tosca_simple_profile_for_nfv_1_0_0
node_types:
  tosca.nodes.nfv.VNF:
    derived_from: tosca.nodes.Root
    properties: { flavour_id: { type: string } }
topology_template:
  node_templates:
    vnf: { type: tosca.nodes.nfv.VNF, properties: { flavour_id: simple } }
`;
    const r = processTemplate({ text: own, fileName: 't.yaml' });
    assert.equal(r.valid, true, JSON.stringify(r.diagnostics));
  });
});
