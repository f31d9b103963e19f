// An instance as a Docker container that behaves like a VM: the pure translation from what
// Lapis decided (resources, devices, image, mounts) to the engine's create options.
import type { ContainerCreateOptions } from 'dockerode';
import type { Resources } from '@lapis/proto/lapis/common/v1/common';
import { PortProtocol } from '@lapis/proto/lapis/common/v1/common';
import { InstanceSpec } from '@lapis/proto/lapis/common/v1/common';
import type { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import type { DeviceGrant } from './devices';
import { type Security, WRITABLE_DIRS } from './security';
import { VOLUME_MOUNT_ROOT } from '@lapis/platform';

export const LABEL = {
  managed: 'lapis.managed',
  instanceId: 'lapis.instance-id',
  project: 'lapis.project',
  user: 'lapis.user',
  name: 'lapis.name',
  flavor: 'lapis.flavor',
  requestId: 'lapis.request-id',
  node: 'lapis.node',
  imageDigest: 'lapis.image-digest',
  attempt: 'lapis.attempt',
  preemptible: 'lapis.preemptible',
  /**
   * The spec without its secrets (protobuf, base64), so an agent that lost its store can adopt
   * the container; the secrets are kept on the node (0600), never in a label.
   */
  spec: 'lapis.spec',
} as const;

/** CFS period; the quota is cpu_millis of it, so a limit above the host's CPU count is allowed. */
export const CPU_PERIOD_US = 100_000;
export const DEFAULT_PIDS = 4096;

export const containerName = (instanceId: string) => `lapis-${instanceId}`;

/** One bridge network per project; Docker isolates bridges from each other. */
export function projectNetworkName(project: string): string {
  return `lapis-project-${project.toLowerCase().replace(/[^a-z0-9_.-]/g, '-')}`;
}

export function cgroupLimits(resources: Resources) {
  return {
    CpuPeriod: CPU_PERIOD_US,
    CpuQuota: Math.max(1000, Math.round((resources.cpuMillis * CPU_PERIOD_US) / 1000)),
    Memory: resources.memoryBytes,
    // No swap: the instance has the memory of its flavor, like a VM.
    MemorySwap: resources.memoryBytes,
  };
}

export interface ContainerPlan {
  instance: Instance;
  resources: Resources;
  /** What the engine runs: the local image id that matches the trusted digest. */
  image: string;
  grant: DeviceGrant;
  /** Host directory with shared propagation, seen at /mnt inside (rslave). */
  mountDir: string;
  /** Host directory with user-data and ssh-keys, seen read-only at /etc/lapis. */
  metadataDir: string;
  network: string;
  /** Volumes the engine mounts when it creates the workload (backends with claims; Docker attaches after start). */
  volumes?: Array<{ volumeId: string; mountPath: string; readOnly: boolean }>;
  /** Capabilities and root filesystem (instanceSecurity). */
  security: Security;
  /** Host address the instance's host ports are bound to (the admin's, LAPIS_HOST_PORT_ADDRESS). */
  hostIp: string;
}

export function instanceEnvironment(instance: Instance): string[] {
  const spec = instance.spec!;
  const env = Object.entries(spec.environment).map(([k, v]) => `${k}=${v}`);
  env.push(
    `LAPIS_INSTANCE_ID=${instance.id}`,
    `LAPIS_INSTANCE_NAME=${spec.name}`,
    `LAPIS_PROJECT=${instance.project}`,
    `LAPIS_FLAVOR=${spec.flavor}`,
    `LAPIS_USER_DATA=${Buffer.from(spec.userData).toString('base64')}`,
    `LAPIS_SSH_PUBLIC_KEYS=${spec.sshPublicKeys.join('\n')}`,
  );
  return env;
}

/**
 * The secret part of a spec: environment values, user data and SSH keys. Labels, annotations
 * and other world-readable places get the spec without it (anyone who may list containers or
 * pods reads those); the node keeps it apart, readable by root only.
 */
export function secretsOf(spec: InstanceSpec): InstanceSpec {
  return InstanceSpec.fromPartial({ environment: spec.environment, userData: spec.userData, sshPublicKeys: spec.sshPublicKeys });
}

export function withoutSecrets(spec: InstanceSpec): InstanceSpec {
  return { ...spec, environment: {}, userData: Buffer.alloc(0), sshPublicKeys: [] };
}

/** A spec from labels made whole again with the secrets the node kept (none kept: it stays without). */
export function withSecrets(spec: InstanceSpec, secrets: InstanceSpec | undefined): InstanceSpec {
  return secrets ? { ...spec, environment: secrets.environment, userData: secrets.userData, sshPublicKeys: secrets.sshPublicKeys } : spec;
}

export function containerLabels(instance: Instance, node: string): Record<string, string> {
  const spec = instance.spec!;
  return {
    ...spec.labels,
    [LABEL.managed]: 'true',
    [LABEL.instanceId]: instance.id,
    [LABEL.project]: instance.project,
    [LABEL.user]: instance.user,
    [LABEL.name]: spec.name,
    [LABEL.flavor]: spec.flavor,
    [LABEL.requestId]: instance.requestId,
    [LABEL.node]: node,
    [LABEL.imageDigest]: instance.imageDigest,
    [LABEL.attempt]: String(instance.attempt),
    [LABEL.preemptible]: String(instance.preemptible),
    [LABEL.spec]: Buffer.from(InstanceSpec.encode(withoutSecrets(spec)).finish()).toString('base64'),
  };
}

export function createOptions(plan: ContainerPlan, node: string): ContainerCreateOptions {
  const { instance, grant } = plan;
  const spec = instance.spec!;
  const exposed: Record<string, object> = {};
  const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const p of spec.ports) {
    const key = `${p.containerPort}/${p.protocol === PortProtocol.UDP ? 'udp' : 'tcp'}`;
    exposed[key] = {};
    // The agent has picked the host port from the admin's range (domain/ports.ts) and binds
    // it to the admin's address, never Docker's 0.0.0.0 default.
    bindings[key] = [{ HostIp: plan.hostIp, HostPort: p.hostPort ? String(p.hostPort) : '' }];
  }
  const { security } = plan;
  const deviceRequests = [
    ...grant.gpuRequests.map((g) => ({ Driver: g.driver, Count: 0, DeviceIDs: g.ids, Capabilities: [['gpu']], Options: {} })),
    // CDI names go through the engine's "cdi" driver (Docker 25+ understands it).
    ...(grant.cdiNames.length ? [{ Driver: 'cdi', Count: 0, DeviceIDs: grant.cdiNames, Capabilities: [], Options: {} }] : []),
  ];
  return {
    name: containerName(instance.id),
    Hostname: spec.name,
    Image: plan.image,
    ...(spec.command.length ? { Entrypoint: [spec.command[0]!], Cmd: spec.command.slice(1) } : {}),
    Env: instanceEnvironment(instance),
    Labels: containerLabels(instance, node),
    ExposedPorts: exposed,
    StopSignal: 'SIGTERM',
    HostConfig: {
      ...cgroupLimits(plan.resources),
      PidsLimit: plan.resources.pids || DEFAULT_PIDS,
      // A crashed instance comes back unless it was stopped; a clean exit is a shutdown.
      RestartPolicy: spec.restartOnFailure ? { Name: 'on-failure', MaximumRetryCount: 0 } : { Name: 'no' },
      NetworkMode: plan.network,
      PortBindings: bindings,
      Mounts: [
        { Type: 'bind', Source: plan.mountDir, Target: VOLUME_MOUNT_ROOT, BindOptions: { Propagation: 'rslave' } },
        { Type: 'bind', Source: plan.metadataDir, Target: '/etc/lapis', ReadOnly: true },
      ],
      Devices: grant.paths.map((p) => ({ PathOnHost: p, PathInContainer: p, CgroupPermissions: 'rwm' })),
      ...(deviceRequests.length ? { DeviceRequests: deviceRequests } : {}),
      // Nothing but the instance's set (DEFAULT_CAPABILITIES, its flavor's, its devices').
      CapDrop: ['ALL'],
      CapAdd: security.capabilities,
      // setuid binaries and file capabilities give nothing more than the instance already has.
      SecurityOpt: ['no-new-privileges'],
      Privileged: false,
      ReadonlyRootfs: security.readOnlyRoot,
      ...(security.readOnlyRoot ? { Tmpfs: Object.fromEntries(WRITABLE_DIRS.map((d) => [d, 'rw,nosuid,nodev,mode=1777'])) } : {}),
      ...(grant.memlock !== undefined ? { Ulimits: [{ Name: 'memlock', Soft: grant.memlock, Hard: grant.memlock }] } : {}),
      Init: false,
    },
    NetworkingConfig: { EndpointsConfig: { [plan.network]: { Aliases: [spec.name] } } },
  };
}
