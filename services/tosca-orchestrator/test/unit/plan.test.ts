// Deployment planning: what each template becomes, in which order, and what an update changes.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { diff, plan, waves, type Existing } from '../../src/domain/plan';
import { processTemplate } from '../../src/domain/validate';
import { conformanceDir } from '../helpers';

const load = (name: string, inputs?: Record<string, unknown>) => {
  const r = processTemplate({ text: readFileSync(join(conformanceDir, name, 'template.yaml'), 'utf8'), fileName: 'template.yaml', inputs });
  assert.ok(r.valid, JSON.stringify(r.diagnostics.filter((d) => d.severity === 'error')));
  return r.topology!;
};

describe('deployment plan', () => {
  it('a Docker application with a volume: instances per replica, a volume and attachment each', () => {
    const p = plan(load('docker-app-volume'));
    assert.deepEqual(p.problems, []);
    // The VM hosts nothing that runs in a container, so it is an instance too; the container
    // runtime is only where the application runs.
    assert.deepEqual(p.instances.map((i) => i.key).sort(), ['vm-0', 'web-0', 'web-1']);
    const web = p.instances.find((i) => i.key === 'web-0')!;
    assert.equal(web.image, 'nginx:1.27');
    assert.equal(web.cpuMillis, 500);
    assert.equal(web.memoryBytes, 512e6);
    assert.deepEqual(web.ports, [{ containerPort: 80, hostPort: 8080, protocol: 'tcp' }]);
    assert.deepEqual(web.command, ['/bin/sh', '-c', "nginx -g 'daemon off;'"]);
    assert.deepEqual(web.environment, { NGINX_PORT: '80', DATA_DIR: '/data' });
    assert.deepEqual(p.volumes, [{ key: 'data_volume-vm-0', node: 'data_volume', sizeBytes: 10 * 1024 ** 3, filesystem: 'ext4' }]);
    assert.deepEqual(p.attachments, [{ key: 'data_volume-vm-0@vm-0', volume: 'data_volume-vm-0', instance: 'vm-0', mountPath: '/data' }]);
  });

  it('a Slurm cluster: front end first, worker nodes after, none when count is 0', () => {
    const p = plan(load('indigo-slurm-cluster'));
    assert.deepEqual(
      p.instances.map((i) => i.key),
      ['lrms_server-0'],
    );
    const fe = p.instances[0]!;
    assert.equal(fe.image, 'linux-ubuntu-16.04-vmi');
    assert.equal(fe.cpuMillis, 2000);
    assert.equal(fe.memoryBytes, 2e9);
  });

  it('orders instances by what the software on them needs (Galaxy: workers after the front end)', () => {
    const topology = load('indigo-galaxy-portal', { number_of_nodes: 2 });
    const p = plan(topology);
    assert.deepEqual(waves(p), [['lrms_server-0'], ['wn_server-0', 'wn_server-1']]);
    assert.equal(p.volumes.length, 1);
    assert.equal(p.attachments[0]!.mountPath, '/export');
  });

  it('scaling up adds instances and keeps the existing ones', () => {
    const before = plan(load('indigo-galaxy-portal', { number_of_nodes: 1 }));
    const existing: Existing = new Map([
      ['wn_server', [{ key: 'wn_server-0', instanceId: 'i-a' }]],
      ['lrms_server', [{ key: 'lrms_server-0', instanceId: 'i-fe' }]],
    ]);
    const after = plan(load('indigo-galaxy-portal', { number_of_nodes: 3 }), existing);
    const d = diff(before, after);
    assert.deepEqual(
      d.createInstances.map((i) => i.key),
      ['wn_server-1', 'wn_server-2'],
    );
    assert.deepEqual(d.deleteInstances, []);
    assert.deepEqual(d.replaceInstances, []);
    assert.deepEqual(d.createVolumes, []);
  });

  it('scaling down removes what removal_list names, then keeps the rest', () => {
    const text = readFileSync(join(conformanceDir, 'indigo-galaxy-portal', 'template.yaml'), 'utf8').replace(
      'properties: { count: { get_input: number_of_nodes } }',
      'properties: { count: { get_input: number_of_nodes }, removal_list: [ i-b ] }',
    );
    const topo = (n: number) => processTemplate({ text, inputs: { number_of_nodes: n } }).topology!;
    const existing: Existing = new Map([
      [
        'wn_server',
        [
          { key: 'wn_server-0', instanceId: 'i-a' },
          { key: 'wn_server-1', instanceId: 'i-b' },
          { key: 'wn_server-2', instanceId: 'i-c' },
        ],
      ],
    ]);
    const before = plan(topo(3), existing);
    const after = plan(topo(2), existing);
    assert.deepEqual(diff(before, after).deleteInstances, ['wn_server-1']);
    assert.deepEqual(
      after.instances.filter((i) => i.node === 'wn_server').map((i) => i.key),
      ['wn_server-0', 'wn_server-2'],
    );
  });

  it('a changed spec replaces the instance; an unchanged template changes nothing', () => {
    const a = plan(load('indigo-kubernetes-cluster'));
    assert.deepEqual(diff(a, plan(load('indigo-kubernetes-cluster'))), {
      createInstances: [],
      deleteInstances: [],
      replaceInstances: [],
      createVolumes: [],
      deleteVolumes: [],
      attach: [],
      detach: [],
    });
    const b = plan(load('indigo-kubernetes-cluster', { fe_cpus: 4 }));
    assert.deepEqual(
      diff(a, b).replaceInstances.map((i) => i.key),
      ['lrms_server-0'],
    );
  });

  it('reports host amounts no claim could carry', () => {
    const r = processTemplate({
      text: [
        'tosca_definitions_version: tosca_simple_yaml_1_3',
        'topology_template:',
        '  node_templates:',
        '    vm:',
        '      type: tosca.nodes.Compute',
        '      capabilities:',
        '        host: { properties: { num_cpus: 99999999999999999999, mem_size: 9999999999999 TB, disk_size: 1 GB } }',
      ].join('\n'),
      fileName: 'template.yaml',
    });
    assert.ok(r.topology, JSON.stringify(r.diagnostics));
    assert.deepEqual(
      plan(r.topology).problems.filter((p) => /amount/.test(p.message)),
      [
        { node: 'vm', message: 'node vm: host property num_cpus is not an amount any node could have' },
        { node: 'vm', message: 'node vm: host property mem_size is not an amount any node could have' },
      ],
    );
  });

  it('reports nodes without an image', () => {
    const r = processTemplate({
      text: 'tosca_definitions_version: tosca_simple_yaml_1_3\ntopology_template:\n  node_templates:\n    vm: { type: Compute }\n',
    });
    assert.deepEqual(plan(r.topology!).problems, [
      { node: 'vm', message: 'node vm names no image (os capability image, or an image artifact)' },
    ]);
  });
});
