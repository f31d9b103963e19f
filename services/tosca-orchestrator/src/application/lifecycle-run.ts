// One lifecycle operation run in the instance that hosts its node: its artifact and
// dependencies copied under /opt/lapis/tosca/<deployment>/<operation>/ (paths as beside the
// template), run there with its inputs as environment variables (a shell script; an Ansible
// playbook with the instance's ansible-playbook, the inputs its extra variables too), what it reported
// (NAME=value lines in $LAPIS_OPERATION_OUTPUTS) read back; its outcome, duration and output
// tail recorded on the deployment, and a span in the deployment's trace.
import { posix } from 'node:path';
import { context, propagation, ROOT_CONTEXT, SpanStatusCode, trace } from '@opentelemetry/api';
import { Code } from '@lapis/platform';
import type { DeploymentRecord } from '../domain/deployment';
import { operationEnvironment, operationInputs, outputTail, parseOutputs, type LifecycleRecord } from '../domain/lifecycle';
import { templateFiles } from '../domain/template-files';
import type { EngineContext } from './context';
import type { ActAs } from './ports';

const tracer = trace.getTracer('@lapis/tosca-orchestrator');

/** Where an operation's files go in its instance: one folder per operation, its name readable. */
const folderOf = (deployment: string, key: string) => `/opt/lapis/tosca/${deployment}/${key.replace(/[^A-Za-z0-9._@-]+/g, '_')}`;
/** A file's place in that folder: its path beside the template, a ".." (a file above the template's folder) as "_parent". */
const inside = (folder: string, path: string) => `${folder}/${path.replace(/(^|\/)\.\.(?=\/|$)/g, '$1_parent')}`;

export async function runOperation(ctx: EngineContext, id: string, record: DeploymentRecord, key: string, as: ActAs): Promise<void> {
  const entry = record.lifecycle?.[key];
  const instance = entry && record.instances[entry.op.instance];
  if (!entry || !instance?.claimId || (entry.state !== 'pending' && entry.state !== 'running')) return;
  const { op } = entry;
  const startTime = new Date();
  await ctx.change(id, (r) => {
    const l = r.lifecycle?.[key];
    if (l) Object.assign(l, { state: 'running', startTime: startTime.toISOString() });
  });
  const parent = record.traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent: record.traceparent }) : ROOT_CONTEXT;
  const span = tracer.startSpan(
    `tosca ${op.interface}.${op.operation} ${op.node}`,
    { attributes: { 'tosca.node.name': op.node, 'tosca.operation.name': `${op.interface}.${op.operation}` } },
    parent,
  );
  let outcome: Partial<LifecycleRecord>;
  try {
    outcome = await context.with(trace.setSpan(parent, span), () => execute(ctx, id, record, key, instance.claimId!, as));
  } catch (error) {
    span.recordException(error as Error);
    // A runtime that is restarting is waited for (the step is retried); anything else fails the operation.
    if ((error as { code?: number }).code === Code.UNAVAILABLE || ctx.stopped()) {
      span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      throw error;
    }
    outcome = { state: 'failed', reason: (error as Error).message };
  }
  if (outcome.exitCode !== undefined) span.setAttribute('process.exit.code', outcome.exitCode);
  if (outcome.state === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.reason });
  span.end();
  const durationMs = Date.now() - startTime.getTime();
  ctx.options.log.info(
    { deployment: id, operation: key, state: outcome.state, exitCode: outcome.exitCode, durationMs },
    'lifecycle operation ended',
  );
  await ctx.change(id, (r) => {
    const l = r.lifecycle?.[key];
    if (l?.state === 'running') Object.assign(l, outcome, { durationMs });
  });
}

async function execute(
  ctx: EngineContext,
  id: string,
  record: DeploymentRecord,
  key: string,
  instanceId: string,
  as: ActAs,
): Promise<Partial<LifecycleRecord>> {
  const { op } = record.lifecycle![key]!;
  const { environment, unresolved } = operationEnvironment(record, op);
  if (unresolved) return { state: 'failed', reason: `its input ${unresolved} cannot be resolved (an attribute or output not known)` };
  const { files } = templateFiles(record.template);
  const folder = folderOf(id, key);
  const outputsFile = `${folder}/outputs.env`;
  const copied = [op.implementation, ...op.dependencies].map((path) => ({
    path: inside(folder, path),
    content: files[path] ?? '',
    mode: path === op.implementation ? 0o755 : 0o644,
  }));
  const primary = inside(folder, op.implementation);
  const playbook = /\.ya?ml$/i.test(op.implementation);
  const variables = `${folder}/lapis-variables.json`;
  const result = await ctx.options.ports.exec(
    instanceId,
    {
      // An empty outputs file each run: what a run before it reported does not count.
      files: [
        ...copied,
        { path: outputsFile, content: '', mode: 0o666 },
        ...(playbook ? [{ path: variables, content: JSON.stringify(operationInputs(record, op).values), mode: 0o600 }] : []),
      ],
      argv: playbook ? ansibleCommand(primary, variables) : files[op.implementation]?.startsWith('#!') ? [primary] : ['/bin/sh', primary],
      environment: {
        ...environment,
        LAPIS_OPERATION_OUTPUTS: outputsFile,
        LAPIS_DEPLOYMENT: id,
        LAPIS_NODE: op.node,
        LAPIS_OPERATION: `${op.interface}.${op.operation}`,
        // (Ansible wants a UTF-8 locale; C.UTF-8 is in every glibc.)
        ...(playbook
          ? { ANSIBLE_NOCOLOR: '1', ANSIBLE_RETRY_FILES_ENABLED: '0', ANSIBLE_LOCAL_TEMP: `${folder}/.ansible`, LC_ALL: 'C.UTF-8' }
          : {}),
      },
      workingDir: posix.dirname(primary),
      timeoutS: op.timeoutS,
    },
    as,
  );
  const tail = outputTail(result.output);
  if (result.timedOut) return { state: 'failed', reason: `did not end within ${op.timeoutS} s`, exitCode: -1, outputTail: tail };
  if (result.exitCode !== 0)
    return { state: 'failed', reason: `exit status ${result.exitCode}`, exitCode: result.exitCode, outputTail: tail };
  const reported = await ctx.options.ports.exec(
    instanceId,
    { files: [], argv: ['cat', outputsFile], environment: {}, workingDir: '', timeoutS: 30 },
    as,
  );
  return { state: 'done', exitCode: 0, outputTail: tail, outputs: reported.exitCode === 0 ? parseOutputs(reported.output) : {} };
}

/**
 * A playbook runs with the instance's own Ansible (ansible-playbook, connection local), its
 * inputs as extra variables with their types; an instance without Ansible says so.
 */
function ansibleCommand(playbook: string, variables: string): string[] {
  const check =
    'command -v "$0" >/dev/null 2>&1 || { echo "$0 is not installed in this instance: a playbook runs with the instance\'s own Ansible, so its image needs it (Debian: ansible-core)" >&2; exit 127; }; exec "$0" "$@"';
  return ['/bin/sh', '-c', check, 'ansible-playbook', '-i', 'localhost,', '-c', 'local', '-e', `@${variables}`, playbook];
}

/** An operation that does not run: recorded as skipped, with why. */
export async function skipOperation(ctx: EngineContext, id: string, key: string, reason: string): Promise<void> {
  await ctx.change(id, (r) => {
    const l = r.lifecycle?.[key];
    if (l?.state === 'pending') Object.assign(l, { state: 'skipped', reason });
  });
}
