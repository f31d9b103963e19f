// An instance as a Docker container that behaves like a VM: the translation from what Lapis
// decided (the engine-neutral ContainerPlan: resources, devices, image, mounts, security) to
// dockerode's create options. Pure, but Docker's vocabulary, so it lives beside the Docker
// backend rather than in the domain.
import type { ContainerCreateOptions } from 'dockerode';
import { VOLUME_MOUNT_ROOT } from '@lapis/platform';
import { PortProtocol, type Resources } from '@lapis/proto/lapis/common/v1/common';
import { containerLabels, DEFAULT_PIDS, instanceEnvironment, type ContainerPlan } from '../domain/container';
import { WRITABLE_DIRS } from '../domain/security';

/** CFS period; the quota is cpu_millis of it, so a limit above the host's CPU count is allowed. */
export const CPU_PERIOD_US = 100_000;

/**
 * A placement's later attempt gets a name of its own: after its node was lost the instance may
 * be made on another node while the lost node's copy still exists on a Docker engine they share.
 */
export const containerName = (instanceId: string, attempt = 1) => (attempt > 1 ? `lapis-${instanceId}-${attempt}` : `lapis-${instanceId}`);

/** One bridge network per project; Docker isolates bridges from each other. */
export function projectNetworkName(project: string): string {
  return `lapis-project-${project.toLowerCase().replace(/[^a-z0-9_.-]/g, '-')}`;
}

/**
 * The bridge of a Lapis network (CreateNetwork): the same name on every node, so agents that
 * share one engine share it (an engine refuses two bridges with one subnet anyway).
 */
export const networkBridgeName = (networkId: string) => `lapis-${networkId}`;

/** The Lapis network a bridge is for (networkBridgeName's inverse); undefined for any other network. */
export const networkOfBridge = (name: string) => (name.startsWith('lapis-net-') ? name.slice('lapis-'.length) : undefined);

export function cgroupLimits(resources: Resources) {
  return {
    CpuPeriod: CPU_PERIOD_US,
    CpuQuota: Math.max(1000, Math.round((resources.cpuMillis * CPU_PERIOD_US) / 1000)),
    Memory: resources.memoryBytes,
    // No swap: the instance has the memory of its flavor, like a VM.
    MemorySwap: resources.memoryBytes,
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
    name: containerName(instance.id, instance.attempt),
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
