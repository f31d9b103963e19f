// A deployment's state as the orchestrator keeps it, and the pure step that decides what to do
// next: which claims to submit, volumes to create and attach, what to delete and in which
// order, when the deployment is DEPLOYED, FAILED or DELETED. The engine performs the actions and
// feeds back what happened (ids, instance states from the runtime's events).
import type { Dict } from './registry';
import { failureReason, lifecycleSteps, undeployPending, type LifecycleRecord, type LifecycleStep } from './lifecycle';
import type { AttachmentPlan, InstancePlan, Plan, VolumePlan } from './plan';

export type Action = 'create' | 'update' | 'delete' | 'none';
export type Phase = 'PENDING' | 'CREATING' | 'DEPLOYED' | 'UPDATING' | 'DELETING' | 'DELETED' | 'FAILED';

export interface InstanceRecord {
  spec: InstancePlan;
  claimId?: string;
  /** The node the instance runs on (from the runtime's events): its volumes are made there. */
  host?: string;
  state: 'wanted' | 'submitted' | 'running' | 'error' | 'unwanted' | 'deleting' | 'deleted';
  /**
   * The request id its claim was submitted with: a submission whose answer was lost (a delete
   * came meanwhile, a restart) finds its claim again with it (the scheduler gives back the same
   * claim), so nothing submitted is left behind.
   */
  submitRequestId?: string;
  addresses: { network: string; ip: string }[];
  reason?: string;
}

export interface VolumeRecord {
  spec: VolumePlan;
  volumeId?: string;
  state: 'wanted' | 'created' | 'unwanted' | 'deleted';
}

export interface AttachmentRecord {
  spec: AttachmentPlan;
  state: 'wanted' | 'attached' | 'unwanted' | 'detached';
}

export interface DeploymentRecord {
  id: string;
  project: string;
  user: string;
  template: { yaml?: string; csar?: string; fileName: string; files: Record<string, string> };
  inputs: Dict;
  phase: Phase;
  reason: string;
  keepOnFailure: boolean;
  requestId: string;
  createTime: string;
  updateTime: string;
  operation: string;
  generation: number;
  action: Action;
  instances: Record<string, InstanceRecord>;
  volumes: Record<string, VolumeRecord>;
  attachments: Record<string, AttachmentRecord>;
  /** Node template name -> type, in deployment order. */
  nodes: { name: string; type: string }[];
  outputs: Dict;
  /** The software's lifecycle operations by key (lifecycle.ts); absent in records made before them. */
  lifecycle?: Record<string, LifecycleRecord>;
  /** Each node's values when last planned (lifecycle-plan.ts): an update reconfigures the nodes whose values changed. */
  fingerprints?: Record<string, string>;
  /** The W3C trace context of the call that made the deployment: its operations' spans join that trace. */
  traceparent?: string;
}

export type Step =
  | { kind: 'submitClaim'; key: string }
  | { kind: 'createVolume'; key: string }
  | { kind: 'attachVolume'; key: string }
  | { kind: 'cancelClaim'; key: string }
  | { kind: 'deleteVolume'; key: string }
  | LifecycleStep;

/** Applies a new plan: new things wanted, things no longer in the plan unwanted, changed ones replaced. */
export function applyPlan(record: DeploymentRecord, next: Plan): void {
  const keys = new Set(next.instances.map((i) => i.key));
  for (const [key, inst] of Object.entries(record.instances)) {
    if (!keys.has(key) && inst.state !== 'deleted') inst.state = 'unwanted';
  }
  for (const spec of next.instances) {
    const had = record.instances[spec.key];
    if (!had || had.state === 'deleted') record.instances[spec.key] = { spec, state: 'wanted', addresses: [] };
    else if (JSON.stringify({ ...had.spec, after: [] }) !== JSON.stringify({ ...spec, after: [] })) {
      // Replaced: the old one goes under a retired key, the new one is wanted.
      record.instances[`${spec.key}~g${record.generation}`] = { ...had, state: 'unwanted' };
      record.instances[spec.key] = { spec, state: 'wanted', addresses: [] };
    } else had.spec = spec;
  }
  const vkeys = new Set(next.volumes.map((v) => v.key));
  for (const [key, v] of Object.entries(record.volumes)) if (!vkeys.has(key) && v.state !== 'deleted') v.state = 'unwanted';
  for (const spec of next.volumes)
    if (!record.volumes[spec.key] || record.volumes[spec.key]!.state === 'deleted') record.volumes[spec.key] = { spec, state: 'wanted' };
  const akeys = new Set(next.attachments.map((a) => a.key));
  for (const [key, a] of Object.entries(record.attachments)) if (!akeys.has(key) && a.state !== 'detached') a.state = 'unwanted';
  for (const spec of next.attachments) {
    const had = record.attachments[spec.key];
    if (!had || had.state === 'detached' || record.instances[spec.instance]?.state === 'wanted')
      record.attachments[spec.key] = { spec, state: 'wanted' };
  }
}

/**
 * Marks everything for deletion (DeleteDeployment, or a rollback): whatever may exist outside
 * (a claim, even one whose submission has not answered yet; a volume) is to be removed, what
 * never left the record is simply gone.
 */
export function wantNothing(record: DeploymentRecord): void {
  for (const i of Object.values(record.instances)) {
    if (i.state !== 'deleted') i.state = i.claimId || (i.state === 'submitted' && i.submitRequestId) ? 'unwanted' : 'deleted';
  }
  for (const v of Object.values(record.volumes)) if (v.state !== 'deleted') v.state = v.volumeId ? 'unwanted' : 'deleted';
  for (const a of Object.values(record.attachments)) if (a.state !== 'detached') a.state = 'detached';
}

/**
 * What to do now, and the phase the deployment is in. Creation follows `after` (what an
 * instance needs runs first) and independent things go in parallel; deletion goes in reverse:
 * an instance goes only when nothing that needs it is still there, a volume after the
 * instances it was attached to.
 */
export function nextSteps(record: DeploymentRecord): { steps: Step[]; phase: Phase; reason: string } {
  const steps: Step[] = [];
  const instances = Object.entries(record.instances);
  const failed = instances.find(([, i]) => i.state === 'error' && i.spec && record.action !== 'delete');
  if (failed)
    return { steps, phase: 'FAILED', reason: `instance ${failed[0]} (node ${failed[1].spec.node}) failed: ${failed[1].reason ?? 'error'}` };
  const operations = lifecycleSteps(record);
  if (operations.failed && record.action !== 'delete') return { steps, phase: 'FAILED', reason: failureReason(operations.failed) };
  steps.push(...operations.steps);
  // Deletion first (an update scaling down, a replaced instance, a delete or rollback).
  const live = (key: string) => {
    const i = record.instances[key];
    return !!i && i.state !== 'deleted' && i.state !== 'unwanted' && i.state !== 'deleting';
  };
  for (const [key, inst] of instances) {
    if (inst.state !== 'unwanted') continue;
    const neededBy = instances.some(
      ([k, other]) =>
        k !== key &&
        other.state !== 'deleted' &&
        other.state !== 'unwanted' &&
        other.state !== 'deleting' &&
        other.spec.after.includes(key) &&
        record.action === 'delete',
    );
    const dependentsGoing = instances.some(
      ([k, other]) => k !== key && (other.state === 'unwanted' || other.state === 'deleting') && other.spec.after.includes(key),
    );
    // Its software is stopped and deleted first (undeploy operations).
    if (!neededBy && !dependentsGoing && !undeployPending(record, key)) steps.push({ kind: 'cancelClaim', key });
  }
  for (const [key, vol] of Object.entries(record.volumes)) {
    if (vol.state !== 'unwanted') continue;
    const stillAttached = Object.values(record.attachments).some(
      (a) => a.spec.volume === key && record.instances[a.spec.instance] && record.instances[a.spec.instance]!.state !== 'deleted',
    );
    if (!stillAttached) steps.push({ kind: 'deleteVolume', key });
  }
  if (record.action === 'delete') {
    const left =
      instances.filter(([, i]) => i.state !== 'deleted').length + Object.values(record.volumes).filter((v) => v.state !== 'deleted').length;
    // A rollback keeps the deployment FAILED with the cause of the failure.
    return left
      ? {
          steps,
          phase: record.phase === 'FAILED' ? 'FAILED' : 'DELETING',
          reason: record.phase === 'FAILED' ? record.reason : `${left} resources left to delete`,
        }
      : { steps, phase: record.phase === 'FAILED' ? 'FAILED' : 'DELETED', reason: record.phase === 'FAILED' ? record.reason : '' };
  }
  // A volume is made on the node its instance runs on, so once that instance runs.
  for (const [key, vol] of Object.entries(record.volumes)) {
    if (vol.state !== 'wanted') continue;
    const att = Object.values(record.attachments).find((a) => a.spec.volume === key);
    if (!att || record.instances[att.spec.instance]?.state === 'running') steps.push({ kind: 'createVolume', key });
  }
  for (const [key, inst] of instances) {
    if (inst.state !== 'wanted') continue;
    if (inst.spec.after.every((k) => !record.instances[k] || record.instances[k]!.state === 'running' || !live(k)))
      steps.push({ kind: 'submitClaim', key });
  }
  for (const [key, att] of Object.entries(record.attachments)) {
    if (att.state !== 'wanted') continue;
    if (record.volumes[att.spec.volume]?.state === 'created' && record.instances[att.spec.instance]?.state === 'running')
      steps.push({ kind: 'attachVolume', key });
  }
  const waiting =
    instances.filter(([, i]) => i.state === 'wanted' || i.state === 'submitted').length +
    Object.values(record.volumes).filter((v) => v.state === 'wanted').length +
    Object.values(record.attachments).filter((a) => a.state === 'wanted').length +
    instances.filter(([, i]) => i.state === 'unwanted' || i.state === 'deleting').length +
    Object.values(record.volumes).filter((v) => v.state === 'unwanted').length +
    operations.waiting;
  if (!waiting) return { steps, phase: 'DEPLOYED', reason: '' };
  return { steps, phase: record.action === 'update' ? 'UPDATING' : 'CREATING', reason: `waiting for ${waiting} resources` };
}

/** Attribute values from the instances: addresses per node (for get_attribute and outputs). */
export function nodeAttributes(record: DeploymentRecord): Map<string, Dict> {
  const out = new Map<string, Dict>();
  for (const inst of Object.values(record.instances)) {
    if (inst.state !== 'running') continue;
    const attrs = out.get(inst.spec.node) ?? { private_address: [], public_address: [], instance_ids: [] };
    const ips = inst.addresses.map((a) => a.ip);
    (attrs.private_address as string[]).push(...ips.slice(0, 1));
    (attrs.public_address as string[]).push(...ips.slice(0, 1));
    (attrs.instance_ids as string[]).push(inst.claimId ?? '');
    out.set(inst.spec.node, attrs);
  }
  return out;
}
