// Lapis' built-in INDIGO types against INDIGO's own file (the reference copy the tests use): every
// type, with what a template is validated against (derivation, properties, attributes,
// capabilities, requirements, artifacts, interfaces and their operations), is defined the same;
// and templates get the same verdict with the built-ins as with the file imported through the
// mirror. When INDIGO's file changes: node dist/test/indigo/generate.js.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { ImportFiles } from '../../src/adapters/import-files';
import { Diagnostics } from '../../src/domain/diagnostics';
import { builtins } from '../../src/domain/loader';
import { isDict, typeSections, type Kind } from '../../src/domain/registry';
import { processTemplate } from '../../src/domain/validate';
import { loadYaml } from '../../src/domain/yaml';
import { indigoMirror, indigoTypesFile, indigoUrl } from '../helpers';
import { keptTypes } from '../indigo/definitions';

describe("built-in INDIGO types against INDIGO's file", () => {
  const doc = loadYaml(readFileSync(indigoTypesFile, 'utf8'), indigoTypesFile, new Diagnostics(), false).value;
  assert.ok(isDict(doc));
  const kept = keptTypes(doc);

  it('define every type of the file, each the same', () => {
    const registry = builtins();
    let compared = 0;
    for (const [section, defs] of Object.entries(kept)) {
      const kind = typeSections[section] as Kind;
      for (const [name, def] of Object.entries(defs)) {
        const entry = registry.get(kind, name);
        assert.ok(entry, `${kind} type ${name} is not built in`);
        assert.equal(entry.loc.file, '<lapis-indigo>', `${name} comes from ${entry.loc.file}`);
        assert.deepEqual(entry.def, def, `${name} differs from INDIGO's (regenerate: node dist/test/indigo/generate.js)`);
        compared++;
      }
    }
    assert.ok(compared >= 100, `only ${compared} types compared`);
  });

  it('built-in types not in the file: none', () => {
    const names = new Set(Object.values(kept).flatMap((defs) => Object.keys(defs)));
    const extra: string[] = [];
    for (const kind of Object.values(typeSections))
      for (const entry of builtins().all(kind)) if (entry.loc.file === '<lapis-indigo>' && !names.has(entry.name)) extra.push(entry.name);
    assert.deepEqual(extra, []);
  });

  describe('the same verdict either way', () => {
    const withFile = (text: string) => processTemplate({ text, fileName: 't.yaml', imports: new ImportFiles({ mirror: indigoMirror() }) });
    const withBuiltins = (text: string) => processTemplate({ text, fileName: 't.yaml' });
    /** The template's own diagnostics (the file's warnings about itself, and the built-ins' stand-in warning, aside). */
    const verdict = (r: ReturnType<typeof processTemplate>) => ({
      valid: r.valid,
      diagnostics: r.diagnostics
        .filter((d) => d.file === 't.yaml' && d.code !== 'IMPORT_BUILTIN')
        .map((d) => `${d.line}:${d.column} ${d.severity} ${d.code} ${d.message}`),
    });
    const template = (body: string) => `tosca_definitions_version: tosca_simple_yaml_1_0
imports:
  - indigo_custom_types: ${indigoUrl}
topology_template:
  node_templates:
${body}`;

    it('a template of each INDIGO node type, without properties or requirements', () => {
      let differing = 0;
      const nodeTypes = Object.keys(kept.node_types ?? {});
      for (const type of nodeTypes) {
        const text = template(`    n:\n      type: ${type}\n`);
        const a = verdict(withFile(text));
        const b = verdict(withBuiltins(text));
        assert.deepEqual(b, a, type);
        if (!a.valid) differing++;
      }
      // Real checks happened: many of these lack required properties or requirements.
      assert.ok(differing > 10, `only ${differing} of ${nodeTypes.length} templates invalid`);
    });

    it('templates with wrong, unknown and missing properties, capabilities, requirements and operations', () => {
      const bodies = [
        '    fe:\n      type: tosca.nodes.indigo.LRMS.FrontEnd.Slurm\n      properties: { wn_ips: 3, nosuch: 1 }\n      requirements: [ { host: vm } ]\n    vm:\n      type: tosca.nodes.indigo.Compute\n      capabilities: { os: { properties: { distribution: ubuntu, flavour: x } }, scalable: { properties: { count: two } } }\n',
        '    g:\n      type: tosca.nodes.indigo.GalaxyPortal\n      interfaces: { Standard: { configure: { inputs: { a: 1 } }, frobnicate: {} } }\n      requirements: [ { lrms: nowhere } ]\n',
        '    job:\n      type: tosca.nodes.indigo.Container.Application.Docker.Chronos\n      properties: { schedule: R0/2015-12-25T17:22:00Z/PT1M, retries: many, command: echo }\n      requirements: [ { host: rt } ]\n    rt:\n      type: tosca.nodes.indigo.Container.Runtime.Docker\n',
        '    m:\n      type: tosca.nodes.indigo.LRMS.FrontEnd.Mesos\n      properties: { mesos_masters_list: [ a ], enable_chronos: maybe }\n',
      ];
      for (const body of bodies) {
        const text = template(body);
        const a = verdict(withFile(text));
        assert.equal(a.valid, false, body);
        assert.deepEqual(verdict(withBuiltins(text)), a, body);
      }
    });
  });
});
