// What Lapis calls its objects in Kubernetes: label keys, pod and claim names, label values.

/** Label keys on pods and config maps (Kubernetes label syntax). */
export const KUBE_LABEL = {
  managed: 'lapis.dev/managed',
  instanceId: 'lapis.dev/instance-id',
  project: 'lapis.dev/project',
  user: 'lapis.dev/user',
  flavor: 'lapis.dev/flavor',
  node: 'lapis.dev/node',
  attempt: 'lapis.dev/attempt',
  volumeId: 'lapis.dev/volume-id',
  volumeName: 'lapis.dev/volume-name',
  /** Annotation: the volume's size in bytes as Lapis was asked (the API server rewrites quantities). */
  sizeBytes: 'lapis.dev/size-bytes',
} as const;

export const GPU_RESOURCE = 'nvidia.com/gpu';
/** A label value: at most 63 of [A-Za-z0-9_.-], starting and ending alphanumeric. */
export function labelValue(value: string): string {
  return value
    .replace(/[^A-Za-z0-9_.-]/g, '-')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

/**
 * A DNS-1123 name for an instance's pod; a placement's later attempt gets its own (the pod of a
 * lost node may still exist when the instance is made on another node).
 */
export function podName(instanceId: string, attempt = 1): string {
  const suffix = attempt > 1 ? `-${attempt}` : '';
  const base = `lapis-${instanceId.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`.slice(0, 63 - suffix.length).replace(/-+$/, '');
  return `${base}${suffix}`;
}

/** The PersistentVolumeClaim of a Lapis volume. */
export function claimName(volumeId: string): string {
  return `lapis-${volumeId.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`.slice(0, 63).replace(/-+$/, '');
}
