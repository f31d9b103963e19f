// `make up` on a 2-core machine: the example deployment's two 1-CPU instances fill the node,
// and the CPU allocation ratio make up sets lets a new deployment run beside it; the ratio is
// what `lapisctl partition list` shows. Real processes: the mesh as make up starts it.
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { createClient } from '@lapis/platform';
import { ClaimState, type ListClaimsResponse } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import { DeploymentState } from '@lapis/proto/lapis/tosca/v1/tosca';
import { deploy, deployExample } from '../src/example';
import { REPO_ROOT, startMesh, type Mesh } from '../src/mesh';
import { UP_CPU_ALLOCATION_RATIO, upServiceEnv } from '../src/up-config';

const LAPISCTL = join(REPO_ROOT, 'tools/lapisctl/dist/src/main.js');

/** A new user's deployment: one web server asking for both of the node's CPUs. */
const SECOND = [
  'tosca_definitions_version: tosca_simple_yaml_1_3',
  'imports:',
  '  - https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml',
  'topology_template:',
  '  node_templates:',
  '    beside:',
  '      type: tosca.nodes.indigo.Compute',
  '      capabilities:',
  '        host:',
  '          properties: { num_cpus: 2, mem_size: 256 MB }',
  '        os:',
  '          properties: { image: lapis/httpd:1.36 }',
  '',
].join('\n');

describe('make up overcommits CPU: a deployment beside the example on a 2-core node', function () {
  this.timeout(600_000);
  let mesh: Mesh;

  before(async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'lapis-up-'));
    const env = upServiceEnv(stateDir);
    mesh = await startMesh({
      stateDir,
      serviceEnv: { ...env, 'container-runtime': { LAPIS_NODE_CPU_MILLIS: '2000', LAPIS_STOP_TIMEOUT_S: '2' } },
    });
  });
  after(async () => mesh?.stop());

  it('deploys the example, then a second deployment: all three instances run, 4 CPUs asked for on 2 cores', async () => {
    await deployExample(mesh);
    const second = await deploy(mesh, SECOND, 'beside.yaml');
    assert.equal(second.state, DeploymentState.DEPLOYED);

    const admin = createClient(SchedulerServiceClient, mesh.addresses.scheduler!, { token: mesh.tokens.admin.token });
    try {
      const { claims } = await new Promise<ListClaimsResponse>((resolve, reject) =>
        admin.listClaims(
          { pageSize: 100, pageToken: '', project: '', states: [ClaimState.RUNNING], partition: '', node: '', orderByPriority: false },
          new Metadata(),
          (error: ServiceError | null, response) => (error ? reject(error) : resolve(response)),
        ),
      );
      const asked = claims.reduce((sum, c) => sum + Number(c.spec?.resources?.cpuMillis ?? 0), 0);
      assert.equal(claims.length, 3, "the example's two instances and the new one run");
      assert.equal(asked, 4000, 'charged what was asked for: 4 CPUs, on a node of 2');
    } finally {
      admin.close();
    }
  });

  /** lapisctl as `token`: its exit code and output. */
  const lapisctl = (args: string[], token: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        [LAPISCTL, ...args],
        { env: { ...process.env, LAPIS_SCHEDULER_ADDRESS: mesh.addresses.scheduler!, LAPIS_TOKEN: token } },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      ),
    );
  /** The default partition's CPU_RATIO cell in `lapisctl partition list`. */
  const listedCpuRatio = async () => {
    const { stdout } = await lapisctl(['partition', 'list'], mesh.tokens.admin.token);
    const [header, ...rows] = stdout.trim().split('\n');
    // Cells are padded under their headers (a cell may hold spaces: read it where its column starts).
    const at = header!.indexOf('CPU_RATIO');
    assert.ok(at > 0, stdout);
    return rows
      .find((r) => r.startsWith('default '))
      ?.slice(at)
      .split(/\s+/)[0];
  };

  it('lapisctl partition list shows the ratio; set-ratios changes it for admins only', async function () {
    if (!existsSync(LAPISCTL)) this.skip();
    assert.equal(await listedCpuRatio(), String(UP_CPU_ALLOCATION_RATIO));
    const refused = await lapisctl(['partition', 'set-ratios', 'default', '--cpu', '8'], mesh.tokens.alice.token);
    assert.notEqual(refused.code, 0, refused.stdout);
    assert.match(refused.stderr, /admin/i);
    const bad = await lapisctl(['partition', 'set-ratios', 'default', '--cpu', '0.5'], mesh.tokens.admin.token);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /ratios\.cpu/);
    const set = await lapisctl(['partition', 'set-ratios', 'default', '--cpu', '8'], mesh.tokens.admin.token);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /partition default: CPU ratio 8, memory ratio 1/);
    assert.equal(await listedCpuRatio(), '8');
    // Without a ratio of its own the partition follows make up's configuration again.
    await lapisctl(['partition', 'set-ratios', 'default'], mesh.tokens.admin.token);
    assert.equal(await listedCpuRatio(), String(UP_CPU_ALLOCATION_RATIO));
  });
});
