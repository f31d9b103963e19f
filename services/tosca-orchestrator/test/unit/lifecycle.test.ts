// Lifecycle operations as the domain plans and runs them (no instances: records played by
// hand): TOSCA's order, where each runs, relationship operations per pair of instances and on
// scaling, what an update reruns, inputs resolved when they run, what stops a deployment.
import { strict as assert } from 'node:assert';
import { strToU8, zipSync } from 'fflate';
import { applyPlan, nextSteps, type DeploymentRecord } from '../../src/domain/deployment';
import { applyLifecycle, operationEnvironment, outputTail, parseOutputs } from '../../src/domain/lifecycle';
import { lifecyclePlan } from '../../src/domain/lifecycle-plan';
import { plan, type Existing } from '../../src/domain/plan';
import { templateFiles } from '../../src/domain/template-files';
import { processTemplate } from '../../src/domain/validate';
import { exampleTemplate } from '../mesh';

// The guestbook example and the scripts beside it.
const { files: scripts, content } = exampleTemplate('guestbook', 'guestbook.yaml');
const guestbookText = content.yaml;

const topologyOf = (text: string, inputs: Record<string, unknown>, files = scripts) => {
  const r = processTemplate({ text, fileName: 'guestbook.yaml', files, inputs });
  assert.ok(r.valid, JSON.stringify(r.diagnostics.filter((d) => d.severity === 'error')));
  return r.topology!;
};

function newRecord(): DeploymentRecord {
  const now = new Date().toISOString();
  return {
    ...{ id: 'dep-1', project: 'physics', user: 'alice', inputs: {}, phase: 'PENDING', reason: '', keepOnFailure: false },
    ...{ requestId: '', createTime: now, updateTime: now, operation: '', generation: 0, action: 'create' },
    template: { yaml: guestbookText, fileName: 'guestbook.yaml', files: scripts },
    ...{ instances: {}, volumes: {}, attachments: {}, nodes: [], outputs: {} },
  };
}

/** The record deployed (or updated) to `inputs`, its instances running with addresses 10.0.0.<n>. */
function deployed(record: DeploymentRecord, text: string, inputs: Record<string, unknown>, files = scripts) {
  const topology = topologyOf(text, inputs, files);
  const existing: Existing = new Map();
  for (const [key, i] of Object.entries(record.instances))
    existing.set(i.spec.node, [...(existing.get(i.spec.node) ?? []), { key, instanceId: i.claimId }]);
  const instances = plan(topology, existing);
  applyPlan(record, instances);
  const built = lifecyclePlan(topology, instances, files, 'guestbook.yaml');
  applyLifecycle(record, built);
  Object.values(record.instances).forEach((i, n) => {
    if (i.state !== 'wanted' && i.state !== 'running') return;
    Object.assign(i, { state: 'running', claimId: i.claimId ?? `i-${i.spec.key}`, addresses: [{ network: 'p', ip: `10.0.0.${n + 1}` }] });
  });
  return built;
}

/** Runs every operation nextSteps offers, in rounds (each succeeds); the rounds' keys. */
function runAll(record: DeploymentRecord): string[][] {
  const rounds: string[][] = [];
  for (let i = 0; i < 50; i++) {
    const ready = nextSteps(record)
      .steps.filter((s) => s.kind === 'runOperation')
      .map((s) => s.key);
    if (!ready.length) break;
    for (const key of ready)
      Object.assign(record.lifecycle![key]!, { state: 'done', outputs: key.startsWith('web@') ? { DOC_ROOT: '/srv/www' } : {} });
    rounds.push(ready);
  }
  return rounds;
}

const name = (key: string) => key.replace(/@[^:[]+/, '').replace(/\[.*\]/, '');

describe('lifecycle operations', () => {
  it('the guestbook: TOSCA order per node, a node after what it requires, each in the instance hosting it', () => {
    const record = newRecord();
    const built = deployed(record, guestbookText, { image: 'busybox' });
    assert.deepEqual(built.problems, []);
    const rounds = runAll(record).map((r) => r.map(name).sort());
    assert.deepEqual(rounds, [
      ['dbms:Standard.create', 'web:Standard.create'],
      ['dbms:Standard.start', 'web:Standard.start'],
      ['db:Standard.create'],
      ['db:Standard.configure'],
      ['guestbook:Configure.pre_configure_source'],
      ['guestbook:Standard.configure'],
    ]);
    assert.equal(nextSteps(record).phase, 'DEPLOYED');
    const ops = Object.values(record.lifecycle!).map((l) => l.op);
    assert.deepEqual(
      ops.filter((o) => o.node === 'guestbook').map((o) => [o.operation, o.instance]),
      [
        ['configure', 'server-0'],
        ['delete', 'server-0'],
        ['pre_configure_source', 'server-0'],
      ],
    );
  });

  it('undeploying runs stop and delete after what requires the node, and only where it deployed; instances go after their software', () => {
    const record = newRecord();
    deployed(record, guestbookText, { image: 'busybox' });
    runAll(record);
    // The guestbook's configure never ran (as if it had failed before it).
    record.lifecycle!['guestbook@server-0:Standard.configure']!.state = 'pending';
    record.lifecycle!['guestbook@server-0[guestbook.database -> db:server-0>dbserver-0]:Configure.pre_configure_source']!.state = 'pending';
    for (const i of Object.values(record.instances)) i.state = 'unwanted';
    record.action = 'delete';
    const first = nextSteps(record).steps;
    assert.deepEqual(first.map((s) => `${s.kind} ${'key' in s ? name(s.key) : ''}`).sort(), [
      'runOperation dbms:Standard.stop',
      'skipOperation guestbook:Standard.delete',
    ]);
    assert.ok(!first.some((s) => s.kind === 'cancelClaim'), 'no instance goes before its software');
    record.lifecycle!['guestbook@server-0:Standard.delete']!.state = 'skipped';
    record.lifecycle!['dbms@dbserver-0:Standard.stop']!.state = 'done';
    const second = nextSteps(record).steps.map((s) => `${s.kind} ${s.key}`);
    // (the database's server goes after the guestbook's, in reverse dependency order)
    assert.deepEqual(second, ['runOperation web@server-0:Standard.stop']);
  });

  it('an update reruns configure of the node whose property changed and of what requires it, in that order, nothing else', () => {
    const record = newRecord();
    deployed(record, guestbookText, { image: 'busybox' });
    runAll(record);
    const changed = guestbookText.replace('name: guests', 'name: visitors');
    record.generation++;
    record.action = 'update';
    deployed(record, changed, { image: 'busybox' });
    const pending = Object.entries(record.lifecycle!)
      .filter(([, l]) => l.state === 'pending' && l.op.direction === 'deploy')
      .map(([k]) => name(k));
    assert.deepEqual(pending.sort(), ['db:Standard.configure', 'guestbook:Standard.configure']);
    assert.deepEqual(
      runAll(record).map((r) => r.map(name)),
      [['db:Standard.configure'], ['guestbook:Standard.configure']],
    );
    // The new value is what the rerun reads.
    assert.equal(record.lifecycle!['db@dbserver-0:Standard.configure']!.op.inputs.DB_NAME, 'visitors');
  });

  it('a relationship operation runs per pair of instances: a target that scales out gets add_target from each source, one that scales in remove_target', () => {
    const text = guestbookText
      .replace('topology_template:\n  inputs:\n', 'topology_template:\n  inputs:\n    dbs: { type: integer, default: 1 }\n')
      .replace(
        '        Configure:\n          pre_configure_source:',
        '        Configure:\n          add_target: scripts/app/connect.sh\n          remove_target: scripts/app/connect.sh\n          pre_configure_source:',
      )
      .replace(
        '    dbserver:\n      type: tosca.nodes.indigo.Compute\n      capabilities:\n',
        '    dbserver:\n      type: tosca.nodes.indigo.Compute\n      capabilities:\n        scalable: { properties: { count: { get_input: dbs } } }\n',
      );
    assert.notEqual(text.indexOf('add_target'), -1);
    assert.notEqual(text.indexOf('count: { get_input: dbs }'), -1);
    const record = newRecord();
    deployed(record, text, { image: 'busybox', dbs: 1 });
    runAll(record);
    const addTargets = () =>
      Object.entries(record.lifecycle!)
        .filter(([, l]) => l.op.operation === 'add_target')
        .map(([k, l]) => `${k.replace(/^.*:(server-0>dbserver-\d).*$/, '$1')} ${l.state}`);
    assert.deepEqual(addTargets(), ['server-0>dbserver-0 done']);
    record.generation++;
    record.action = 'update';
    deployed(record, text, { image: 'busybox', dbs: 2 });
    assert.deepEqual(addTargets().sort(), ['server-0>dbserver-0 done', 'server-0>dbserver-1 pending']);
    const rounds = runAll(record).flat().map(name);
    // The new database server's software first, then add_target; nothing else is configured again.
    assert.deepEqual(rounds, [
      'dbms:Standard.create',
      'dbms:Standard.start',
      'db:Standard.create',
      'db:Standard.configure',
      'guestbook:Configure.add_target',
    ]);
    const late = Object.values(record.lifecycle!).find(
      (l) => l.op.operation === 'pre_configure_source' && l.op.involves[1] === 'dbserver-1',
    )!;
    assert.equal(late.state, 'skipped');
    assert.match(late.reason!, /configured before this target existed/);
    // Scaling in: the source's remove_target for the going target and the target's stop run
    // before that instance goes; nothing of the one that stays.
    record.generation++;
    deployed(record, text, { image: 'busybox', dbs: 1 });
    const steps = nextSteps(record).steps.map((s) => `${s.kind} ${s.key}`);
    assert.deepEqual(steps.sort(), [
      'runOperation dbms@dbserver-1:Standard.stop',
      'runOperation guestbook@server-0[guestbook.database -> db:server-0>dbserver-1]:Configure.remove_target',
    ]);
  });

  it('inputs resolve when the operation runs: its own instance’s address, operation outputs; unknown ones wait', () => {
    const record = newRecord();
    deployed(record, guestbookText, { image: 'busybox' });
    const key = 'guestbook@server-0[guestbook.database -> db:server-0>dbserver-0]:Configure.pre_configure_source';
    const connect = record.lifecycle![key]!.op;
    const db = record.instances['dbserver-0']!.addresses[0]!.ip;
    assert.deepEqual(operationEnvironment(record, connect).environment, {
      DB_HOST: db,
      DB_PORT: '8081',
      DB_NAME: 'guests',
      CONF: '/etc/guestbook/database.url',
    });
    const configure = record.lifecycle!['guestbook@server-0:Standard.configure']!.op;
    assert.equal(operationEnvironment(record, configure).unresolved, 'DOC_ROOT', 'web’s create has not reported yet');
    runAll(record);
    assert.equal(operationEnvironment(record, configure).environment.DOC_ROOT, '/srv/www');
  });

  it('SELF in a relationship’s operation is the relationship: its properties, its operations’ outputs', () => {
    const text = guestbookText
      .replace(
        '      type: tosca.relationships.ConnectsTo\n      interfaces:',
        '      type: tosca.relationships.ConnectsTo\n      properties: { credential: { user: guest, token: s3cret } }\n      interfaces:',
      )
      .replace(
        '              CONF: /etc/guestbook/database.url\n\n',
        '              CONF: /etc/guestbook/database.url\n              DB_USER: { get_property: [SELF, credential, user] }\n              EARLIER: { get_operation_output: [SELF, Configure, pre_configure_source, DB_URL] }\n\n',
      );
    // (Read whatever the validator says of SELF there: this is about what the operation gets.)
    const topology = processTemplate({ text, fileName: 'guestbook.yaml', files: scripts, inputs: { image: 'busybox' } }).topology!;
    const op = lifecyclePlan(topology, plan(topology), scripts, 'guestbook.yaml').ops.find((o) => o.operation === 'pre_configure_source')!;
    assert.equal(op.inputs.DB_USER, 'guest');
    assert.deepEqual(op.inputs.EARLIER, { get_operation_output: ['guestbook_to_db', 'Configure', 'pre_configure_source', 'DB_URL'] });
  });

  it('a CSAR’s scripts are found in the archive, beside its entry definitions', () => {
    const archive = zipSync({
      'TOSCA-Metadata/TOSCA.meta': strToU8('TOSCA-Meta-File-Version: 1.0\nEntry-Definitions: app/guestbook.yaml\n'),
      'app/guestbook.yaml': strToU8(guestbookText),
      ...Object.fromEntries(Object.entries(scripts).map(([path, text]) => [`app/${path}`, strToU8(text)])),
    });
    const { files, mainFile } = templateFiles({ csar: Buffer.from(archive).toString('base64'), fileName: 'guestbook.csar', files: {} });
    assert.equal(mainFile, 'app/guestbook.yaml');
    const topology = topologyOf(guestbookText, { image: 'busybox' });
    const built = lifecyclePlan(topology, plan(topology), files, mainFile);
    assert.deepEqual(built.problems, []);
    const create = built.ops.find((o) => o.node === 'web' && o.operation === 'create')!;
    assert.equal(create.implementation, 'app/scripts/httpd/create.sh');
    assert.equal(files[create.implementation], scripts['scripts/httpd/create.sh']);
  });

  it('a missing script stops the deployment before anything is made; outputs and tails are bounded', () => {
    const { 'scripts/db/create.sh': _, ...without } = scripts;
    const topology = topologyOf(guestbookText, { image: 'busybox' }, without);
    const built = lifecyclePlan(topology, plan(topology), without, 'guestbook.yaml');
    assert.deepEqual(built.problems, [
      { node: 'db', message: "node db: Standard.create: implementation scripts/db/create.sh is not among the template's files" },
    ]);
    // What Lapis does not run is said, not run (and needs no file).
    const elsewhere = guestbookText.replace('implementation: scripts/httpd/create.sh', 'implementation: https://example.org/create.sh');
    const record = newRecord();
    deployed(record, elsewhere, { image: 'busybox' });
    const skipped = Object.values(record.lifecycle!).filter((l) => l.state === 'skipped');
    assert.deepEqual(
      skipped.map((l) => [l.op.node, l.op.operation, l.reason]),
      [
        [
          'web',
          'create',
          'https://example.org/create.sh is fetched from the network, which Lapis does not do: put the file beside the template',
        ],
      ],
    );
    assert.deepEqual(parseOutputs('A=1\nnot an output\nB_2=x=y\n=z\n'), { A: '1', B_2: 'x=y' });
    const long = Array.from({ length: 500 }, (_, i) => `line ${i}`).join('\n');
    const tail = outputTail(long);
    assert.ok(tail.length <= 2048 && tail.startsWith('line ') && tail.endsWith('line 499'));
  });
});
