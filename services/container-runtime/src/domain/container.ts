// An instance's workload, engine-neutral: the plan a backend makes it from (resources, devices,
// image, mounts, security), the labels it carries so a restarted agent can adopt it, its
// environment, and the secrets kept out of every world-readable place. Each backend turns the
// plan into its own form (adapters/docker-options.ts, adapters/kubernetes.ts).
import { InstanceSpec, type Resources } from '@lapis/proto/lapis/common/v1/common';
import type { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';
import type { DeviceGrant } from './devices';
import type { Security } from './security';

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

/** The pids limit of an instance whose flavor sets none. */
export const DEFAULT_PIDS = 4096;

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

/** The volumes a workload is made with (engines with claims mount them at creation). */
export function planVolumes(instance: Instance): NonNullable<ContainerPlan['volumes']> {
  return instance.volumeAttachments.map((a) => ({ volumeId: a.volumeId, mountPath: a.mountPath, readOnly: a.readOnly }));
}
