// Software in the RADL and Kubernetes translations, on the example templates (examples/tosca)
// and a template of our own (test/fixtures/software-translation): IM's configure recipes and
// contextualize steps, init containers where Kubernetes has a place for the software, and a
// warning at every node a translation leaves (partly) out, never silence.
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import type { Diagnostic } from '../../src/domain/diagnostics';
import { translation, type Target } from '../../src/domain/translate';
import { processTemplate } from '../../src/domain/validate';
import { exampleTemplate } from '../mesh';

const fixture = resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'software-translation');

function translated(template: { content: { yaml: string }; fileName: string; files: Record<string, string> }, target: Target, inputs = {}) {
  const r = processTemplate({ text: template.content.yaml, fileName: template.fileName, files: template.files, inputs });
  assert.ok(r.valid, JSON.stringify(r.diagnostics.filter((d) => d.severity === 'error')));
  return translation(r.topology!, target);
}

/** The fixture as lapisctl sends it: the template, and the files beside it. */
function fixtureTemplate() {
  const files: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name !== 'app.yaml') files[relative(fixture, path)] = readFileSync(path, 'utf8');
    }
  };
  walk(fixture);
  return { content: { yaml: readFileSync(join(fixture, 'app.yaml'), 'utf8') }, fileName: 'app.yaml', files };
}

/** The recipe of a RADL configure, read back as YAML. */
function recipe(radl: string, name: string): Record<string, unknown>[] {
  const found = new RegExp(`^configure ${name} \\(\\n@begin\\n([\\s\\S]*?)@end\\n\\)$`, 'm').exec(radl);
  assert.ok(found, `no configure ${name} in:\n${radl}`);
  return parse(found[1]!) as Record<string, unknown>[];
}

const notes = (warnings: Diagnostic[]) => warnings.map((w) => [w.code, w.path.replace('topology_template.node_templates.', ''), w.message]);

describe('software in the translations', () => {
  describe('RADL (IM)', () => {
    it('a configure per node with its scripts, in TOSCA order, and contextualize steps by depth (guestbook)', () => {
      const { output, warnings } = translated(exampleTemplate('guestbook', 'guestbook.yaml'), 'radl', { image: 'busybox' });
      assert.deepEqual(
        /^contextualize \(\n([\s\S]*?)\n\)$/m.exec(output)?.[1]?.split('\n'),
        [
          '  system server configure web_server_conf step 1',
          '  system dbserver configure dbms_dbserver_conf step 1',
          '  system dbserver configure db_dbserver_conf step 2',
          '  system server configure guestbook_server_conf step 3',
        ],
        output,
      );
      assert.ok(output.indexOf('contextualize (') < output.indexOf('deploy server 1'));
      const web = recipe(output, 'web_server_conf');
      const tasks = (web[0]!.tasks as Record<string, Record<string, unknown>>[]).filter((t) => t.shell);
      assert.deepEqual(
        tasks.map((t) => [t.name, t.shell, (t.args as { chdir: string }).chdir]),
        [
          ['web_create', '/tmp/lapis_tosca/web/scripts/httpd/create.sh', '/tmp/lapis_tosca/web/scripts/httpd'],
          ['web_start', '/tmp/lapis_tosca/web/scripts/httpd/start.sh', '/tmp/lapis_tosca/web/scripts/httpd'],
        ],
      );
      assert.deepEqual(tasks[1]!.environment, {
        PORT: '8080',
        DOC_ROOT: '/srv/www',
        NAME: 'web',
        LAPIS_OPERATION_OUTPUTS: '/tmp/lapis_tosca/web/start.outputs',
      });
      // The script and its dependency are copied in, their text as beside the template.
      const copies = (web[0]!.tasks as Record<string, { dest: string; content: string }>[]).filter((t) => t.copy).map((t) => t.copy!);
      assert.deepEqual(
        copies.map((c) => c.dest),
        [
          '/tmp/lapis_tosca/web/scripts/httpd/create.sh',
          '/tmp/lapis_tosca/web/scripts/httpd/start.sh',
          '/tmp/lapis_tosca/web/scripts/common.sh',
        ],
      );
      assert.equal(copies[2]!.content, exampleTemplate('guestbook', 'guestbook.yaml').files['scripts/common.sh']);
      // The relationship's pre_configure_source runs before configure; the database's address as IM gives it.
      const app = (recipe(output, 'guestbook_server_conf')[0]!.tasks as Record<string, unknown>[]).filter((t) => t.shell);
      assert.deepEqual(
        app.map((t) => t.name),
        ['guestbook_pre_configure_source', 'guestbook_configure'],
      );
      assert.equal((app[0]!.environment as Record<string, string>).DB_HOST, "{{ hostvars[groups['dbserver'][0]]['IM_NODE_PRIVATE_IP'] }}");
      // What is known only when it runs is said, at the node.
      assert.deepEqual(notes(warnings), [
        [
          'NOT_TRANSLATED',
          'guestbook',
          'node guestbook: left out of the RADL: Standard.configure: input DOC_ROOT known only when it runs, left out',
        ],
      ]);
      assert.equal(warnings[0]!.line, 75);
    });

    it('a playbook’s plays without hosts, the inputs their variables (ansible-motd)', () => {
      const { output, warnings } = translated(exampleTemplate('ansible-motd', 'motd.yaml'), 'radl', { image: 'debian' });
      const plays = recipe(output, 'motd_host_conf');
      assert.equal(plays.length, 1);
      assert.equal(plays[0]!.hosts, undefined);
      assert.deepEqual(plays[0]!.vars, { greeting: 'Hello from Ansible', address: '{{ IM_NODE_PRIVATE_IP }}', ports: [80, 443] });
      assert.deepEqual(
        (plays[0]!.tasks as { name: string }[]).map((t) => t.name),
        ['The message of the day', 'Reported to the orchestrator'],
      );
      assert.match(output, /^ {2}system host configure motd_host_conf step 1$/m);
      assert.deepEqual(notes(warnings), [
        [
          'NOT_TRANSLATED',
          'motd',
          "node motd: left out of the RADL: Standard.configure: playbooks/templates/motd.j2 not carried: IM reads a recipe's files on its own side",
        ],
      ]);
    });

    it('an operation whose files are not with the template is said, not guessed', () => {
      const template = exampleTemplate('guestbook', 'guestbook.yaml');
      delete template.files['scripts/common.sh'];
      const { output, warnings } = translated(template, 'radl', { image: 'busybox' });
      assert.doesNotMatch(output, /name: web_start/);
      assert.match(output, /name: web_create/);
      assert.ok(
        warnings.some((w) =>
          w.message.startsWith('node web: left out of the RADL: Standard.start: scripts/common.sh not among the template'),
        ),
        JSON.stringify(warnings),
      );
    });
  });

  describe('Kubernetes manifests', () => {
    it('software hosted on an application: create and configure as init containers of its pods; the rest said per node', () => {
      const { output, warnings } = translated(fixtureTemplate(), 'k8s');
      const docs = parseAllDocuments(output).map((d) => d.toJS() as Record<string, any>);
      const deployment = docs.find((d) => d.kind === 'Deployment' && d.metadata.name === 'app')!;
      assert.equal(deployment.metadata.annotations['lapis.tosca/software'], 'seed: Standard.create, Standard.configure as init containers');
      const pod = deployment.spec.template.spec;
      assert.deepEqual(
        pod.initContainers.map((c: Record<string, unknown>) => [c.name, c.image, c.command]),
        [
          ['seed-create', 'busybox:1.36', ['/opt/lapis/tosca/seed/scripts/create.sh']],
          ['seed-configure', 'busybox:1.36', ['/bin/sh', '/opt/lapis/tosca/seed/scripts/configure.sh']],
        ],
      );
      assert.deepEqual(pod.initContainers[1].env.slice(0, 2), [
        { name: 'GREETING', value: 'hello' },
        { name: 'PORTS', value: '[80,443]' },
      ]);
      assert.equal(pod.initContainers[1].workingDir, '/opt/lapis/tosca/seed/scripts');
      // The scripts (and the dependency the configure script sources) from a ConfigMap, at their paths.
      const files = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'tosca-seed')!;
      const volume = pod.volumes.find((v: { name: string }) => v.name === 'tosca-seed');
      assert.deepEqual(
        volume.configMap.items.map((i: { key: string; path: string }) => [i.path, files.data[i.key]]),
        ['scripts/create.sh', 'scripts/configure.sh', 'scripts/lib/common.sh'].map((p) => [p, fixtureTemplate().files[p]]),
      );
      assert.deepEqual(notes(warnings), [
        [
          'NOT_TRANSLATED',
          'seed',
          'node seed: left out of the manifests: Standard.start: runs once its container has started, which no init container does',
        ],
        ['NOT_TRANSLATED', 'server', 'node server: not translated: Kubernetes manifests are made for container applications'],
        [
          'NOT_TRANSLATED',
          'agent',
          'node agent: its operations (Standard.create) are not translated: it is hosted on compute server, which has no Kubernetes counterpart here',
        ],
      ]);
    });

    it('no software node of the guestbook goes unsaid', () => {
      const { warnings } = translated(exampleTemplate('guestbook', 'guestbook.yaml'), 'k8s', { image: 'busybox' });
      assert.deepEqual(warnings.map((w) => w.path.replace('topology_template.node_templates.', '')).sort(), [
        'db',
        'dbms',
        'dbserver',
        'guestbook',
        'server',
        'web',
      ]);
      assert.ok(warnings.every((w) => w.code === 'NOT_TRANSLATED' && w.severity === 'warning' && w.line > 1));
    });
  });
});
