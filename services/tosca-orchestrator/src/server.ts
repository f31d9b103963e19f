// gRPC handlers of lapis.tosca.v1.ToscaService: translate requests, call the domain and the
// engine, translate back. Validation and translation need nothing else; deployments go through
// the engine and live in the key-value store.
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import {
  Code,
  failedPrecondition,
  invalidArgument,
  notFound,
  paginate,
  service,
  watchOperationByPolling,
  type Bucket,
  type CallContext,
} from '@lapis/platform';
import { Any } from '@lapis/proto/google/protobuf/any';
import {
  Deployment,
  DeploymentState,
  LifecycleOperationState,
  type LifecycleOperation,
  NodeState,
  Severity,
  TranslationTarget,
  type Diagnostic as ProtoDiagnostic,
  type TemplateSource,
} from '@lapis/proto/lapis/tosca/v1/tosca';
import { ToscaServiceService } from '@lapis/proto/lapis/tosca/v1/tosca_service';
import type { Operation } from '@lapis/proto/lapis/common/v1/common';
import { OperationsServiceService } from '@lapis/proto/lapis/common/v1/operations_service';
import { newDeploymentId, type DeploymentEngine } from './application/engine';
import { checkTemplate, processStored, rejectInvalid, type GivenInputs, type Reading } from './application/template-check';
import { operationName, parseOperationName, type OperationKind, type OperationRecord, type OperationStore } from './adapters/operations';
import type { Diagnostic } from './domain/diagnostics';
import { formatDiagnostic } from './domain/diagnostics';
import { nodeAttributes, type DeploymentRecord } from './domain/deployment';
import { evaluate } from './domain/functions';
import type { LifecycleRecord } from './domain/lifecycle';
import { deployProblems } from './domain/lifecycle-plan';
import { typedInputs } from './domain/input-text';
import { templateFiles } from './domain/template-files';
import { isDict, type Dict } from './domain/registry';
import type { Target } from './domain/translate';
import type { Topology } from './domain/model';

export interface ServerDeps {
  engine: DeploymentEngine;
  deployments: Bucket<DeploymentRecord>;
  operations: OperationStore;
  reading?: Reading;
}

const toProtoDiagnostic = (d: Diagnostic): ProtoDiagnostic => ({
  severity: d.severity === 'error' ? Severity.ERROR : Severity.WARNING,
  code: d.code,
  message: d.message,
  file: d.file,
  line: d.line,
  column: d.column,
  path: d.path,
});

type StoredTemplate = DeploymentRecord['template'];

function fromSource(source: TemplateSource | undefined): StoredTemplate {
  if (!source?.content) throw invalidArgument([{ field: 'template', description: 'a template (yaml or csar) is required' }]);
  const base = {
    fileName: source.fileName || (source.content.$case === 'csar' ? 'template.csar' : 'template.yaml'),
    files: source.files ?? {},
  };
  return source.content.$case === 'yaml'
    ? { ...base, yaml: source.content.yaml }
    : { ...base, csar: Buffer.from(source.content.csar).toString('base64') };
}

function toSource(t: StoredTemplate): TemplateSource {
  return {
    content: t.yaml !== undefined ? { $case: 'yaml', yaml: t.yaml } : { $case: 'csar', csar: Buffer.from(t.csar ?? '', 'base64') },
    fileName: t.fileName,
    files: t.files,
  };
}

const phaseState: Record<DeploymentRecord['phase'], DeploymentState> = {
  PENDING: DeploymentState.PENDING,
  CREATING: DeploymentState.CREATING,
  DEPLOYED: DeploymentState.DEPLOYED,
  UPDATING: DeploymentState.UPDATING,
  DELETING: DeploymentState.DELETING,
  DELETED: DeploymentState.DELETED,
  FAILED: DeploymentState.FAILED,
};

/**
 * Deployments' topologies, for their outputs, by deployment and generation (its template and
 * inputs change only with a new generation). Get, List, Watch and the operations show a
 * deployment's outputs; without this each would parse its template again. Bounded by the
 * templates' text; the topologies are only read.
 */
const deployedTopologies = new LRUCache<string, { topology: Topology | undefined; size: number }>({
  maxSize: 4 * 1024 * 1024,
  sizeCalculation: (entry) => entry.size,
});

function deployedTopology(r: DeploymentRecord, reading: Reading): Topology | undefined {
  const key = `${r.id}/${r.generation}`;
  let entry = deployedTopologies.get(key);
  if (!entry) {
    const size = Math.max(
      1,
      (r.template.yaml ?? r.template.csar ?? '').length + Object.values(r.template.files ?? {}).reduce((sum, text) => sum + text.length, 0),
    );
    entry = { topology: processStored(r.template, { inputs: r.inputs }, reading).topology, size };
    deployedTopologies.set(key, entry);
  }
  return entry.topology;
}

export function toDeployment(r: DeploymentRecord, reading: Reading = {}): Deployment {
  const attrs = nodeAttributes(r);
  const nodes = r.nodes.map((n) => {
    // Instances and volumes a scale-in removed are history: shown only once all of the node's are.
    const current = <T extends { state: string }>(all: T[]) =>
      all.some((x) => x.state !== 'deleted') ? all.filter((x) => x.state !== 'deleted') : all;
    const instances = current(Object.values(r.instances).filter((i) => i.spec.node === n.name && !i.spec.key.includes('~')));
    const volumes = current(Object.values(r.volumes).filter((v) => v.spec.node === n.name));
    let state = NodeState.INITIAL;
    let reason = '';
    const all = [...instances.map((i) => i.state), ...volumes.map((v) => (v.state === 'created' ? 'running' : v.state))];
    const failedOperation = Object.values(r.lifecycle ?? {}).find((l) => l.op.node === n.name && l.state === 'failed');
    if (all.includes('error')) {
      state = NodeState.ERROR;
      reason = instances.find((i) => i.state === 'error')?.reason ?? '';
    } else if (failedOperation) {
      state = NodeState.ERROR;
      reason = `${failedOperation.op.interface}.${failedOperation.op.operation} failed: ${failedOperation.reason ?? ''}`;
    } else if (all.length && all.every((s) => s === 'deleted')) state = NodeState.DELETED;
    else if (all.some((s) => s === 'deleting' || s === 'unwanted')) state = NodeState.DELETING;
    else if (all.length && all.every((s) => s === 'running')) state = NodeState.STARTED;
    else if (all.some((s) => s === 'submitted' || s === 'wanted')) state = NodeState.CREATING;
    else if (!all.length)
      state = r.phase === 'DEPLOYED' ? NodeState.STARTED : r.phase === 'DELETED' ? NodeState.DELETED : NodeState.INITIAL;
    return {
      name: n.name,
      type: n.type,
      state,
      stateReason: reason,
      instanceIds: instances.map((i) => i.claimId).filter((x): x is string => !!x),
      volumeIds: volumes.map((v) => v.volumeId).filter((x): x is string => !!x),
      attributes: attrs.get(n.name) ?? {},
    };
  });
  // Outputs resolve from the instances' attributes once they are known.
  let outputs: Dict = r.outputs;
  if (r.phase === 'DEPLOYED' || r.phase === 'UPDATING') {
    const topology = deployedTopology(r, reading);
    if (topology) {
      outputs = {};
      for (const [name, o] of topology.outputs) {
        const v = evaluate(
          {
            topology,
            attribute: (node, path) => {
              const a = attrs.get(node.name);
              let cur: unknown = a?.[String(path[0])];
              for (const k of path.slice(1)) cur = Array.isArray(cur) ? cur[Number(k)] : isDict(cur) ? cur[String(k)] : undefined;
              return cur;
            },
          },
          o.value,
        );
        outputs[name] = v;
      }
    }
  }
  return Deployment.fromPartial({
    id: r.id,
    project: r.project,
    user: r.user,
    template: toSource(r.template),
    inputs: r.inputs,
    state: phaseState[r.phase],
    stateReason: r.reason,
    nodes,
    outputs: JSON.parse(JSON.stringify(outputs ?? {})) as Dict,
    keepOnFailure: r.keepOnFailure,
    requestId: r.requestId,
    createTime: new Date(r.createTime),
    updateTime: new Date(r.updateTime),
    operation: r.operation,
    lifecycleOperations: toLifecycleOperations(r),
  });
}

const operationState: Record<LifecycleRecord['state'], LifecycleOperationState> = {
  pending: LifecycleOperationState.PENDING,
  running: LifecycleOperationState.RUNNING,
  done: LifecycleOperationState.SUCCEEDED,
  failed: LifecycleOperationState.FAILED,
  skipped: LifecycleOperationState.SKIPPED,
};

/** The lifecycle operations in the order they ran (or will): deploying first, then by start. */
function toLifecycleOperations(r: DeploymentRecord): LifecycleOperation[] {
  const all = Object.values(r.lifecycle ?? {}).map((l, index) => ({ l, index }));
  const rank = ({ l, index }: (typeof all)[number]) => [l.op.direction === 'deploy' ? 0 : 1, l.startTime ?? '~', index] as const;
  all.sort((a, b) => {
    const [x, y] = [rank(a), rank(b)];
    return x[0] - y[0] || x[1].localeCompare(y[1]) || x[2] - y[2];
  });
  return all.map(({ l }) => ({
    node: l.op.node,
    interface: l.op.interface,
    operation: l.op.operation,
    relationship: l.op.relationship ?? '',
    instanceId: r.instances[l.op.instance]?.claimId ?? '',
    state: operationState[l.state],
    stateReason: l.reason ?? '',
    implementation: l.op.implementation,
    exitCode: l.exitCode ?? 0,
    startTime: l.startTime ? new Date(l.startTime) : undefined,
    duration: l.durationMs === undefined ? undefined : { seconds: Math.floor(l.durationMs / 1000), nanos: (l.durationMs % 1000) * 1e6 },
    outputTail: l.outputTail ?? '',
    outputs: l.outputs ?? {},
  }));
}

const ended = new Set<DeploymentRecord['phase']>(['DEPLOYED', 'DELETED', 'FAILED']);

/**
 * An operation as clients see it: its record (done, how it ended), the deployment as progress
 * (metadata) and, once it succeeded, as its response. Without a record (a deployment older than
 * operation records), the deployment's phase tells.
 */
export function toOperation(
  r: DeploymentRecord,
  op: OperationRecord | undefined,
  name: string,
  kind: OperationKind,
  reading: Reading,
): Operation {
  const any = Any.fromPartial({
    typeUrl: 'type.googleapis.com/lapis.tosca.v1.Deployment',
    value: Buffer.from(Deployment.encode(toDeployment(r, reading)).finish()),
  });
  const current = name === r.operation;
  const done = op ? op.done : !current || ended.has(r.phase);
  const error = op ? op.error : current && r.phase === 'FAILED' ? { code: Code.FAILED_PRECONDITION, message: r.reason } : undefined;
  return {
    name,
    kind: op?.kind ?? kind,
    metadata: any,
    done,
    result: !done
      ? undefined
      : error
        ? { $case: 'error', error: { code: error.code, message: error.message, details: [] } }
        : { $case: 'response', response: any },
    createTime: new Date(op?.createTime ?? r.createTime),
    updateTime: new Date(op?.done ? op.updateTime : r.updateTime),
    project: r.project,
  };
}

/** A request's inputs: values and text, each left out when empty. */
const givenOf = (request: { inputs?: Dict; textInputs: Record<string, string> }): GivenInputs => ({
  inputs: request.inputs && Object.keys(request.inputs).length ? request.inputs : undefined,
  textInputs: Object.keys(request.textInputs).length ? request.textInputs : undefined,
});

/** lapis.tosca.v1.ToscaService, and lapis.common.v1.OperationsService for its operations. */
export function toscaServices(deps: ServerDeps) {
  const { engine, deployments, operations, reading = {} } = deps;
  const operationOf = async (r: DeploymentRecord, kind: OperationKind, name = r.operation) =>
    toOperation(r, await operations.get(name), name, kind, reading);

  const visible = async (id: string, ctx: CallContext) => {
    if (!id) throw invalidArgument([{ field: 'deployment_id', description: 'is required' }]);
    const entry = await deployments.get(id);
    if (!entry || !(ctx.caller.admin || ctx.caller.projects.includes(entry.value.project))) throw notFound(`deployment ${id} not found`);
    return entry.value;
  };

  const tosca = service(ToscaServiceService, {
    async validateTemplate(request, ctx) {
      const answer = await checkTemplate(fromSource(request.template), givenOf(request), reading, ctx);
      return { valid: answer.valid, diagnostics: answer.diagnostics.map(toProtoDiagnostic), deploymentOrder: answer.order };
    },

    async translateTemplate(request, ctx) {
      const targets: Partial<Record<TranslationTarget, Target>> = {
        [TranslationTarget.HEAT]: 'hot',
        [TranslationTarget.RADL]: 'radl',
        [TranslationTarget.KUBERNETES]: 'k8s',
      };
      const target = targets[request.target];
      if (!target) throw invalidArgument([{ field: 'target', description: 'must be HEAT, RADL or KUBERNETES' }]);
      const answer = await checkTemplate(fromSource(request.template), givenOf(request), reading, ctx, target);
      return { output: answer.output ?? '', diagnostics: answer.diagnostics.map(toProtoDiagnostic) };
    },

    async createDeployment(request, ctx) {
      const template = fromSource(request.template);
      const given = givenOf(request);
      // A retried request (same request_id in the same project) gets the same deployment.
      const id = request.requestId
        ? `dep-${createHash('sha256').update(`${ctx.caller.project}\u0000${request.requestId}`).digest('hex').slice(0, 12)}`
        : newDeploymentId();
      const existing = await deployments.get(id);
      if (existing)
        return { operation: await operationOf(existing.value, 'tosca.CreateDeployment', operationName(id, 0)), deploymentId: id };
      // Checked off the event loop first; only a template found valid (so within bounds) is read
      // here again, for the topology the engine works from.
      rejectInvalid((await checkTemplate(template, given, reading, ctx)).diagnostics, given);
      const result = processStored(template, given, reading);
      rejectInvalid(result.diagnostics, given);
      // Kept typed: text inputs as their declared types made them.
      const inputs = typedInputs(result.topology?.inputValues, given.inputs, given.textInputs);
      const { files, mainFile } = templateFiles(template);
      const problems = deployProblems(result.topology!, files, mainFile);
      if (problems.length)
        throw failedPrecondition(`the template cannot be deployed: ${problems.map((p) => p.message).join('; ')}`, 'NOT_DEPLOYABLE');
      const now = new Date().toISOString();
      const record: DeploymentRecord = {
        id,
        project: ctx.caller.project,
        user: ctx.caller.user,
        template,
        inputs,
        phase: 'PENDING',
        reason: '',
        keepOnFailure: request.keepOnFailure,
        requestId: request.requestId,
        createTime: now,
        updateTime: now,
        operation: `operations/tosca/${id}/0`,
        generation: 0,
        action: 'create',
        instances: {},
        volumes: {},
        attachments: {},
        nodes: result.topology!.order.map((n) => ({ name: n, type: result.topology!.nodes.get(n)!.type })),
        outputs: {},
      };
      ctx.log.info({ deployment: id, nodes: record.nodes.length }, 'deployment created');
      const created = await engine.create(record, result.topology!, ctx.caller.token);
      return { operation: await operationOf(created, 'tosca.CreateDeployment'), deploymentId: id };
    },

    async getDeployment(request, ctx) {
      return { deployment: toDeployment(await visible(request.deploymentId, ctx), reading) };
    },

    async listDeployments(request, ctx) {
      const project = request.project || (ctx.caller.admin ? '' : ctx.caller.project);
      if (project && !ctx.caller.admin && !ctx.caller.projects.includes(project)) throw notFound(`project ${project} not found`);
      const all = (await deployments.list())
        .map((e) => e.value)
        .filter((r) => (!project || r.project === project) && (ctx.caller.admin || ctx.caller.projects.includes(r.project)))
        .filter((r) => !request.states.length || request.states.includes(phaseState[r.phase]))
        .sort((a, b) => a.id.localeCompare(b.id));
      const page = paginate(all, (r) => r.id, request);
      return { deployments: page.items.map((r) => toDeployment(r, reading)), nextPageToken: page.nextPageToken };
    },

    async updateDeployment(request, ctx) {
      const current = await visible(request.deploymentId, ctx);
      if (current.action === 'delete') throw failedPrecondition(`deployment ${current.id} is being deleted`, 'DEPLOYMENT_DELETING');
      if (request.requestId && current.requestId === request.requestId && current.generation > 0)
        return { operation: await operationOf(current, 'tosca.UpdateDeployment') };
      const template = request.template?.content ? fromSource(request.template) : current.template;
      const given = { ...givenOf(request), inputs: { ...current.inputs, ...(request.inputs ?? {}) } };
      rejectInvalid((await checkTemplate(template, given, reading, ctx)).diagnostics, given);
      const result = processStored(template, given, reading);
      rejectInvalid(result.diagnostics, given);
      const inputs = typedInputs(result.topology?.inputValues, given.inputs, given.textInputs);
      const { files, mainFile } = templateFiles(template);
      const problems = deployProblems(result.topology!, files, mainFile);
      if (problems.length)
        throw failedPrecondition(`the template cannot be deployed: ${problems.map((p) => p.message).join('; ')}`, 'NOT_DEPLOYABLE');
      const updated = await engine.update(
        current.id,
        (r) => {
          r.template = template;
          r.inputs = inputs;
          r.requestId = request.requestId || r.requestId;
          r.nodes = result.topology!.order.map((n) => ({ name: n, type: result.topology!.nodes.get(n)!.type }));
          return result.topology!;
        },
        ctx.caller.token,
      );
      return { operation: await operationOf(updated, 'tosca.UpdateDeployment') };
    },

    async deleteDeployment(request, ctx) {
      const current = await visible(request.deploymentId, ctx);
      const updated = (await engine.delete(current.id, ctx.caller.token)) ?? current;
      return { operation: await operationOf(updated, 'tosca.DeleteDeployment') };
    },

    async watchDeployment(request, ctx, send) {
      await visible(request.deploymentId, ctx);
      const watcher = await deployments.kv.watch({ key: request.deploymentId });
      const stop = () => watcher.stop();
      ctx.signal.addEventListener('abort', stop);
      let previous: DeploymentRecord | undefined;
      try {
        for await (const entry of watcher) {
          if (entry.operation !== 'PUT') break;
          const record = JSON.parse(Buffer.from(entry.value).toString('utf8')) as DeploymentRecord;
          // The node whose instances or lifecycle operations moved.
          const ofNode = (r: DeploymentRecord, node: string) =>
            JSON.stringify([
              Object.values(r.instances).filter((i) => i.spec.node === node),
              Object.values(r.lifecycle ?? {}).filter((l) => l.op.node === node),
            ]);
          const changed = previous ? (record.nodes.find((n) => ofNode(record, n.name) !== ofNode(previous!, n.name))?.name ?? '') : '';
          previous = record;
          await send({ deployment: toDeployment(record, reading), node: changed });
          if (record.phase === 'DELETED') break;
        }
      } finally {
        ctx.signal.removeEventListener('abort', stop);
        stop();
      }
    },
  });

  /** The operation, its record and its deployment, if the caller may see them. */
  const operationFor = async (name: string, ctx: CallContext) => {
    if (!name) throw invalidArgument([{ field: 'name', description: 'is required' }]);
    const parsed = parseOperationName(name);
    const entry = parsed && (await deployments.get(parsed.deploymentId));
    const record = await operations.get(name);
    if (
      !parsed ||
      !entry ||
      (!record && parsed.generation > entry.value.generation) ||
      !(ctx.caller.admin || ctx.caller.projects.includes(entry.value.project))
    ) {
      throw notFound(`operation ${name} not found`, 'OPERATION_NOT_FOUND');
    }
    const kind: OperationKind =
      parsed.generation === 0
        ? 'tosca.CreateDeployment'
        : entry.value.action === 'delete'
          ? 'tosca.DeleteDeployment'
          : 'tosca.UpdateDeployment';
    return { deployment: entry.value, record, operation: toOperation(entry.value, record, name, kind, reading) };
  };

  const operationsService = service(OperationsServiceService, {
    async getOperation(request, ctx) {
      return { operation: (await operationFor(request.name, ctx)).operation };
    },

    async watchOperation(request, ctx, send) {
      await watchOperationByPolling(async () => (await operationFor(request.name, ctx)).operation, send, ctx.signal);
    },

    async cancelOperation(request, ctx) {
      const { deployment, operation } = await operationFor(request.name, ctx);
      if (operation.done) return { operation };
      if (operation.kind === 'tosca.DeleteDeployment')
        throw failedPrecondition(
          `operation ${request.name} deletes deployment ${deployment.id}: a deletion cannot be cancelled`,
          'NOT_CANCELLABLE',
        );
      await engine.cancel(deployment.id);
      return { operation: (await operationFor(request.name, ctx)).operation };
    },

    async listOperations(request, ctx) {
      // Admins see every operation; others those of the project they act in.
      const visibleOp = (o: OperationRecord) =>
        ctx.caller.admin ? true : o.project === ctx.caller.project && ctx.caller.projects.includes(o.project);
      const records = (await operations.list())
        .filter((o) => visibleOp(o) && (!request.onlyRunning || !o.done))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const page = paginate(records, (o) => o.name, request);
      const out: Operation[] = [];
      for (const o of page.items) {
        const entry = await deployments.get(o.deploymentId);
        if (entry) out.push(toOperation(entry.value, o, o.name, o.kind, reading));
      }
      return { operations: out, nextPageToken: page.nextPageToken };
    },
  });

  return [tosca, operationsService];
}

export { formatDiagnostic };
