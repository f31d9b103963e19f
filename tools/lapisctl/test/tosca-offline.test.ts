// `lapisctl tosca validate` as a user runs it: several templates in one call, one verdict each,
// and a start-up that loads the validator alone (no gRPC, protobuf, NATS or telemetry: start-up
// is most of what a validation costs). No services are needed.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const main = resolve(__dirname, '..', 'src', 'main.js');

describe('lapisctl tosca validate (offline)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lapisctl-tosca-'));
    writeFileSync(
      join(dir, 'good.yaml'),
      'tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    vm: { type: tosca.nodes.Compute }\n',
    );
    writeFileSync(
      join(dir, 'bad.yaml'),
      'tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    vm: { type: tosca.nodes.NoSuchType }\n',
    );
    writeFileSync(
      join(dir, 'modules.js'),
      "process.on('exit', () => process.stderr.write('\\nMODULES ' + JSON.stringify(Object.keys(require.cache))));",
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const lapisctl = (...args: string[]) =>
    spawnSync(process.execPath, ['-r', join(dir, 'modules.js'), main, ...args], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, LAPIS_TOKEN: '' },
    });

  it('takes several files: one verdict each, exit 1 when any is invalid', () => {
    const r = lapisctl('tosca', 'validate', 'good.yaml', 'bad.yaml', 'good.yaml');
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stdout.match(/^good\.yaml: valid/gm)?.length, 2, r.stdout);
    assert.match(r.stderr, /^bad\.yaml:4:11: error: .*unknown node type "tosca\.nodes\.NoSuchType"/m);
    assert.match(r.stderr, /^bad\.yaml: invalid \(1 errors\)/m);
    assert.equal(lapisctl('tosca', 'validate', 'good.yaml', 'good.yaml').status, 0);
  });

  it('starts without gRPC, protobuf, NATS or telemetry (global options before the command too)', () => {
    for (const argv of [
      ['tosca', 'validate', 'good.yaml'],
      ['-o', 'json', '--timeout', '5', 'tosca', 'validate', 'good.yaml', 'good.yaml'],
    ]) {
      const r = lapisctl(...argv);
      assert.equal(r.status, 0, r.stderr);
      const modules = JSON.parse(r.stderr.split('MODULES ')[1]!) as string[];
      const heavy = modules.filter((m) =>
        /node_modules\/(@grpc|@bufbuild|nats|@nats-io|@opentelemetry|pino)\/|\/(proto|platform)\/dist\//.test(m),
      );
      assert.deepEqual(heavy, [], argv.join(' '));
    }
  });

  it('-o json: a list of verdicts for several files', () => {
    const r = lapisctl('-o', 'json', 'tosca', 'validate', 'good.yaml', 'bad.yaml');
    assert.equal(r.status, 1);
    const verdicts = JSON.parse(r.stdout) as { file: string; valid: boolean }[];
    assert.deepEqual(
      verdicts.map((v) => [v.file, v.valid]),
      [
        ['good.yaml', true],
        ['bad.yaml', false],
      ],
    );
  });

  it('the other commands still load and show their help', () => {
    const r = lapisctl('--help');
    assert.equal(r.status, 0);
    for (const group of ['deployment', 'instance', 'claim', 'tosca']) assert.match(r.stdout, new RegExp(`^  ${group}\\b`, 'm'));
  });
});
