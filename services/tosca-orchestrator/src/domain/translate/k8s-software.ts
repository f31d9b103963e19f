// The software in Kubernetes manifests, where something fits: a node hosted on a container
// application, or on the runtime that hosts applications (the pod), has the scripts of the
// operations that come before it starts (create, configure and the relationships' pre- and
// post-configure) run as init containers of the application's pods, in TOSCA's order, with the
// application's image, their files from a ConfigMap and their inputs as environment variables.
// Everything else is said, per node: software on a compute (no Kubernetes counterpart here),
// operations that run once the container has started (start, add_*), Ansible playbooks (no
// Ansible in an application's image), artifacts fetched by URL, inputs known only at run time.
import { hostOf } from '../functions';
import type { NodeTemplate, Topology } from '../model';
import type { Dict } from '../registry';
import { dnsName, isBlockStorage, isCompute, isContainerApp, isContainerRuntime, isNetwork, isPort } from './common';
import { asText, softwareOperations, type TranslationNote } from './software';

/** What a container application's pods get for the software they host. */
export interface PodSoftware {
  /** Init containers without their image (the application's). */
  initContainers: Dict[];
  volumes: Dict[];
  /** Said on the Deployment: which node's operations run as its init containers. */
  summary: string[];
}

/** Operations that come once the software is in place and its container has started. */
const AFTER_START = new Set(['start', 'add_target', 'add_source']);

/** The first host along the HostedOn chain that is a compute, a runtime or an application. */
function placeOf(topology: Topology, node: NodeTemplate): NodeTemplate | undefined {
  const seen = new Set<string>();
  for (let h = hostOf(topology, node); h && !seen.has(h.name); h = hostOf(topology, h)) {
    if (isContainerApp(h) || isContainerRuntime(h) || isCompute(h)) return h;
    seen.add(h.name);
  }
  return undefined;
}

/** Per application, the software its pods run before it starts; ConfigMaps of the scripts; notes for the rest. */
export function k8sSoftware(topology: Topology, notes: TranslationNote[]): { pods: Map<string, PodSoftware>; configMaps: Dict[] } {
  const pods = new Map<string, PodSoftware>();
  const configMaps: Dict[] = [];
  const apps = [...topology.nodes.values()].filter(isContainerApp);
  for (const name of topology.order) {
    const node = topology.nodes.get(name)!;
    if (isContainerApp(node) || isContainerRuntime(node) || isBlockStorage(node)) continue;
    if (isCompute(node) || isNetwork(node) || isPort(node)) {
      notes.push({ node, message: `node ${name}: not translated: Kubernetes manifests are made for container applications` });
      continue;
    }
    const place = placeOf(topology, node);
    const targets = place && isContainerApp(place) ? [place] : apps.filter((a) => place && hostOf(topology, a) === place);
    const { operations, skipped } = softwareOperations(topology, node);
    const labels = operations.map((op) => op.label);
    if (!targets.length) {
      const why = !place
        ? 'nothing hosts it'
        : isCompute(place)
          ? `it is hosted on compute ${place.name}, which has no Kubernetes counterpart here`
          : `no container application runs on ${place.name}`;
      const what = labels.length ? `its operations (${labels.join(', ')}) are not translated` : 'not translated';
      notes.push({ node, message: `node ${name}: ${what}: ${why}` });
      continue;
    }
    const said = [...skipped];
    const before = operations.filter((op) => {
      if (AFTER_START.has(op.operation)) said.push(`${op.label}: runs once its container has started, which no init container does`);
      else if (op.playbook) said.push(`${op.label}: an Ansible playbook, and an application's image has no Ansible to run it`);
      else return true;
      return false;
    });
    if (said.length) notes.push({ node, message: `node ${name}: left out of the manifests: ${said.join('; ')}` });
    if (!before.length) continue;
    const id = dnsName(`tosca-${name}`);
    const folder = `/opt/lapis/tosca/${name}`;
    const files = new Map<string, string>();
    for (const op of before) for (const f of [op.script, ...op.dependencies]) files.set(f.path, f.content);
    const keyOf = (path: string) => path.replace(/[^-._a-zA-Z0-9]/g, '_');
    configMaps.push({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: id, labels: { 'app.kubernetes.io/name': dnsName(name), 'app.kubernetes.io/managed-by': 'lapis-tosca' } },
      data: Object.fromEntries([...files].map(([path, content]) => [keyOf(path), content])),
    });
    const used = new Set<string>();
    const initContainers = before.map((op) => {
      let container = dnsName(`${name}-${op.operation}`);
      for (let n = 2; used.has(container); n++) container = dnsName(`${name}-${op.operation}-${n}`);
      used.add(container);
      const script = `${folder}/${op.script.path}`;
      return {
        name: container,
        command: op.script.content.startsWith('#!') ? [script] : ['/bin/sh', script],
        workingDir: script.replace(/\/[^/]*$/, ''),
        env: [
          ...Object.entries(op.environment).map(([k, v]) => ({ name: k, value: asText(v) })),
          { name: 'LAPIS_OPERATION_OUTPUTS', value: `/tmp/${container}.outputs` },
        ],
        volumeMounts: [{ name: id, mountPath: folder, readOnly: true }],
      };
    });
    const volume = {
      name: id,
      configMap: { name: id, defaultMode: 0o755, items: [...files.keys()].map((path) => ({ key: keyOf(path), path })) },
    };
    for (const app of targets) {
      const pod = pods.get(app.name) ?? { initContainers: [], volumes: [], summary: [] };
      pod.initContainers.push(...initContainers);
      pod.volumes.push(volume);
      pod.summary.push(`${name}: ${before.map((op) => op.label).join(', ')} as init containers`);
      pods.set(app.name, pod);
    }
  }
  return { pods, configMaps };
}
