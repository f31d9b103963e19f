// What the deployment use cases need from the rest of Lapis: claims through the scheduler,
// instances and volumes through the runtime (gRPC clients in production: adapters/lapis.ts).
import type { AttachmentPlan, InstancePlan, VolumePlan } from '../domain/plan';

/**
 * Whom the engine acts for: the caller's token while it has it, else the service's own (an
 * admin) acting in the deployment's project, so a resumed deployment stays in its project.
 */
export interface ActAs {
  token?: string;
  project: string;
}

export interface Ports {
  submitClaim(spec: InstancePlan, requestId: string, as: ActAs): Promise<string>;
  /** Ends the claim (idempotent); `placed`: it had been given a node, so an instance may exist there. */
  cancelClaim(claimId: string, requestId: string, as: ActAs): Promise<{ placed: boolean }>;
  /**
   * Removes the instance from its node, whatever its state (an instance in ERROR outlives its
   * ended claim): `deleted` once it is gone, `absent` when the runtime has no such instance (yet),
   * `elsewhere` when it runs on a node this runtime does not serve (its events tell when it goes).
   */
  deleteInstance(instanceId: string, requestId: string, as: ActAs): Promise<'deleted' | 'absent' | 'elsewhere'>;
  /** On `node` (where the instance it is attached to runs), or where the runtime decides. */
  createVolume(spec: VolumePlan, requestId: string, as: ActAs, node?: string): Promise<string>;
  deleteVolume(volumeId: string, requestId: string, as: ActAs): Promise<void>;
  attachVolume(volumeId: string, instanceId: string, spec: AttachmentPlan, requestId: string, as: ActAs): Promise<void>;
  /** Writes files into a running instance and runs a command there (lifecycle operations). */
  exec(instanceId: string, request: ExecRequest, as: ActAs): Promise<ExecResult>;
}

export interface ExecRequest {
  files: { path: string; content: string; mode: number }[];
  /** Empty: only the files are written. */
  argv: string[];
  environment: Record<string, string>;
  workingDir: string;
  timeoutS: number;
}

export interface ExecResult {
  exitCode: number;
  /** The last of what it wrote (stdout and stderr). */
  output: string;
  timedOut: boolean;
}
