// The orchestrator as its own process (as production runs it), on the run's NATS, called over
// gRPC: validation and translation (URL imports from the local mirror), errors with positions,
// deployments' API (project scoping, idempotent create, a deployment that cannot reach the
// scheduler fails with the cause and creates nothing). Deployments that really run need the
// scheduler and the runtime: they come with the mesh tests.
import { strict as assert } from 'node:assert';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { status } from '@grpc/grpc-js';
import { call, createClient, errorDetails } from '@lapis/platform';
import { natsUrl, spawnService, staticTokenFile, TEST_TOKENS, until, type ServiceProcess } from '@lapis/platform/testing';
import {
  DeploymentState,
  Severity,
  TranslationTarget,
  type CreateDeploymentRequest,
  type CreateDeploymentResponse,
  type GetDeploymentRequest,
  type GetDeploymentResponse,
  type ListDeploymentsRequest,
  type ListDeploymentsResponse,
  type TranslateTemplateRequest,
  type UpdateDeploymentRequest,
  type UpdateDeploymentResponse,
  type TranslateTemplateResponse,
  type ValidateTemplateRequest,
  type ValidateTemplateResponse,
  type DeleteDeploymentRequest,
  type DeleteDeploymentResponse,
} from '@lapis/proto/lapis/tosca/v1/tosca';
import { ToscaServiceClient } from '@lapis/proto/lapis/tosca/v1/tosca_service';
import { generate } from '../../bench/bench';
import { processTemplate } from '../../src/domain/validate';
import { conformanceDir, indigoMirror } from '../helpers';
import { exampleTemplate } from '../mesh';

const main = resolve(__dirname, '..', '..', 'src', 'main.js');
const template = (name: string) => readFileSync(join(conformanceDir, name, 'template.yaml'), 'utf8');

describe('tosca-orchestrator over gRPC (its own process)', function () {
  this.timeout(120_000);
  let proc: ServiceProcess;
  let tokens: string;
  const clients: ToscaServiceClient[] = [];
  const client = (token: string) => {
    const c = createClient(ToscaServiceClient, proc.address, { token, maxAttempts: 1 });
    clients.push(c);
    return c;
  };

  before(async () => {
    tokens = staticTokenFile();
    proc = await spawnService('tosca-orchestrator', main, {
      LAPIS_NATS_URL: natsUrl(),
      LAPIS_STATIC_TOKENS_FILE: tokens,
      LAPIS_TOSCA_IMPORT_MIRROR: indigoMirror(),
      // The big template below (200 KiB) is then read by two threads.
      LAPIS_TOSCA_TWO_THREADS_FROM_KIB: '64',
      // Nothing listens there: the scheduler is not part of this test.
      LAPIS_SCHEDULER_ADDRESS: '127.0.0.1:1',
      LAPIS_RUNTIME_ADDRESS: '127.0.0.1:1',
      // and deployments that need it fail after 2 s of trying, not 15.
      LAPIS_TOSCA_PEER_WAIT_MS: '2000',
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    await proc?.stop();
    rmSync(dirname(tokens), { recursive: true, force: true });
  });

  it('validates an INDIGO template, importing the INDIGO types through the mirror', async () => {
    const c = client(TEST_TOKENS.alice.token);
    const r = await call<ValidateTemplateRequest, ValidateTemplateResponse>(c.validateTemplate.bind(c), {
      template: { content: { $case: 'yaml', yaml: template('indigo-kubernetes-cluster') }, fileName: 'k8s.yaml', files: {} },
      inputs: { wn_num: 2 },
      textInputs: {},
    });
    assert.equal(r.valid, true, JSON.stringify(r.diagnostics.filter((d) => d.severity === Severity.ERROR)));
    assert.deepEqual(r.deploymentOrder, ['lrms_server', 'lrms_front_end', 'lrms_wn', 'wn_node', 'jupyterhub']);
  });

  it('reports every error with file, line, column and path', async () => {
    const c = client(TEST_TOKENS.alice.token);
    const r = await call<ValidateTemplateRequest, ValidateTemplateResponse>(c.validateTemplate.bind(c), {
      template: { content: { $case: 'yaml', yaml: template('error-requirements') }, fileName: 'bad.yaml', files: {} },
      inputs: undefined,
      textInputs: {},
    });
    assert.equal(r.valid, false);
    const errors = r.diagnostics.filter((d) => d.severity === Severity.ERROR);
    assert.equal(errors.length, 8);
    const unknown = errors.find((d) => d.code === 'UNKNOWN_REQUIREMENT')!;
    assert.deepEqual(
      [unknown.file, unknown.line, unknown.column, unknown.path],
      ['bad.yaml', 8, 11, 'topology_template.node_templates.app.requirements[1]'],
    );
  });

  it('validates a big template (read by two threads) exactly as one thread does, errors and positions alike', async () => {
    // The broken node sits in the middle group; another error is added to the last node, so the
    // two pieces of the template each hold one.
    const yaml = `${generate(999, 'unknown_target')}      colour: red\n`;
    const alone = processTemplate({ text: yaml, fileName: 'big.yaml' }).diagnostics;
    const c = client(TEST_TOKENS.alice.token);
    const r = await call<ValidateTemplateRequest, ValidateTemplateResponse>(c.validateTemplate.bind(c), {
      template: { content: { $case: 'yaml', yaml }, fileName: 'big.yaml', files: {} },
      inputs: undefined,
      textInputs: {},
    });
    assert.equal(r.valid, false);
    assert.deepEqual(
      r.diagnostics.map((d) => [d.code, d.line, d.column, d.path]),
      alone.map((d) => [d.code, d.line, d.column, d.path]),
    );
    assert.ok(alone.some((d) => d.code === 'UNKNOWN_NODE') && alone.some((d) => d.code === 'UNKNOWN_FIELD'), JSON.stringify(alone));
  });

  it('translates to Kubernetes manifests', async () => {
    const c = client(TEST_TOKENS.alice.token);
    const r = await call<TranslateTemplateRequest, TranslateTemplateResponse>(c.translateTemplate.bind(c), {
      template: { content: { $case: 'yaml', yaml: template('docker-app-volume') }, fileName: 'app.yaml', files: {} },
      inputs: { replicas: 3 },
      textInputs: {},
      target: TranslationTarget.KUBERNETES,
    });
    assert.match(r.output, /kind: Deployment[\s\S]*replicas: 3/);
    assert.match(r.output, /kind: PersistentVolumeClaim/);
    // What a translation leaves out is said among the diagnostics, at the node (software on a compute here).
    const software = await call<TranslateTemplateRequest, TranslateTemplateResponse>(c.translateTemplate.bind(c), {
      template: exampleTemplate('guestbook', 'guestbook.yaml'),
      inputs: { image: 'busybox' },
      textInputs: {},
      target: TranslationTarget.KUBERNETES,
    });
    const web = software.diagnostics.find((d) => d.code === 'NOT_TRANSLATED' && d.path === 'topology_template.node_templates.web');
    assert.equal(web?.severity, Severity.WARNING, JSON.stringify(software.diagnostics));
    assert.match(
      web.message,
      /node web: its operations \(Standard.create, Standard.start\) are not translated: it is hosted on compute server/,
    );
  });

  it('rejects an invalid template at CreateDeployment with the problems as field violations', async () => {
    const c = client(TEST_TOKENS.alice.token);
    await assert.rejects(
      call<CreateDeploymentRequest, CreateDeploymentResponse>(c.createDeployment.bind(c), {
        template: { content: { $case: 'yaml', yaml: template('error-dependency-cycle') }, fileName: 'cycle.yaml', files: {} },
        inputs: undefined,
        textInputs: {},
        keepOnFailure: false,
        requestId: '',
      }),
      (error: Error & { code: number }) => {
        assert.equal(error.code, status.INVALID_ARGUMENT);
        const details = errorDetails(error as never);
        assert.equal(details.errorInfo?.reason, 'INVALID_TEMPLATE');
        assert.ok(
          details.violations.some((v) => v.field === 'template:cycle.yaml:4:5' && /dependency cycle: a -> b -> c -> a/.test(v.description)),
          JSON.stringify(details),
        );
        return true;
      },
    );
  });

  it('inputs given as text are converted to their declared types; text that does not convert is refused naming the input', async () => {
    const alice = client(TEST_TOKENS.alice.token);
    const slurm = { content: { $case: 'yaml' as const, yaml: template('indigo-slurm-cluster') }, fileName: 'slurm.yaml', files: {} };
    const validated = await call<ValidateTemplateRequest, ValidateTemplateResponse>(alice.validateTemplate.bind(alice), {
      template: slurm,
      inputs: undefined,
      textInputs: { wn_num: '3', fe_mem: '4 GB' },
    });
    assert.equal(validated.valid, true, JSON.stringify(validated.diagnostics));
    const refused = (error: Error & { code: number }, reason: string, fields: string[]) => {
      assert.equal(error.code, status.INVALID_ARGUMENT, error.message);
      const details = errorDetails(error as never);
      assert.equal(details.errorInfo?.reason, reason);
      assert.deepEqual(details.violations.map((v) => v.field).sort(), fields, JSON.stringify(details.violations));
      return true;
    };
    await assert.rejects(
      call<CreateDeploymentRequest, CreateDeploymentResponse>(alice.createDeployment.bind(alice), {
        template: slurm,
        inputs: { fe_cpus: 'two' },
        textInputs: { wn_num: 'three' },
        keepOnFailure: false,
        requestId: '',
      }),
      (error: Error & { code: number }) => {
        refused(error, 'INVALID_INPUT', ['inputs.fe_cpus', 'text_inputs.wn_num']);
        assert.match(error.message, /text_inputs\.wn_num: input wn_num: "three" is not a valid integer/);
        return true;
      },
    );
    const created = await call<CreateDeploymentRequest, CreateDeploymentResponse>(alice.createDeployment.bind(alice), {
      template: slurm,
      inputs: { fe_cpus: 4 },
      textInputs: { wn_num: '3', fe_mem: '4 GB' },
      // Kept when it fails (no scheduler here), so that it can be updated.
      keepOnFailure: true,
      requestId: '',
    });
    const get = async () =>
      (await call<GetDeploymentRequest, GetDeploymentResponse>(alice.getDeployment.bind(alice), { deploymentId: created.deploymentId }))
        .deployment!;
    // Kept as their types made them: the integer 3, not the text "3".
    assert.deepEqual((await get()).inputs, { fe_cpus: 4, wn_num: 3, fe_mem: '4 GB' });
    // An update's text is converted (and refused) the same way, before anything changes.
    await until(async () => ((await get()).state === DeploymentState.FAILED ? true : undefined), 'deployment FAILED', 60_000);
    await assert.rejects(
      call<UpdateDeploymentRequest, UpdateDeploymentResponse>(alice.updateDeployment.bind(alice), {
        deploymentId: created.deploymentId,
        template: undefined,
        inputs: undefined,
        textInputs: { fe_cpus: '4.5' },
        requestId: '',
      }),
      (error: Error & { code: number }) => refused(error, 'INVALID_INPUT', ['text_inputs.fe_cpus']),
    );
    assert.deepEqual((await get()).inputs, { fe_cpus: 4, wn_num: 3, fe_mem: '4 GB' });
    await call<DeleteDeploymentRequest, DeleteDeploymentResponse>(alice.deleteDeployment.bind(alice), {
      deploymentId: created.deploymentId,
      requestId: '',
    });
  });

  it('a deployment that cannot reach the scheduler fails with the cause; scoped to its project; idempotent', async () => {
    const alice = client(TEST_TOKENS.alice.token);
    const request: CreateDeploymentRequest = {
      template: { content: { $case: 'yaml', yaml: template('indigo-slurm-cluster') }, fileName: 'slurm.yaml', files: {} },
      inputs: undefined,
      textInputs: {},
      keepOnFailure: false,
      requestId: `req-${Date.now()}`,
    };
    const created = await call<CreateDeploymentRequest, CreateDeploymentResponse>(alice.createDeployment.bind(alice), request);
    assert.ok(created.deploymentId);
    assert.equal(created.operation?.done, false);
    // Watch: the deployment as it is, then every change, until it fails.
    const watched: DeploymentState[] = [];
    const stream = alice.watchDeployment({ deploymentId: created.deploymentId });
    const watchedFailure = new Promise<void>((resolve, reject) => {
      stream.on('data', (r: { deployment?: { state: DeploymentState } }) => {
        watched.push(r.deployment!.state);
        if (r.deployment!.state === DeploymentState.FAILED) resolve();
      });
      stream.on('error', (e: { code: number }) => (e.code === status.CANCELLED ? resolve() : reject(e)));
    });
    const again = await call<CreateDeploymentRequest, CreateDeploymentResponse>(alice.createDeployment.bind(alice), request);
    assert.equal(again.deploymentId, created.deploymentId, 'same request_id, same deployment');
    const failed = await until(
      async () => {
        const r = await call<GetDeploymentRequest, GetDeploymentResponse>(alice.getDeployment.bind(alice), {
          deploymentId: created.deploymentId,
        });
        return r.deployment?.state === DeploymentState.FAILED ? r.deployment : undefined;
      },
      'deployment FAILED',
      60_000,
    );
    assert.match(failed.stateReason, /submitClaim lrms_server-0 failed/);
    await watchedFailure;
    stream.cancel();
    assert.equal(watched[watched.length - 1], DeploymentState.FAILED, `watched ${watched.join(',')}`);
    assert.deepEqual(
      failed.nodes.map((n) => n.name),
      ['lrms_server', 'lrms_front_end', 'elastic_cluster_front_end', 'lrms_wn_server', 'wn_node'],
    );
    // Bob is in another project: he cannot see it.
    const bob = client(TEST_TOKENS.bob.token);
    await assert.rejects(
      call<GetDeploymentRequest, GetDeploymentResponse>(bob.getDeployment.bind(bob), { deploymentId: created.deploymentId }),
      (e: { code: number }) => e.code === status.NOT_FOUND,
    );
    const bobs = await call<ListDeploymentsRequest, ListDeploymentsResponse>(bob.listDeployments.bind(bob), {
      pageSize: 0,
      pageToken: '',
      project: '',
      states: [],
    });
    assert.ok(!bobs.deployments.some((d) => d.id === created.deploymentId));
    const alices = await call<ListDeploymentsRequest, ListDeploymentsResponse>(alice.listDeployments.bind(alice), {
      pageSize: 0,
      pageToken: '',
      project: '',
      states: [DeploymentState.FAILED],
    });
    assert.ok(alices.deployments.some((d) => d.id === created.deploymentId));
    const deleted = await call<DeleteDeploymentRequest, DeleteDeploymentResponse>(alice.deleteDeployment.bind(alice), {
      deploymentId: created.deploymentId,
      requestId: '',
    });
    assert.ok(deleted.operation);
  });
});
