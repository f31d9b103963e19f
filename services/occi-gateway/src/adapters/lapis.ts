// The gateway's view of Lapis: the scheduler (computes are claims), the runtime (instances and
// volumes) and image-sync (os templates), called with the OCCI client's own token so every
// service applies its own project scoping. Lists name the client's project: an admin's too, so
// that a project's collection is the same whoever reads it (the gateway keeps it per project).
import { Metadata, status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { listAll } from '@lapis/platform';
import type { Flavor, InstanceSpec } from '@lapis/proto/lapis/common/v1/common';
import type { Image, ListImagesResponse } from '@lapis/proto/lapis/images/v1/images';
import { ImageSyncServiceClient } from '@lapis/proto/lapis/images/v1/image_sync_service';
import type {
  Instance,
  Network,
  NetworkAllocation,
  Volume,
  AttachVolumeResponse,
  ConnectNetworkResponse,
  CreateNetworkResponse,
  DeleteNetworkResponse,
  DisconnectNetworkResponse,
  GetNetworkResponse,
  ListNetworksResponse,
  CreateVolumeResponse,
  DeleteInstanceResponse,
  DeleteVolumeResponse,
  DetachVolumeResponse,
  GetInstanceResponse,
  GetVolumeResponse,
  ListInstancesResponse,
  ListVolumesResponse,
  RebootInstanceResponse,
  ResumeInstanceResponse,
  StartInstanceResponse,
  StopInstanceResponse,
  SuspendInstanceResponse,
} from '@lapis/proto/lapis/runtime/v1/runtime';
import { RuntimeServiceClient } from '@lapis/proto/lapis/runtime/v1/runtime_service';
import {
  ClaimState,
  type Claim,
  type CancelClaimResponse,
  type GetClaimResponse,
  type ListClaimsResponse,
  type ListFlavorsResponse,
  type SubmitClaimResponse,
} from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import { Code, createClient, PROJECT_HEADER } from '@lapis/platform';

export interface Credentials {
  token: string;
  project: string;
}

export interface Addresses {
  scheduler: string;
  runtime: string;
  images: string;
}

type Callback<Res> = (error: ServiceError | null, response: Res) => void;

const LIVE_STATES = [ClaimState.PENDING, ClaimState.PLACED, ClaimState.RUNNING, ClaimState.REQUEUED];

export class LapisClients {
  private readonly scheduler: SchedulerServiceClient;
  private readonly runtime: RuntimeServiceClient;
  private readonly images: ImageSyncServiceClient;

  constructor(addresses: Addresses) {
    this.scheduler = createClient(SchedulerServiceClient, addresses.scheduler);
    // Stopping an instance may take its whole grace period (SIGTERM, then kill).
    this.runtime = createClient(RuntimeServiceClient, addresses.runtime, { deadlineMs: 60_000 });
    this.images = createClient(ImageSyncServiceClient, addresses.images);
  }

  /** One unary call with the client's credentials; the generated clients' overloads need the response type named. */
  private call<Res>(credentials: Credentials, invoke: (metadata: Metadata, callback: Callback<Res>) => unknown): Promise<Res> {
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${credentials.token}`);
    metadata.set(PROJECT_HEADER, credentials.project);
    return new Promise((resolve, reject) => invoke(metadata, (error, response) => (error ? reject(error) : resolve(response))));
  }

  async submitClaim(c: Credentials, spec: InstanceSpec, requestId: string): Promise<Claim> {
    const response = await this.call<SubmitClaimResponse>(c, (m, cb) =>
      this.scheduler.submitClaim(
        { spec, preemptible: false, onPreemption: 0, partition: '', backend: 0, antiAffinityGroup: '', qos: '', requestId },
        m,
        cb,
      ),
    );
    return response.claim!;
  }

  async getClaim(c: Credentials, claimId: string): Promise<Claim> {
    return (await this.call<GetClaimResponse>(c, (m, cb) => this.scheduler.getClaim({ claimId }, m, cb))).claim!;
  }

  listClaims(c: Credentials): Promise<Claim[]> {
    return listAll('claims', (pageToken) =>
      this.call<ListClaimsResponse>(c, (m, cb) =>
        this.scheduler.listClaims(
          { pageSize: 1000, pageToken, project: c.project, states: LIVE_STATES, partition: '', node: '', orderByPriority: false },
          m,
          cb,
        ),
      ),
    );
  }

  async cancelClaim(c: Credentials, claimId: string): Promise<Claim> {
    return (await this.call<CancelClaimResponse>(c, (m, cb) => this.scheduler.cancelClaim({ claimId, requestId: '' }, m, cb))).claim!;
  }

  async listFlavors(c: Credentials): Promise<Flavor[]> {
    return listAll('flavors', (pageToken) =>
      this.call<ListFlavorsResponse>(c, (m, cb) => this.scheduler.listFlavors({ pageSize: 1000, pageToken }, m, cb)),
    );
  }

  async listImages(c: Credentials): Promise<Image[]> {
    return listAll('images', (pageToken) =>
      this.call<ListImagesResponse>(c, (m, cb) =>
        this.images.listImages({ pageSize: 1000, pageToken, repositoryPrefix: '', policy: '' }, m, cb),
      ),
    );
  }

  /** The instance, or undefined while it has none on this node (queued, elsewhere, gone). */
  async findInstance(c: Credentials, instanceId: string): Promise<Instance | undefined> {
    try {
      return (await this.call<GetInstanceResponse>(c, (m, cb) => this.runtime.getInstance({ instanceId }, m, cb))).instance;
    } catch (error) {
      if ((error as ServiceError).code === Code.NOT_FOUND) return undefined;
      throw error;
    }
  }

  listInstances(c: Credentials): Promise<Instance[]> {
    return listAll('instances', (pageToken) =>
      this.call<ListInstancesResponse>(c, (m, cb) =>
        this.runtime.listInstances({ pageSize: 1000, pageToken, project: c.project, state: 0, node: '' }, m, cb),
      ),
    );
  }

  async startInstance(c: Credentials, instanceId: string): Promise<void> {
    await this.call<StartInstanceResponse>(c, (m, cb) => this.runtime.startInstance({ instanceId, requestId: '' }, m, cb));
  }

  async stopInstance(c: Credentials, instanceId: string, timeoutSeconds?: number): Promise<void> {
    await this.call<StopInstanceResponse>(c, (m, cb) =>
      this.runtime.stopInstance(
        { instanceId, timeout: timeoutSeconds === undefined ? undefined : { seconds: timeoutSeconds, nanos: 0 }, requestId: '' },
        m,
        cb,
      ),
    );
  }

  async rebootInstance(c: Credentials, instanceId: string, timeoutSeconds?: number): Promise<void> {
    await this.call<RebootInstanceResponse>(c, (m, cb) =>
      this.runtime.rebootInstance(
        { instanceId, timeout: timeoutSeconds === undefined ? undefined : { seconds: timeoutSeconds, nanos: 0 }, requestId: '' },
        m,
        cb,
      ),
    );
  }

  async suspendInstance(c: Credentials, instanceId: string): Promise<void> {
    await this.call<SuspendInstanceResponse>(c, (m, cb) => this.runtime.suspendInstance({ instanceId, requestId: '' }, m, cb));
  }

  async resumeInstance(c: Credentials, instanceId: string): Promise<void> {
    await this.call<ResumeInstanceResponse>(c, (m, cb) => this.runtime.resumeInstance({ instanceId, requestId: '' }, m, cb));
  }

  async deleteInstance(c: Credentials, instanceId: string): Promise<void> {
    await this.call<DeleteInstanceResponse>(c, (m, cb) =>
      this.runtime.deleteInstance({ instanceId, timeout: undefined, requestId: '' }, m, cb),
    );
  }

  async createVolume(c: Credentials, name: string, sizeBytes: number, requestId: string): Promise<Volume> {
    return (
      await this.call<CreateVolumeResponse>(c, (m, cb) =>
        this.runtime.createVolume({ name, sizeBytes, filesystem: '', node: '', labels: {}, requestId }, m, cb),
      )
    ).volume!;
  }

  async getVolume(c: Credentials, volumeId: string): Promise<Volume> {
    return (await this.call<GetVolumeResponse>(c, (m, cb) => this.runtime.getVolume({ volumeId }, m, cb))).volume!;
  }

  listVolumes(c: Credentials): Promise<Volume[]> {
    return listAll('volumes', (pageToken) =>
      this.call<ListVolumesResponse>(c, (m, cb) =>
        this.runtime.listVolumes({ pageSize: 1000, pageToken, project: c.project, state: 0, instanceId: '' }, m, cb),
      ),
    );
  }

  async deleteVolume(c: Credentials, volumeId: string): Promise<void> {
    await this.call<DeleteVolumeResponse>(c, (m, cb) => this.runtime.deleteVolume({ volumeId, requestId: '' }, m, cb));
  }

  async attachVolume(c: Credentials, volumeId: string, instanceId: string, mountPath: string): Promise<Volume> {
    return (
      await this.call<AttachVolumeResponse>(c, (m, cb) =>
        this.runtime.attachVolume({ volumeId, instanceId, mountPath, readOnly: false, requestId: '' }, m, cb),
      )
    ).volume!;
  }

  async detachVolume(c: Credentials, volumeId: string): Promise<Volume> {
    return (await this.call<DetachVolumeResponse>(c, (m, cb) => this.runtime.detachVolume({ volumeId, requestId: '' }, m, cb))).volume!;
  }

  async createNetwork(
    c: Credentials,
    network: { name: string; address: string; gateway: string; allocation: NetworkAllocation },
    requestId: string,
  ): Promise<Network> {
    return (await this.call<CreateNetworkResponse>(c, (m, cb) => this.runtime.createNetwork({ ...network, requestId }, m, cb))).network!;
  }

  async getNetwork(c: Credentials, networkId: string): Promise<Network> {
    return (await this.call<GetNetworkResponse>(c, (m, cb) => this.runtime.getNetwork({ networkId }, m, cb))).network!;
  }

  listNetworks(c: Credentials): Promise<Network[]> {
    return listAll('networks', (pageToken) =>
      this.call<ListNetworksResponse>(c, (m, cb) => this.runtime.listNetworks({ pageSize: 1000, pageToken, project: c.project }, m, cb)),
    );
  }

  async deleteNetwork(c: Credentials, networkId: string): Promise<void> {
    await this.call<DeleteNetworkResponse>(c, (m, cb) => this.runtime.deleteNetwork({ networkId, requestId: '' }, m, cb));
  }

  async connectNetwork(c: Credentials, networkId: string, instanceId: string, ip: string, requestId: string): Promise<Instance> {
    return (
      await this.call<ConnectNetworkResponse>(c, (m, cb) => this.runtime.connectNetwork({ networkId, instanceId, ip, requestId }, m, cb))
    ).instance!;
  }

  async disconnectNetwork(c: Credentials, networkId: string, instanceId: string): Promise<void> {
    await this.call<DisconnectNetworkResponse>(c, (m, cb) =>
      this.runtime.disconnectNetwork({ networkId, instanceId, requestId: '' }, m, cb),
    );
  }

  close(): void {
    for (const client of [this.scheduler, this.runtime, this.images]) client.close();
  }
}

/**
 * A refusal that means "not there, or not the caller's": NOT_FOUND (with the service's words)
 * or PERMISSION_DENIED. The gateway answers both as 404, so other projects' ids are not told.
 */
export function notVisible(error: unknown): { details: string } | undefined {
  const code = (error as ServiceError).code;
  if (code === grpcStatus.PERMISSION_DENIED) return { details: '' };
  if (code === grpcStatus.NOT_FOUND) return { details: (error as ServiceError).details ?? '' };
  return undefined;
}
