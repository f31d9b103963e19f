// The offline command line and CSAR archives.
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { strToU8, zipSync } from 'fflate';
import { runCli } from '../../src/cli';
import { processTemplate } from '../../src/domain/validate';
import { conformanceDir, indigoMirror, serviceDir } from '../helpers';

const caseFile = (name: string) => join(conformanceDir, name, 'template.yaml');

describe('command line', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'lapis-tosca-cli-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('validate: a valid template exits 0 and prints the deployment order', () => {
    const r = runCli(['validate', caseFile('dependency-order')], {});
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /valid; deployment order: disk, server, dbms, db, web, app/);
  });

  it('validate: an invalid template exits 1 with file:line:col: messages', () => {
    const r = runCli(['validate', caseFile('error-dependency-cycle')], {});
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error-dependency-cycle\/template\.yaml:4:5: error: dependency cycle: a -> b -> c -> a \[DEPENDENCY_CYCLE\]/);
  });

  it('validate dir/t.yaml reads its relative imports from dir, once (not dir/dir)', () => {
    const folder = join(dir, 'nested');
    mkdirSync(join(folder, 'types'), { recursive: true });
    writeFileSync(
      join(folder, 'types', 'app.yaml'),
      'tosca_definitions_version: tosca_simple_yaml_1_3\nnode_types:\n  my.App: { derived_from: tosca.nodes.Root }\n',
    );
    writeFileSync(
      join(folder, 't.yaml'),
      'tosca_definitions_version: tosca_simple_yaml_1_3\nimports: [types/app.yaml]\ntopology_template:\n  node_templates:\n    app: { type: my.App }\n',
    );
    // From the folder above (a path with a directory), from elsewhere, and by absolute path.
    const before = process.cwd();
    try {
      process.chdir(dir);
      for (const file of ['nested/t.yaml', join(folder, 't.yaml')]) {
        const r = runCli(['validate', file], {});
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /nested\/t\.yaml: valid/);
      }
    } finally {
      process.chdir(before);
    }
    assert.equal(runCli(['validate', relative(process.cwd(), join(folder, 't.yaml'))], {}).code, 0);
  });

  it('validate FILE...: one verdict per file; exit 1 when any is invalid', () => {
    const good = caseFile('dependency-order');
    const bad = caseFile('error-dependency-cycle');
    const r = runCli(['validate', good, bad, caseFile('networks')], {});
    assert.equal(r.code, 1);
    assert.equal(r.stdout.match(/: valid; deployment order/g)?.length, 2, r.stdout);
    assert.match(r.stderr, /error-dependency-cycle\/template\.yaml: invalid \(1 errors\)/);
    assert.equal(runCli(['validate', good, caseFile('networks')], {}).code, 0);
    const json = JSON.parse(runCli(['validate', good, bad, '--json'], {}).stdout) as { file: string; valid: boolean }[];
    assert.deepEqual(
      json.map((v) => v.valid),
      [true, false],
    );
    assert.match(json[1]!.file, /error-dependency-cycle/);
    // A file that cannot be read is that file's verdict, not the end of the others.
    const missing = runCli(['validate', join(dir, 'absent.yaml'), good], {});
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /absent\.yaml: cannot read/);
    assert.match(missing.stdout, /dependency-order\/template\.yaml: valid/);
    assert.equal(runCli(['translate', '--to', 'hot', good, good], {}).code, 2, 'translate takes one file');
  });

  it('validate --input NAME=VALUE: text converted to the declared type', () => {
    const r = runCli(
      ['validate', caseFile('error-inputs'), '--input', 'cpus=3', '--input', 'mem=2 GB', '--input', 'cores=1', '--quiet'],
      {},
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /:4:5: error: input cpus: 3 must be one of \[1,2,4\]/);
    assert.doesNotMatch(r.stderr, /required input "mem"/);
    const ok = runCli(['validate', caseFile('error-inputs'), '--input', 'cpus=2', '--input', 'mem=2 GB', '--json'], {});
    const verdict = JSON.parse(ok.stdout) as { valid: boolean; diagnostics: { message: string }[] };
    assert.ok(!verdict.diagnostics.some((d) => /^input (cpus|mem)\b/.test(d.message)), ok.stdout);
    assert.equal(runCli(['validate', caseFile('error-inputs'), '--input', 'cpus'], {}).code, 2);
  });

  it('a bad inputs file is named with its line and column', () => {
    const list = join(dir, 'list.yaml');
    writeFileSync(list, '- a\n- b\n');
    assert.match(
      runCli(['validate', caseFile('error-inputs'), '--inputs', list], {}).stderr,
      /list\.yaml:1:1: error: an inputs file must be a YAML map/,
    );
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'cpus: 1\nmem: [ 1\n');
    const r = runCli(['validate', caseFile('error-inputs'), '--inputs', broken], {});
    assert.equal(r.code, 2);
    assert.match(r.stderr, /broken\.yaml:\d+:\d+: error: .*\[YAML_SYNTAX\]/);
  });

  it('validate starts without gRPC, NATS, telemetry, the YAML library, the zip reader or the translators', () => {
    const cli = resolve(__dirname, '..', '..', 'src', 'cli.js');
    const script = `process.on('exit', () => process.stderr.write('\\nMODULES ' + JSON.stringify(Object.keys(require.cache))));`;
    const hook = join(dir, 'modules-hook.js');
    writeFileSync(hook, script);
    const r = spawnSync(process.execPath, ['-r', hook, cli, 'validate', caseFile('dependency-order'), caseFile('networks')], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const modules = JSON.parse(r.stderr.split('MODULES ')[1]!) as string[];
    const heavy = modules.filter((m) =>
      /node_modules\/(@grpc|nats|@nats-io|@opentelemetry|pino|yaml|fflate)\/|domain\/translate\/|@lapis\/(platform|proto)/.test(m),
    );
    assert.deepEqual(heavy, []);
  });

  it('validate --inputs: required inputs and input constraints are checked', () => {
    const inputs = join(dir, 'inputs.yaml');
    writeFileSync(inputs, 'cpus: 3\n');
    const r = runCli(['validate', caseFile('error-inputs'), '--inputs', inputs, '--quiet'], {});
    assert.equal(r.code, 1);
    assert.match(r.stderr, /:4:5: error: input cpus: 3 must be one of \[1,2,4\]/);
    assert.match(r.stderr, /:5:5: error: required input "mem" has no value and no default/);
  });

  it('validate resolves URL imports through LAPIS_TOSCA_IMPORT_MIRROR', () => {
    const r = runCli(['validate', caseFile('indigo-galaxy-portal'), '--json'], { LAPIS_TOSCA_IMPORT_MIRROR: indigoMirror() });
    assert.equal(r.code, 0, r.stdout);
    const out = JSON.parse(r.stdout) as { valid: boolean; diagnostics: { file: string; code: string }[] };
    assert.ok(
      out.diagnostics.some((d) => d.file.startsWith('https://raw.githubusercontent.com/indigo-dc/') && d.code === 'DUPLICATE_KEY'),
      'the mirrored INDIGO file was read',
    );
  });

  it('translate --to hot|radl|k8s', () => {
    assert.match(runCli(['translate', '--to', 'hot', caseFile('networks')], {}).stdout, /OS::Neutron::Port/);
    assert.match(runCli(['translate', '--to', 'radl', caseFile('networks')], {}).stdout, /system vm \(/);
    assert.match(runCli(['translate', '--to=k8s', caseFile('docker-app-volume')], {}).stdout, /kind: Deployment/);
    assert.equal(runCli(['translate', '--to', 'cloudformation', caseFile('networks')], {}).code, 2);
  });

  it('translate reads the scripts beside the template into the RADL, and says on stderr what it leaves out', () => {
    const guestbook = relative(process.cwd(), resolve(serviceDir, '..', '..', 'examples', 'tosca', 'guestbook', 'guestbook.yaml'));
    const radl = runCli(['translate', '--to', 'radl', guestbook, '--input', 'image=busybox'], {});
    assert.equal(radl.code, 0, radl.stderr);
    assert.match(radl.stdout, /^configure web_server_conf \(\n@begin\n[\s\S]*mkdir -p "\$DOC_ROOT"[\s\S]*^@end$/m);
    assert.match(radl.stderr, /guestbook\.yaml:\d+:5: warning: node guestbook: left out of the RADL: .* \[NOT_TRANSLATED\]/);
    const k8s = runCli(['translate', '--to', 'k8s', guestbook, '--input', 'image=busybox'], {});
    assert.match(k8s.stderr, /warning: node web: its operations \(Standard\.create, Standard\.start\) are not translated/);
  });

  it('misuse exits 2 with the usage', () => {
    const r = runCli(['frobnicate'], {});
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage:/);
  });

  it('runs as a program (node dist/src/cli.js)', () => {
    const cli = resolve(__dirname, '..', '..', 'src', 'cli.js');
    let code = 0;
    try {
      execFileSync(process.execPath, [cli, 'validate', caseFile('error-unknown-types')], { stdio: 'pipe' });
    } catch (error) {
      code = (error as { status: number }).status;
    }
    assert.equal(code, 1);
  });

  describe('CSAR archives', () => {
    const relative = readFileSync(join(conformanceDir, 'relative-imports', 'template.yaml'), 'utf8');
    const types = readFileSync(join(conformanceDir, 'relative-imports', 'types', 'more.yaml'), 'utf8');
    const app = readFileSync(join(conformanceDir, 'relative-imports', 'types', 'app_types.yaml'), 'utf8').replace('  - missing.yaml\n', '');

    it('with TOSCA-Metadata/TOSCA.meta: the entry definitions and their imports', () => {
      const csar = zipSync({
        'TOSCA-Metadata/TOSCA.meta': strToU8(
          'TOSCA-Meta-File-Version: 1.0\nCSAR-Version: 1.1\nCreated-By: test\nEntry-Definitions: Definitions/main.yaml\n',
        ),
        'Definitions/main.yaml': strToU8(relative.replace('flavour: vanilla', 'flavour: chocolate')),
        'Definitions/types/app_types.yaml': strToU8(app),
        'Definitions/types/more.yaml': strToU8(types.replace('default: 11', 'default: 5')),
      });
      const r = processTemplate({ csar, fileName: 'app.csar' });
      assert.equal(r.valid, true, JSON.stringify(r.diagnostics));
      assert.deepEqual(r.topology?.order, ['vm', 'app']);
      const file = join(dir, 'app.csar');
      writeFileSync(file, csar);
      assert.equal(runCli(['validate', file], {}).code, 0);
    });

    it('without metadata: the one top-level template; errors point into the archive', () => {
      const csar = zipSync({ 'service.yaml': strToU8(readFileSync(caseFile('error-unknown-fields'), 'utf8')) });
      const r = processTemplate({ csar });
      assert.equal(r.valid, false);
      assert.ok(r.diagnostics.some((d) => d.file === 'service.yaml' && d.line === 8 && d.code === 'UNKNOWN_FIELD'));
    });

    it('a broken archive is an error, not a crash', () => {
      assert.equal(processTemplate({ csar: strToU8('not a zip') }).diagnostics[0]?.code, 'INVALID_CSAR');
      const two = zipSync({ 'a.yaml': strToU8('x: 1'), 'b.yaml': strToU8('y: 2') });
      assert.match(processTemplate({ csar: two }).diagnostics[0]!.message, /exactly one top-level YAML file/);
    });
  });
});
