// Software in the Heat translation, as heat-translator 3.5.0 (PyPI) makes it for the same
// template (test/fixtures/hot-software): a SoftwareConfig and a SoftwareDeployment per create,
// configure and start operation, chained, on the server that hosts the node; the template's
// parameters and the deployments' input values as heat-translator has them.
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { translate } from '../../src/domain/translate';
import { processTemplate } from '../../src/domain/validate';

const fixture = resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'hot-software');

describe('Heat translation of software (heat-translator’s shape)', () => {
  it('a config and a deployment per operation, chained, a node after what it requires', () => {
    const files = Object.fromEntries(
      readdirSync(join(fixture, 'scripts')).map((f) => [`scripts/${f}`, readFileSync(join(fixture, 'scripts', f), 'utf8')]),
    );
    const r = processTemplate({ text: readFileSync(join(fixture, 'web-db.yaml'), 'utf8'), fileName: 'web-db.yaml', files });
    assert.ok(r.valid, JSON.stringify(r.diagnostics));
    const hot = parse(translate(r.topology!, 'hot')) as {
      resources: Record<string, { type: string; properties: Record<string, unknown>; depends_on?: string[] }>;
    };
    const byType = (type: string) =>
      Object.keys(hot.resources)
        .filter((k) => hot.resources[k]!.type === type)
        .sort();
    assert.deepEqual(byType('OS::Nova::Server'), ['dbserver', 'server']);
    assert.deepEqual(byType('OS::Heat::SoftwareConfig'), [
      'app_configure_config',
      'db_configure_config',
      'dbms_create_config',
      'dbms_start_config',
      'web_create_config',
      'web_start_config',
    ]);
    assert.deepEqual(
      byType('OS::Heat::SoftwareDeployment'),
      byType('OS::Heat::SoftwareConfig').map((c) => c.replace(/_config$/, '_deploy')),
    );
    assert.deepEqual(hot.resources.dbms_create_config!.properties, { config: { get_file: 'scripts/dbms_install.sh' }, group: 'script' });
    const app = hot.resources.app_configure_deploy!;
    assert.deepEqual(app.properties.config, { get_resource: 'app_configure_config' });
    assert.deepEqual(app.properties.server, { get_resource: 'server' });
    assert.deepEqual(app.depends_on, ['web_start_deploy', 'db_configure_deploy']);
    assert.deepEqual(hot.resources.dbms_start_deploy!.depends_on, ['dbms_create_deploy']);
    assert.equal(hot.resources.web_create_deploy!.depends_on, undefined, 'its server is a get_resource already');
    // An input a property reads stays the stack's parameter.
    assert.deepEqual(hot.resources.db_configure_deploy!.properties.input_values, {
      db_name: { get_param: 'db_name' },
      db_root_password: 'secret',
    });
  });
});
