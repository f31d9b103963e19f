// Templates from tenants that would make the orchestrator work without end (issue 16, rows 1 and
// 14): the orchestrator as its own process, over gRPC. Aliases that expand a billionfold, deep
// nesting, an oversized template are refused fast with INVALID_ARGUMENT and their position while
// other callers and health checks are answered; work whose caller is gone stops, and a long
// validation does not hold the service past its grace period after SIGTERM.
import { strict as assert } from 'node:assert';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { credentials, loadPackageDefinition, status, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { call, createClient, errorDetails } from '@lapis/platform';
import { natsUrl, sleep, spawnService, staticTokenFile, TEST_TOKENS, until, type ServiceProcess } from '@lapis/platform/testing';
import {
  TranslationTarget,
  type CreateDeploymentRequest,
  type CreateDeploymentResponse,
  type DeleteDeploymentRequest,
  type DeleteDeploymentResponse,
  type UpdateDeploymentRequest,
  type UpdateDeploymentResponse,
  type TranslateTemplateRequest,
  type TranslateTemplateResponse,
  type ValidateTemplateRequest,
  type ValidateTemplateResponse,
} from '@lapis/proto/lapis/tosca/v1/tosca';
import { ToscaServiceClient } from '@lapis/proto/lapis/tosca/v1/tosca_service';
import { strToU8, zipSync } from 'fflate';
import { conformanceDir } from '../helpers';

const main = resolve(__dirname, '..', '..', 'src', 'main.js');
const head = 'tosca_definitions_version: tosca_simple_yaml_1_3\n';

/** The issue's template: nine levels of nine aliases each (9^9 strings once expanded), about 500 bytes. */
const laughs = (() => {
  let t = `${head}metadata:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n`;
  for (let i = 1; i <= 9; i++)
    t += `  l${i}: &l${i} [${Array(9)
      .fill(`*l${i - 1}`)
      .join(',')}]\n`;
  return t;
})();
/** Lists nested 100,000 deep. */
const deep = `${head}metadata:\n  a: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`;
/**
 * Within every bound but slow to read (seconds): 100,000 anchors, each used once in a list, the
 * list used once, 2.8 MB (before, each alias was looked for through the whole document: hours).
 */
const slow = (() => {
  const lines = [`${head}metadata:`];
  for (let i = 0; i < 100_000; i++) lines.push(`  a${i}: &a${i} x`);
  lines.push(`  all: &all [${Array.from({ length: 100_000 }, (_, i) => `*a${i}`).join(', ')}]`, '  again: *all');
  return `${lines.join('\n')}\n`;
})();
const fine = `${head}topology_template:\n  node_templates:\n    server:\n      type: tosca.nodes.Compute\n`;

const validate = (client: ToscaServiceClient, yaml: string, fileName: string) =>
  call<ValidateTemplateRequest, ValidateTemplateResponse>(client.validateTemplate.bind(client), {
    template: { content: { $case: 'yaml', yaml }, fileName, files: {} },
    inputs: undefined,
    textInputs: {},
  });

function health(address: string, deadlineMs: number): Promise<string> {
  const { grpc } = loadPackageDefinition(loadSync(healthProtoPath, { enums: String })) as never as {
    grpc: { health: { v1: { Health: new (address: string, creds: unknown) => { check: Function; close(): void } } } };
  };
  const client = new grpc.health.v1.Health(address, credentials.createInsecure());
  return new Promise((resolve, reject) =>
    client.check({ service: '' }, { deadline: Date.now() + deadlineMs }, (error: ServiceError | null, response: { status: string }) => {
      client.close();
      return error ? reject(error) : resolve(response.status);
    }),
  );
}

/** The call is INVALID_ARGUMENT (reason TEMPLATE_LIMIT) with a violation at file:line:column carrying `code`. */
async function refusedAt(promise: Promise<unknown>, fileName: string, code: string): Promise<string> {
  let field = '';
  await assert.rejects(promise, (error: ServiceError) => {
    assert.equal(error.code, status.INVALID_ARGUMENT, error.message);
    const details = errorDetails(error);
    assert.equal(details.errorInfo?.reason, 'TEMPLATE_LIMIT');
    const violation = details.violations.find((v) => v.description.includes(`[${code}]`));
    assert.ok(violation, JSON.stringify(details));
    assert.match(violation.field, new RegExp(`^template:${fileName.replace('.', '\\.')}:\\d+:\\d+$`));
    field = violation.field;
    return true;
  });
  return field;
}

describe('tosca-orchestrator: bounded work on templates from tenants (its own process)', function () {
  this.timeout(120_000);
  let proc: ServiceProcess;
  let tokens: string;
  const clients: ToscaServiceClient[] = [];
  // Every call here has a deadline: a refusal must come fast, not merely come.
  const client = (token: string, deadlineMs = 10_000) => {
    const c = createClient(ToscaServiceClient, proc.address, { token, maxAttempts: 1, deadlineMs });
    clients.push(c);
    return c;
  };
  const spawn = (env: Record<string, string> = {}) =>
    spawnService('tosca-orchestrator', main, {
      LAPIS_NATS_URL: natsUrl(),
      LAPIS_STATIC_TOKENS_FILE: tokens,
      LAPIS_SCHEDULER_ADDRESS: '127.0.0.1:1',
      LAPIS_RUNTIME_ADDRESS: '127.0.0.1:1',
      // One thread: work that did not stop would hold up every later template.
      LAPIS_TOSCA_TEMPLATE_THREADS: '1',
      LAPIS_TOSCA_TEMPLATE_BUDGET_MS: '60000',
      ...env,
    });
  /** Stops a process; one that does not exit on SIGTERM (old code, busy) is killed. */
  const stop = async (p: ServiceProcess | undefined) => {
    if (!p) return;
    await Promise.race([p.stop(), sleep(15_000).then(() => p.kill())]);
  };

  before(async () => {
    tokens = staticTokenFile();
    proc = await spawn();
  });
  after(async () => {
    for (const c of clients) c.close();
    await stop(proc);
    rmSync(dirname(tokens), { recursive: true, force: true });
  });

  for (const [what, yaml, code, where] of [
    ['aliases that expand a billionfold', laughs, 'YAML_ALIAS_LIMIT', /^template:bad\.yaml:6:\d+$/],
    ['lists nested 100,000 deep', deep, 'YAML_TOO_DEEP', /^template:bad\.yaml:3:104$/],
  ] as const) {
    it(`refuses ${what} fast, with the position, while other callers and health checks are answered`, async () => {
      const alice = client(TEST_TOKENS.alice.token);
      const bob = client(TEST_TOKENS.bob.token);
      const refused = refusedAt(validate(alice, yaml, 'bad.yaml'), 'bad.yaml', code);
      const [field, served, other] = await Promise.all([refused, health(proc.address, 10_000), validate(bob, fine, 'fine.yaml')]);
      assert.match(field, where);
      assert.equal(served, 'SERVING');
      assert.equal(other.valid, true, JSON.stringify(other.diagnostics));
      // Every path that reads a template keeps the same bounds.
      await refusedAt(
        call<TranslateTemplateRequest, TranslateTemplateResponse>(alice.translateTemplate.bind(alice), {
          template: { content: { $case: 'yaml', yaml }, fileName: 'bad.yaml', files: {} },
          inputs: undefined,
          textInputs: {},
          target: TranslationTarget.HEAT,
        }),
        'bad.yaml',
        code,
      );
      // An imported file is read with the same bounds.
      const importing = fine.replace(head, `${head}imports:\n  - bad.yaml\n`);
      await refusedAt(
        call<CreateDeploymentRequest, CreateDeploymentResponse>(alice.createDeployment.bind(alice), {
          template: { content: { $case: 'yaml', yaml: importing }, fileName: 'main.yaml', files: { 'bad.yaml': yaml } },
          inputs: undefined,
          textInputs: {},
          keepOnFailure: false,
          requestId: '',
        }),
        'bad.yaml',
        code,
      );
    });
  }

  it('refuses such a template at UpdateDeployment too, before anything changes', async () => {
    const alice = client(TEST_TOKENS.alice.token);
    // A deployable template (its deployment then fails: no scheduler here).
    const deployable = readFileSync(join(conformanceDir, 'docker-app-volume', 'template.yaml'), 'utf8');
    const created = await call<CreateDeploymentRequest, CreateDeploymentResponse>(alice.createDeployment.bind(alice), {
      template: { content: { $case: 'yaml', yaml: deployable }, fileName: 'app.yaml', files: {} },
      inputs: undefined,
      textInputs: {},
      keepOnFailure: false,
      requestId: '',
    });
    await refusedAt(
      call<UpdateDeploymentRequest, UpdateDeploymentResponse>(alice.updateDeployment.bind(alice), {
        deploymentId: created.deploymentId,
        template: { content: { $case: 'yaml', yaml: laughs }, fileName: 'laughs.yaml', files: {} },
        inputs: undefined,
        textInputs: {},
        requestId: '',
      }),
      'laughs.yaml',
      'YAML_ALIAS_LIMIT',
    );
    await call<DeleteDeploymentRequest, DeleteDeploymentResponse>(alice.deleteDeployment.bind(alice), {
      deploymentId: created.deploymentId,
      requestId: '',
    });
  });

  it('refuses an oversized template fast, at the line and column where the limit falls', async () => {
    // 3 MiB and a little more (the gRPC message may be 4 MiB): 120,000 lines of 27 characters.
    const lines = Array.from({ length: 120_000 }, (_, i) => `  key_${String(i).padStart(6, '0')}: value_${String(i).padStart(6, '0')}`);
    const yaml = `${head}metadata:\n${lines.join('\n')}\n`;
    assert.ok(yaml.length > 3 * 1024 * 1024 && yaml.length < 3.5 * 1024 * 1024);
    const alice = client(TEST_TOKENS.alice.token);
    const field = await refusedAt(validate(alice, yaml, 'big.yaml'), 'big.yaml', 'TEMPLATE_TOO_LARGE');
    // The limit (3,145,728 characters) falls in the line holding that offset.
    const before = yaml.slice(0, 3 * 1024 * 1024);
    const line = before.split('\n').length;
    const column = before.length - before.lastIndexOf('\n');
    assert.equal(field, `template:big.yaml:${line}:${column}`);
  });

  it('refuses a CSAR that unpacks to more than the limit, before unpacking it', async () => {
    // 4 MiB of one character packs into a few KB.
    const csar = zipSync({ 'template.yaml': strToU8(`${head}${'#'.repeat(4 * 1024 * 1024)}\n`) });
    assert.ok(csar.length < 64 * 1024);
    const alice = client(TEST_TOKENS.alice.token);
    const field = await refusedAt(
      call<ValidateTemplateRequest, ValidateTemplateResponse>(alice.validateTemplate.bind(alice), {
        template: { content: { $case: 'csar', csar: Buffer.from(csar) }, fileName: 'app.csar', files: {} },
        inputs: undefined,
        textInputs: {},
      }),
      'app.csar',
      'TEMPLATE_TOO_LARGE',
    );
    assert.equal(field, 'template:app.csar:1:1');
  });

  it('stops work over its time budget: RESOURCE_EXHAUSTED, and the thread is free again', async () => {
    // The slow template takes seconds; a small one well under a second.
    const own = await spawn({ LAPIS_TOSCA_TEMPLATE_BUDGET_MS: '1500' });
    // Wait-for-ready: the first call to the process just started is about its budget, not about
    // its first connection (which once failed at once on a loaded CI machine, with no error of its own).
    const c = createClient(ToscaServiceClient, own.address, {
      token: TEST_TOKENS.alice.token,
      maxAttempts: 1,
      deadlineMs: 10_000,
      waitForReady: true,
    });
    try {
      await assert.rejects(validate(c, slow, 'slow.yaml'), (error: ServiceError) => {
        assert.equal(error.code, status.RESOURCE_EXHAUSTED, error.message);
        assert.equal(errorDetails(error).errorInfo?.reason, 'TEMPLATE_LIMIT');
        return true;
      });
      assert.ok(own.logs.some((l) => l.msg === 'template work stopped' && l.reason === 'budget' && l.file === 'slow.yaml'));
      assert.equal((await validate(c, fine, 'fine.yaml')).valid, true);
    } finally {
      c.close();
      await stop(own);
    }
  });

  it('stops the work of a caller past its deadline: the next template is answered at once', async () => {
    const impatient = client(TEST_TOKENS.alice.token, 500);
    await assert.rejects(validate(impatient, slow, 'slow.yaml'), (error: ServiceError) => error.code === status.DEADLINE_EXCEEDED);
    // With one template thread, a later template waits for the first unless its work stopped.
    const bob = client(TEST_TOKENS.bob.token, 4_000);
    const [served, other] = await Promise.all([health(proc.address, 4_000), validate(bob, fine, 'fine.yaml')]);
    assert.equal(served, 'SERVING');
    assert.equal(other.valid, true);
    await until(
      () => proc.logs.find((l) => l.msg === 'template work stopped' && l.reason === 'caller gone' && l.file === 'slow.yaml'),
      'the stop in the log',
      5_000,
    );
  });

  it('exits within its grace period after SIGTERM while a long validation runs, stopping it', async () => {
    assert.ok(slow.length < 3 * 1024 * 1024);
    // A grace of 1.5 s: with 0.5 s the closing steps after the grace (NATS, telemetry) overran
    // the deadline (twice the grace) on a loaded 2-core machine.
    const own = await spawn({ LAPIS_SHUTDOWN_GRACE_MS: '1500' });
    const c = createClient(ToscaServiceClient, own.address, { token: TEST_TOKENS.alice.token, maxAttempts: 1, deadlineMs: 60_000 });
    try {
      const running = validate(c, slow, 'slow.yaml').catch((error: ServiceError) => error);
      // Let the call arrive and its work start.
      await sleep(1_000);
      const stopped = Date.now();
      const exited = await Promise.race([own.stop(), sleep(8_000).then(() => 'still running' as const)]);
      assert.equal(exited, 0, `exit code ${String(exited)} (${Date.now() - stopped} ms after SIGTERM)`);
      // The work was cut when the grace period ended, not waited for.
      assert.ok(
        own.logs.some((l) => l.msg === 'template work stopped' && l.reason === 'caller gone' && l.file === 'slow.yaml'),
        JSON.stringify(own.logs.slice(-5)),
      );
      await running;
    } finally {
      c.close();
      await stop(own);
    }
  });
});
