// An instance record as the agent first writes it, and the files it finds in /etc/lapis.
import { type Backend, InstanceState, type InstanceSpec, type Resources } from '@lapis/proto/lapis/common/v1/common';
import type { Instance } from '@lapis/proto/lapis/runtime/v1/runtime';

/** What a CreateInstance (or a placement) asks for. */
export interface CreateInstanceInput {
  id: string;
  project: string;
  user: string;
  spec: InstanceSpec | undefined;
  preemptible: boolean;
  requestId: string;
  attempt: number;
}

/**
 * The record of a new instance (CREATING) on `node`: `resources` are what it was placed with
 * (a tenant may later resize within them), `digest` the image it runs.
 */
export function newInstance(
  input: CreateInstanceInput,
  node: string,
  backend: Backend,
  digest: string,
  resources: Resources,
  now = new Date(),
): Instance {
  const spec = input.spec!;
  return {
    id: input.id,
    project: input.project,
    user: input.user,
    spec: { ...spec, resources },
    placedResources: resources,
    imageDigest: digest,
    node,
    backend,
    state: InstanceState.CREATING,
    stateReason: '',
    addresses: [],
    volumeAttachments: [],
    devices: [],
    preemptible: input.preemptible,
    requestId: input.requestId,
    createTime: now,
    startTime: undefined,
    updateTime: now,
    backendId: '',
    exitCode: 0,
    generation: 1,
    attempt: input.attempt,
  };
}

/** The files of /etc/lapis, as cloud-init keeps them: user data, SSH keys, the instance's identity. */
export function metadataFiles(instance: Instance): Record<string, string | Buffer> {
  const spec = instance.spec!;
  return {
    'user-data': Buffer.from(spec.userData),
    'ssh-keys': spec.sshPublicKeys.map((k) => `${k}\n`).join(''),
    'instance.json': `${JSON.stringify({ id: instance.id, name: spec.name, project: instance.project, flavor: spec.flavor }, null, 2)}\n`,
  };
}
