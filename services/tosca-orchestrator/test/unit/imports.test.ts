// Imported files are read once and reused while they stay the same (INDIGO's types file took the
// `yaml` library about 40 ms for every template that imported it, and reading it from the disk
// again was a third of a small template's time): what a template sees of an import (its types,
// its warnings, positions inside it) must not depend on whether the file was read before, a file
// changed in the mirror is read again, and a URL never leads out of the mirror.
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImportFiles } from '../../src/adapters/import-files';
import { processTemplate } from '../../src/domain/validate';

describe('imported files', () => {
  const mirror = mkdtempSync(join(tmpdir(), 'lapis-tosca-imports-'));
  const dir = join(mirror, 'types.example.org', 'v1');
  after(() => rmSync(mirror, { recursive: true, force: true }));

  const types = (extra = '') => `tosca_definitions_version: tosca_simple_yaml_1_3
node_types:
  example.nodes.App:
    derived_from: tosca.nodes.SoftwareComponent
    properties:
      port: { type: integer, default: "8080" }
${extra}`;
  const template = (type: string) => `tosca_definitions_version: tosca_simple_yaml_1_3
imports:
  - https://types.example.org/v1/types.yaml
topology_template:
  node_templates:
    app:
      type: ${type}
      requirements:
        - host: server
    server:
      type: tosca.nodes.Compute
`;
  const run = (type: string) => processTemplate({ text: template(type), fileName: 't.yaml', imports: new ImportFiles({ mirror }) });
  const shown = (r: ReturnType<typeof run>) =>
    r.diagnostics.map((d) => `${d.severity} ${d.code} ${d.file}:${d.line}:${d.column} ${d.path}`);

  it('gives every template the same types, warnings and positions, read for the first time or not', () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'types.yaml'), types());
    const first = run('example.nodes.App');
    const second = run('example.nodes.App');
    assert.equal(first.valid, true);
    assert.deepEqual(shown(second), shown(first));
    // The string default read as an integer: a warning inside the imported file, with its line.
    assert.ok(
      shown(first).some((d) => d.startsWith('warning TYPE_COERCED https://types.example.org/v1/types.yaml:6:')),
      JSON.stringify(shown(first)),
    );
  });

  it('reads a file again once it changed in the mirror', () => {
    writeFileSync(join(dir, 'types.yaml'), types());
    assert.equal(run('example.nodes.Db').valid, false);
    writeFileSync(join(dir, 'types.yaml'), types('  example.nodes.Db:\n    derived_from: tosca.nodes.SoftwareComponent\n'));
    assert.equal(run('example.nodes.Db').valid, true);
    // Rewritten with a text of the same length: still read again.
    writeFileSync(join(dir, 'types.yaml'), types('  example.nodes.Dx:\n    derived_from: tosca.nodes.SoftwareComponent\n'));
    assert.equal(run('example.nodes.Db').valid, false);
    assert.equal(run('example.nodes.Dx').valid, true);
  });

  it('checks imported types once, unless the template defines types the imported ones may refer to', () => {
    writeFileSync(
      join(dir, 'ports.yaml'),
      `tosca_definitions_version: tosca_simple_yaml_1_3
node_types:
  example.nodes.Web:
    derived_from: tosca.nodes.SoftwareComponent
    properties:
      port: { type: example.datatypes.Port }
      size: { type: integer, default: big }
`,
    );
    const web = (own = '') =>
      processTemplate({
        text: `tosca_definitions_version: tosca_simple_yaml_1_3\nimports:\n  - https://types.example.org/v1/ports.yaml\n${own}topology_template:\n  node_templates:\n    server: { type: tosca.nodes.Compute }\n`,
        fileName: 't.yaml',
        imports: new ImportFiles({ mirror }),
      });
    const errors = (r: ReturnType<typeof web>) =>
      r.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.file}:${d.line}:${d.column} ${d.path}`);
    const inImport = [
      'TYPE_MISMATCH https://types.example.org/v1/ports.yaml:7:30 node_types.example.nodes.Web.properties.size.default',
      'UNKNOWN_TYPE https://types.example.org/v1/ports.yaml:6:15 node_types.example.nodes.Web.properties.port.type',
    ];
    assert.deepEqual(errors(web()).sort(), inImport);
    assert.deepEqual(errors(web()).sort(), inImport, 'the same errors, at the same places, the second time');
    // The template defines the data type the imported node type names: that error goes.
    const own = 'data_types:\n  example.datatypes.Port:\n    derived_from: integer\n';
    assert.deepEqual(errors(web(own)), [inImport[0]]);
    assert.deepEqual(errors(web()).sort(), inImport);
  });

  it('never reads outside the mirror, whatever the URL escapes', () => {
    writeFileSync(join(mirror, '..', `${mirror.split('/').pop()}-outside.yaml`), types());
    const files = new ImportFiles({ mirror });
    const escaped = new URL(`https://types.example.org/..%2F..%2F${mirror.split('/').pop()}-outside.yaml`);
    const found = files.url(escaped);
    assert.ok('missing' in found && /leads out of the mirror/.test(found.missing), JSON.stringify(found));
    rmSync(join(mirror, '..', `${mirror.split('/').pop()}-outside.yaml`));
    assert.deepEqual(new ImportFiles({}).url(escaped), { missing: 'LAPIS_TOSCA_IMPORT_MIRROR is not set' });
    assert.ok('text' in files.url(new URL('https://types.example.org/v1/types.yaml')));
  });
});
