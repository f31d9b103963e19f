// The engine's ports over gRPC: claims through the scheduler, volumes through the runtime. The
// caller's token is forwarded when the engine has it (project scoping holds); a resumed
// deployment goes on with the service's own token.
import { call, Code, createClient, errorDetails } from '@lapis/platform';
import { InstanceState, PortProtocol, type InstanceSpec } from '@lapis/proto/lapis/common/v1/common';

import type {
  AttachVolumeRequest,
  AttachVolumeResponse,
  CreateVolumeRequest,
  CreateVolumeResponse,
  DeleteInstanceRequest,
  DeleteInstanceResponse,
  ExecInInstanceRequest,
  ExecInInstanceResponse,
  StartInstanceRequest,
  StartInstanceResponse,
  StopInstanceRequest,
  StopInstanceResponse,
} from '@lapis/proto/lapis/runtime/v1/runtime';
import { RuntimeServiceClient } from '@lapis/proto/lapis/runtime/v1/runtime_service';
import {
  PreemptionAction,
  type CancelClaimRequest,
  type CancelClaimResponse,
  type SubmitClaimRequest,
  type SubmitClaimResponse,
} from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import type { ActAs, ExecRequest, ExecResult, Ports } from '../application/ports';
import type { InstancePlan } from '../domain/plan';

export function instanceSpec(spec: InstancePlan, deployment: string): InstanceSpec {
  // Names are unique in a project: two deployments of one template must not collide.
  const suffix = deployment
    .replace(/^dep-/, '')
    .replace(/[^a-z0-9]/g, '')
    .slice(0, 8);
  return {
    name: `${spec.name.slice(0, 54).replace(/-+$/, '')}-${suffix}`,
    flavor: spec.flavor,
    resources: spec.flavor
      ? undefined
      : { cpuMillis: spec.cpuMillis, memoryBytes: spec.memoryBytes, gpus: spec.gpus, pids: 0, diskBytes: spec.diskBytes },
    image: spec.image,
    command: spec.command,
    environment: spec.environment,
    userData: Buffer.alloc(0),
    sshPublicKeys: [],
    labels: { 'tosca/deployment': deployment, 'tosca/node': spec.node },
    ports: spec.ports.map((p) => ({
      containerPort: p.containerPort,
      hostPort: p.hostPort,
      protocol: p.protocol.toLowerCase() === 'udp' ? PortProtocol.UDP : PortProtocol.TCP,
    })),
    volumes: [],
    devices: [],
    networks: spec.networks,
    restartOnFailure: true,
  };
}

export class LapisPorts implements Ports {
  private readonly clients = new Map<string, { scheduler: SchedulerServiceClient; runtime: RuntimeServiceClient }>();
  private readonly execClients = new Map<string, RuntimeServiceClient>();

  constructor(private readonly addresses: { scheduler: string; runtime: string; serviceToken: string }) {}

  private forToken(as: ActAs) {
    const token = as.token ?? this.addresses.serviceToken;
    const key = `${token}\n${as.project}`;
    let c = this.clients.get(key);
    if (!c) {
      c = {
        scheduler: createClient(SchedulerServiceClient, this.addresses.scheduler, { token, project: as.project }),
        // Deleting an instance waits for it to stop (SIGTERM, then kill after the runtime's stop
        // timeout), and making a volume formats it: longer than the usual deadline.
        runtime: createClient(RuntimeServiceClient, this.addresses.runtime, {
          token,
          project: as.project,
          deadlineMs: 60_000,
        }),
      };
      this.clients.set(key, c);
    }
    return c;
  }

  async submitClaim(spec: InstancePlan, requestId: string, as: ActAs): Promise<string> {
    const { scheduler } = this.forToken(as);
    const deployment = requestId.split(':')[0]!;
    const response = await call<SubmitClaimRequest, SubmitClaimResponse>(scheduler.submitClaim.bind(scheduler), {
      spec: instanceSpec(spec, deployment),
      preemptible: spec.preemptible,
      onPreemption: PreemptionAction.REQUEUE,
      // No anti-affinity by default: a scaled node must fit on a one-node site too.
      partition: '',
      backend: 0,
      antiAffinityGroup: '',
      qos: '',
      requestId,
    });
    return response.claim!.id;
  }

  async cancelClaim(claimId: string, requestId: string, as: ActAs): Promise<{ placed: boolean }> {
    const { scheduler } = this.forToken(as);
    try {
      const response = await call<CancelClaimRequest, CancelClaimResponse>(scheduler.cancelClaim.bind(scheduler), { claimId, requestId });
      return { placed: !!response.claim?.node };
    } catch (error) {
      // A claim the scheduler does not know was never placed anywhere.
      if ((error as { code?: number }).code === Code.NOT_FOUND) return { placed: false };
      throw error;
    }
  }

  async deleteInstance(instanceId: string, requestId: string, as: ActAs): Promise<'deleted' | 'absent' | 'elsewhere'> {
    const { runtime } = this.forToken(as);
    try {
      const response = await call<DeleteInstanceRequest, DeleteInstanceResponse>(runtime.deleteInstance.bind(runtime), {
        instanceId,
        timeout: undefined,
        requestId: `${requestId}:delete`,
      });
      const state = response.instance?.state;
      return state === InstanceState.DELETED || state === InstanceState.PREEMPTED ? 'deleted' : 'elsewhere';
    } catch (error) {
      const code = (error as { code?: number }).code;
      if (code === Code.NOT_FOUND) return 'absent';
      if (code === Code.FAILED_PRECONDITION && errorDetails(error as never).errorInfo?.reason === 'WRONG_NODE') return 'elsewhere';
      throw error;
    }
  }

  async createVolume(
    spec: { key: string; sizeBytes: number; filesystem: string },
    requestId: string,
    as: ActAs,
    node?: string,
  ): Promise<string> {
    const { runtime } = this.forToken(as);
    const response = await call<CreateVolumeRequest, CreateVolumeResponse>(runtime.createVolume.bind(runtime), {
      name: spec.key
        .toLowerCase()
        .replace(/[^a-z0-9-]+/g, '-')
        .slice(0, 63),
      sizeBytes: spec.sizeBytes,
      filesystem: spec.filesystem,
      node: node ?? '',
      labels: {},
      requestId,
    });
    return response.volume!.id;
  }

  async deleteVolume(volumeId: string, _requestId: string, as: ActAs): Promise<void> {
    const { runtime } = this.forToken(as);
    try {
      await call(runtime.deleteVolume.bind(runtime), { volumeId } as Parameters<RuntimeServiceClient['deleteVolume']>[0]);
    } catch (error) {
      // Already gone (a retried deletion).
      if ((error as { code?: number }).code !== Code.NOT_FOUND) throw error;
    }
  }

  async attachVolume(volumeId: string, instanceId: string, spec: { mountPath: string }, requestId: string, as: ActAs): Promise<void> {
    const { runtime } = this.forToken(as);
    const attach = (id: string) =>
      call<AttachVolumeRequest, AttachVolumeResponse>(runtime.attachVolume.bind(runtime), {
        volumeId,
        instanceId,
        mountPath: spec.mountPath,
        readOnly: false,
        requestId: id,
      });
    try {
      await attach(requestId);
    } catch (error) {
      const refused =
        (error as { code?: number }).code === Code.FAILED_PRECONDITION &&
        errorDetails(error as never).errorInfo?.reason === 'ATTACH_NOT_SUPPORTED';
      if (!refused) throw error;
      // A node whose instances are Kubernetes Pods fixes a pod's volumes when it is made: the
      // instance is stopped (its pod goes), the volume recorded, and its new pod has it. Its
      // RUNNING event then brings the new pod's address into the deployment.
      await call<StopInstanceRequest, StopInstanceResponse>(runtime.stopInstance.bind(runtime), {
        instanceId,
        timeout: undefined,
        requestId: `${requestId}:stop`,
      });
      await attach(`${requestId}:stopped`);
      await call<StartInstanceRequest, StartInstanceResponse>(runtime.startInstance.bind(runtime), {
        instanceId,
        requestId: `${requestId}:start`,
      });
    }
  }

  async exec(instanceId: string, request: ExecRequest, as: ActAs): Promise<ExecResult> {
    // Running commands in instances is for the services: always the orchestrator's own token,
    // and a deadline past the longest operation (the runtime answers at the operation's timeout).
    let runtime = this.execClients.get(as.project);
    if (!runtime) {
      runtime = createClient(RuntimeServiceClient, this.addresses.runtime, {
        token: this.addresses.serviceToken,
        project: as.project,
        deadlineMs: 3_660_000,
      });
      this.execClients.set(as.project, runtime);
    }
    const response = await call<ExecInInstanceRequest, ExecInInstanceResponse>(runtime.execInInstance.bind(runtime), {
      instanceId,
      files: request.files.map((f) => ({ path: f.path, content: Buffer.from(f.content), mode: f.mode })),
      argv: request.argv,
      environment: request.environment,
      workingDir: request.workingDir,
      timeout: { seconds: request.timeoutS, nanos: 0 },
    });
    return { exitCode: response.exitCode, output: Buffer.from(response.outputTail).toString('utf8'), timedOut: response.timedOut };
  }

  close(): void {
    for (const c of this.clients.values()) {
      c.scheduler.close();
      c.runtime.close();
    }
    for (const c of this.execClients.values()) c.close();
  }
}
