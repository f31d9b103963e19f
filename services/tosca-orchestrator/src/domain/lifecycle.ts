// A deployment's lifecycle operations as it runs them: their records (outcome, duration, the
// tail of their output, what they reported), which may run now, which wait, and the values of
// their inputs once the instances they read are known. Pure: no I/O.
//
// What an operation reports (get_operation_output): lines NAME=value written to the file named
// by $LAPIS_OPERATION_OUTPUTS; read back once it has ended and kept on the deployment. A
// playbook's inputs are also its extra variables, with their types.
import type { DeploymentRecord, InstanceRecord } from './deployment';
import type { LifecycleOp, LifecyclePlan } from './lifecycle-plan';
import { isDict, type Dict } from './registry';

export type OperationState = 'pending' | 'running' | 'done' | 'failed' | 'skipped';

export interface LifecycleRecord {
  op: LifecycleOp;
  state: OperationState;
  /** Why it failed or was skipped. */
  reason?: string;
  exitCode?: number;
  startTime?: string;
  durationMs?: number;
  /** The last lines of its output (OUTPUT_TAIL_CHARS at most). */
  outputTail?: string;
  outputs?: Record<string, string>;
}

export const OUTPUT_TAIL_CHARS = 2048;
const MAX_OUTPUTS = 64;
const MAX_OUTPUT_VALUE = 4096;

const settled = (r: LifecycleRecord | undefined) => !r || r.state === 'done' || r.state === 'skipped';
const ended = (r: LifecycleRecord | undefined) => settled(r) || r?.state === 'failed';
const sameOp = (a: LifecycleOp, b: LifecycleOp) => JSON.stringify({ ...a, after: [] }) === JSON.stringify({ ...b, after: [] });

/**
 * A new set of operations (a deployment, an update). An update reruns, in instances that stay,
 * the configure operation of every node whose properties changed and of every node that
 * requires one of those (after theirs), and nothing else; operations that failed or were cut
 * short run again, new ones (new instances, a replaced one) run, and those of instances on their
 * way out stay so their undeploy operations run as they go.
 */
export function applyLifecycle(record: DeploymentRecord, built: Pick<LifecyclePlan, 'ops' | 'fingerprints' | 'requires'>): void {
  const before = record.lifecycle ?? {};
  const changed = reconfigured(record.fingerprints, built.fingerprints, built.requires);
  const next: Record<string, LifecycleRecord> = {};
  const rerun: LifecycleOp[] = [];
  for (const op of built.ops) {
    const had = before[op.key];
    // An instance wanted anew under a kept key (a replacement) deploys its software again.
    const fresh = op.involves.some((i) => record.instances[i]?.state === 'wanted') && op.direction === 'deploy';
    const again = !had || had.state === 'failed' || had.state === 'running' || fresh || (had.state === 'skipped' && !sameOp(had.op, op));
    if (!had && joinsConfigured(before, op))
      next[op.key] = { op, state: 'skipped', reason: 'its source was configured before this target existed (add_target tells it)' };
    else if (again) next[op.key] = op.skip ? { op, state: 'skipped', reason: op.skip } : { op, state: 'pending' };
    else if (had.state === 'done' && op.interface === 'Standard' && op.operation === 'configure' && changed.has(op.node)) {
      next[op.key] = { op, state: 'pending' };
      rerun.push(op);
    } else next[op.key] = { ...had, op };
  }
  const closure = requiredClosure(built.requires);
  for (const op of rerun) op.after.push(...rerun.filter((o) => closure(op.node).has(o.node)).map((o) => o.key));
  for (const [key, had] of Object.entries(before)) {
    // A replaced instance is retired as "<key>~g<generation>" (applyPlan): what ran in it goes
    // with it, so its undeploy operations run as it goes.
    const retired = had.op.involves.map((i) => (record.instances[`${i}~g${record.generation}`] ? `${i}~g${record.generation}` : i));
    if (retired.some((to, n) => to !== had.op.involves[n])) {
      const copy = `${key}~g${record.generation}`;
      const instance = retired[had.op.involves.indexOf(had.op.instance)] ?? had.op.instance;
      next[copy] = { ...had, op: { ...had.op, key: copy, instance, involves: retired } };
    }
    if (!next[key] && had.op.involves.some((i) => going(record.instances[i]))) next[key] = had;
  }
  record.lifecycle = next;
  record.fingerprints = built.fingerprints;
}

/**
 * A relationship operation of a new pair whose source had deployed already (a target that
 * scaled out): only add_target and add_source run for it, as TOSCA has it.
 */
function joinsConfigured(before: Record<string, LifecycleRecord>, op: LifecycleOp): boolean {
  if (op.interface !== 'Configure' || op.direction !== 'deploy' || op.operation === 'add_target' || op.operation === 'add_source')
    return false;
  const source = op.involves[0];
  return Object.values(before).some(
    (r) => r.op.node === op.source && r.op.involves.length === 1 && r.op.instance === source && r.state === 'done',
  );
}

/** Nodes whose properties changed since the last plan, and the nodes that require them (transitively). */
function reconfigured(
  before: Record<string, string> | undefined,
  now: Record<string, string>,
  requires: Record<string, string[]>,
): Set<string> {
  if (!before) return new Set();
  const changed = Object.keys(now).filter((n) => before[n] !== undefined && before[n] !== now[n]);
  const closure = requiredClosure(requires);
  return new Set(Object.keys(now).filter((n) => changed.includes(n) || changed.some((c) => closure(n).has(c))));
}

/** Everything a node requires, directly or through what it requires. */
function requiredClosure(requires: Record<string, string[]>): (node: string) => Set<string> {
  return (node) => {
    const out = new Set<string>();
    const stack = [...(requires[node] ?? [])];
    while (stack.length) {
      const n = stack.pop()!;
      if (out.has(n)) continue;
      out.add(n);
      stack.push(...(requires[n] ?? []));
    }
    return out;
  };
}

const going = (i: InstanceRecord | undefined) => !!i && (i.state === 'unwanted' || i.state === 'deleting');

export type LifecycleStep = { kind: 'runOperation'; key: string } | { kind: 'skipOperation'; key: string; reason: string };

/** What runs now, whether the deployment still waits for operations, and the first failure. */
export function lifecycleSteps(record: DeploymentRecord): { steps: LifecycleStep[]; waiting: number; failed?: LifecycleRecord } {
  const lifecycle = record.lifecycle ?? {};
  const steps: LifecycleStep[] = [];
  let waiting = 0;
  let failed: LifecycleRecord | undefined;
  const deleting = record.action === 'delete';
  for (const [key, r] of Object.entries(lifecycle)) {
    const { op } = r;
    const instances = op.involves.map((i) => record.instances[i]);
    if (op.direction === 'deploy') {
      if (deleting || instances.some((i) => !i || going(i) || i.state === 'deleted')) continue;
      if (r.state === 'failed') failed ??= r;
      if (r.state !== 'pending' && r.state !== 'running') continue;
      waiting++;
      if (r.state === 'pending' && instances.every((i) => i?.state === 'running') && op.after.every((a) => settled(lifecycle[a])))
        steps.push({ kind: 'runOperation', key });
      continue;
    }
    if (r.state !== 'pending' || !(deleting || instances.some(going))) continue;
    if (!ranFor(lifecycle, op)) {
      steps.push({ kind: 'skipOperation', key, reason: 'its node never deployed there' });
      continue;
    }
    const host = record.instances[op.instance];
    if (!host || !(host.state === 'running' || going(host))) {
      steps.push({ kind: 'skipOperation', key, reason: `instance ${op.instance} is not running` });
      continue;
    }
    if (op.after.every((a) => ended(lifecycle[a]))) steps.push({ kind: 'runOperation', key });
  }
  return { steps, waiting, failed };
}

/** Whether the deployment side of an undeploy operation ran (stop only what was created). */
function ranFor(lifecycle: Record<string, LifecycleRecord>, op: LifecycleOp): boolean {
  return Object.values(lifecycle).some(
    (r) =>
      r.op.direction === 'deploy' &&
      (r.state === 'done' || r.state === 'failed') &&
      r.op.node === op.node &&
      r.op.involves.join() === op.involves.join() &&
      r.op.relationship === op.relationship,
  );
}

/** Undeploy operations still to run in an instance (or for a pair it is an end of): it is removed after them. */
export function undeployPending(record: DeploymentRecord, instance: string): boolean {
  return Object.values(record.lifecycle ?? {}).some(
    (r) => r.op.direction === 'undeploy' && (r.state === 'pending' || r.state === 'running') && r.op.involves.includes(instance),
  );
}

/** The failure as the deployment says it: node, operation, instance, the last lines of its output. */
export function failureReason(r: LifecycleRecord): string {
  const { op } = r;
  const lines = (r.outputTail ?? '').trimEnd().split('\n').slice(-5).join('\n');
  return (
    `node ${op.node}: ${op.interface}.${op.operation}${op.relationship ? ` (relationship ${op.relationship})` : ''} failed in ${op.instance}` +
    `: ${r.reason ?? 'failed'}${lines ? `; last output:\n${lines}` : ''}`
  );
}

/** The last lines of an output, within OUTPUT_TAIL_CHARS. */
export function outputTail(text: string): string {
  if (text.length <= OUTPUT_TAIL_CHARS) return text;
  const cut = text.slice(-OUTPUT_TAIL_CHARS);
  const newline = cut.indexOf('\n');
  return newline >= 0 && newline < cut.length - 1 ? cut.slice(newline + 1) : cut;
}

/** NAME=value lines (what the operation wrote to $LAPIS_OPERATION_OUTPUTS). */
export function parseOutputs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m || Object.keys(out).length >= MAX_OUTPUTS) continue;
    out[m[1]!] = m[2]!.slice(0, MAX_OUTPUT_VALUE);
  }
  return out;
}

/**
 * The operation's inputs, the runtime attributes and operation outputs they read resolved now;
 * `unresolved` names an input that cannot be yet. An attribute of a node with one instance, or
 * of the instance the operation runs for, is that value; of a node with several, the list.
 */
export function operationInputs(record: DeploymentRecord, op: LifecycleOp): { values: Dict; unresolved?: string } {
  const values: Dict = {};
  for (const [name, value] of Object.entries(op.inputs)) {
    const resolved = resolve(record, op, value);
    if (resolved === undefined || hasFunction(resolved)) return { values, unresolved: name };
    values[name] = resolved;
  }
  return { values };
}

/** The inputs as environment variables: strings as they are, other values as JSON. */
export function operationEnvironment(
  record: DeploymentRecord,
  op: LifecycleOp,
): { environment: Record<string, string>; unresolved?: string } {
  const { values, unresolved } = operationInputs(record, op);
  const environment: Record<string, string> = {};
  for (const [name, v] of Object.entries(values))
    environment[name] = typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return { environment, unresolved };
}

const FUNCTIONS = new Set(['get_attribute', 'get_operation_output', 'concat', 'join', 'token', 'get_input', 'get_property']);
const hasFunction = (v: unknown): boolean =>
  Array.isArray(v)
    ? v.some(hasFunction)
    : isDict(v)
      ? Object.keys(v).some((k) => FUNCTIONS.has(k)) || Object.values(v).some(hasFunction)
      : false;

function resolve(record: DeploymentRecord, op: LifecycleOp, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => resolve(record, op, v));
  if (!isDict(value)) return value;
  const [name, raw] = Object.entries(value)[0] ?? [];
  const args = Array.isArray(raw) ? raw.map((a) => resolve(record, op, a)) : [resolve(record, op, raw)];
  switch (Object.keys(value).length === 1 ? name : undefined) {
    case 'get_attribute':
      return attribute(record, op, String(args[0]), args.slice(1));
    case 'get_operation_output':
      return operationOutput(record, op, args.map(String));
    case 'concat':
      return args.some((a) => a === undefined || hasFunction(a))
        ? undefined
        : args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join('');
    case 'join':
      return Array.isArray(args[0]) ? args[0].map(String).join(typeof args[1] === 'string' ? args[1] : '') : undefined;
    case 'token':
      return typeof args[0] === 'string' ? (args[0].split(String(args[1]))[Number(args[2])] ?? '') : undefined;
    default:
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(record, op, v)]));
  }
}

function attribute(record: DeploymentRecord, op: LifecycleOp, node: string, path: unknown[]): unknown {
  const live = Object.entries(record.instances).filter(([, i]) => i.spec.node === node && (i.state === 'running' || going(i)));
  const attributeOf = (i: InstanceRecord) => (path[0] === 'tosca_id' ? i.claimId : i.addresses[0]?.ip);
  const own = live.find(([key]) => key === op.instance || op.involves.includes(key));
  let v: unknown = own ? attributeOf(own[1]) : live.length === 1 ? attributeOf(live[0]![1]) : live.map(([, i]) => attributeOf(i));
  for (const k of path.slice(1)) v = Array.isArray(v) ? v[Number(k)] : isDict(v) ? (v as Dict)[String(k)] : undefined;
  return v;
}

function operationOutput(record: DeploymentRecord, op: LifecycleOp, [node, iface, operation, name]: string[]): unknown {
  const matches = Object.values(record.lifecycle ?? {}).filter(
    (r) =>
      (r.op.node === node || r.op.relationshipTemplate === node) &&
      (r.op.interface === iface || iface?.endsWith(`.${r.op.interface}`)) &&
      r.op.operation === operation &&
      r.outputs?.[name!] !== undefined,
  );
  const own = matches.find((r) => r.op.instance === op.instance || op.involves.includes(r.op.instance)) ?? matches[0];
  return own?.outputs?.[name!];
}
