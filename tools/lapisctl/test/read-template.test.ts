// What `lapisctl deployment create` sends with a YAML template: the files it imports and the
// scripts and playbooks its operations name (the orchestrator runs those in the instances),
// relative to the template; nothing named by URL, nothing that is not a file.
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTemplate } from '../src/commands/deployment';

describe('readTemplate (lapisctl deployment create)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lapisctl-read-template-'));
    mkdirSync(join(dir, 'app', 'scripts', 'lib'), { recursive: true });
    mkdirSync(join(dir, 'app', 'types'));
    const files: Record<string, string> = {
      'app/t.yaml': [
        'tosca_definitions_version: tosca_simple_yaml_1_3',
        'imports: [types/web.yaml]',
        'topology_template:',
        '  node_templates:',
        '    web:',
        '      type: example.Web',
        '      interfaces:',
        '        Standard:',
        '          configure:',
        '            implementation: { primary: scripts/configure.sh, dependencies: [scripts/lib/common.sh, { file: scripts/page.html }] }',
        '          start: https://example.org/start.sh',
        '          stop: scripts',
        '',
      ].join('\n'),
      'app/types/web.yaml': 'node_types:\n  example.Web:\n    derived_from: tosca.nodes.WebServer\n',
      'app/scripts/configure.sh': '#!/bin/sh\necho configured\n',
      'app/scripts/lib/common.sh': 'x=1\n',
      'app/scripts/page.html': '<p>page</p>\n',
    };
    for (const [path, text] of Object.entries(files)) writeFileSync(join(dir, path), text);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('sends the imported files and the operations’ artifacts, by their path beside the template', () => {
    const source = readTemplate(join(dir, 'app', 't.yaml'));
    assert.equal(source.fileName, 't.yaml');
    assert.deepEqual(Object.keys(source.files).sort(), [
      'scripts/configure.sh',
      'scripts/lib/common.sh',
      'scripts/page.html',
      'types/web.yaml',
    ]);
    assert.equal(source.files['scripts/configure.sh'], '#!/bin/sh\necho configured\n');
  });
});
