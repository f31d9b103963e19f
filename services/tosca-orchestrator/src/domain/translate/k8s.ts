// TOSCA -> Kubernetes manifests for container nodes: a Deployment per container application
// (image from its image artifact, replicas from its runtime's scalable capability, resources
// from the runtime's host capability), a ConfigMap with its environment, a Service for its
// published ports and a PersistentVolumeClaim per block storage it mounts; the software it hosts
// as init containers where that fits, said per node where nothing does (k8s-software.ts).
import { stringify } from 'yaml';
import { evaluate } from '../functions';
import type { NodeTemplate, Topology } from '../model';
import { isDict, type Dict } from '../registry';
import { attachments, capProp, dnsName, imageOf, isBlockStorage, isContainerApp, prop, scaleCount, sizeMB, sizeMiB } from './common';
import { hostOf } from '../functions';
import { k8sSoftware } from './k8s-software';
import type { TranslationNote } from './software';

interface PortSpec {
  port: number;
  target: number;
  protocol: string;
}

function portsOf(topology: Topology, app: NodeTemplate, runtime?: NodeTemplate): PortSpec[] {
  const out: PortSpec[] = [];
  const add = (list: unknown) => {
    const items = Array.isArray(list) ? list : isDict(list) ? Object.values(list) : [];
    for (const p of items) {
      if (!isDict(p)) continue;
      const source = Number(p.source ?? p.target);
      const target = Number(p.target ?? p.source);
      if (Number.isFinite(source) && Number.isFinite(target))
        out.push({ port: source, target, protocol: String(p.protocol ?? 'tcp').toUpperCase() });
    }
  };
  if (runtime) {
    add(capProp(topology, runtime, 'host', 'publish_ports'));
    add(capProp(topology, runtime, 'host', 'expose_ports'));
  }
  add(capProp(topology, app, 'endpoint', 'ports'));
  const port = capProp(topology, app, 'endpoint', 'port');
  if (typeof port === 'number') out.push({ port, target: port, protocol: 'TCP' });
  return out;
}

export function translateK8s(topology: Topology, notes: TranslationNote[] = []): string {
  const software = k8sSoftware(topology, notes);
  const docs: Dict[] = [...software.configMaps];
  const disks = attachments(topology);
  const claimed = new Set<string>();
  const labels = (name: string) => ({ 'app.kubernetes.io/name': dnsName(name), 'app.kubernetes.io/managed-by': 'lapis-tosca' });
  for (const name of topology.order) {
    const app = topology.nodes.get(name)!;
    if (!isContainerApp(app)) continue;
    const runtime = hostOf(topology, app);
    const id = dnsName(name);
    const image = imageOf(topology, app);
    const container: Dict = { name: id, image: image ?? 'MISSING-IMAGE' };
    const command = prop(topology, app, 'command');
    if (typeof command === 'string' && command) container.command = ['/bin/sh', '-c', command];
    const env = prop(topology, app, 'environment_variables');
    if (isDict(env) && Object.keys(env).length) {
      docs.push({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: `${id}-env`, labels: labels(name) },
        data: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])),
      });
      container.envFrom = [{ configMapRef: { name: `${id}-env` } }];
    }
    const resources: Dict = {};
    const cpus = runtime ? capProp(topology, runtime, 'host', 'num_cpus') : undefined;
    const mem = sizeMB(runtime ? capProp(topology, runtime, 'host', 'mem_size') : undefined);
    if (typeof cpus === 'number') resources.cpu = String(cpus);
    if (mem !== undefined) resources.memory = `${mem}M`;
    if (Object.keys(resources).length) container.resources = { requests: resources, limits: resources };
    const ports = portsOf(topology, app, runtime);
    if (ports.length) container.ports = ports.map((p) => ({ containerPort: p.target, protocol: p.protocol }));
    if (prop(topology, app, 'privileged') === true) container.securityContext = { privileged: true };
    // Volumes: block storage the app, its runtime or the runtime's compute attaches.
    const volumes: Dict[] = [];
    const mounts: Dict[] = [];
    const hosts = new Set([app.name, runtime?.name, runtime ? hostOf(topology, runtime)?.name : undefined].filter(Boolean) as string[]);
    for (const d of disks.filter((x) => hosts.has(x.compute.name))) {
      const claim = dnsName(d.volume.name);
      if (!claimed.has(d.volume.name)) {
        claimed.add(d.volume.name);
        const size = sizeMiB(evaluate({ topology, self: d.volume }, d.volume.properties.size)) ?? 1024;
        docs.push({
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          metadata: { name: claim, labels: labels(d.volume.name) },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: `${size}Mi` } } },
        });
      }
      volumes.push({ name: claim, persistentVolumeClaim: { claimName: claim } });
      mounts.push({ name: claim, mountPath: d.location ?? `/mnt/${claim}` });
    }
    if (mounts.length) container.volumeMounts = mounts;
    const pod = software.pods.get(name);
    if (pod) volumes.push(...pod.volumes);
    const initContainers = pod?.initContainers.map((c) => ({ name: c.name, image: container.image, ...c }));
    const replicas = runtime ? scaleCount(topology, runtime) : scaleCount(topology, app);
    docs.push({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: id,
        labels: labels(name),
        ...(pod ? { annotations: { 'lapis.tosca/software': pod.summary.join('; ') } } : {}),
      },
      spec: {
        replicas,
        selector: { matchLabels: { 'app.kubernetes.io/name': id } },
        template: {
          metadata: { labels: labels(name) },
          spec: { ...(initContainers ? { initContainers } : {}), containers: [container], ...(volumes.length ? { volumes } : {}) },
        },
      },
    });
    if (ports.length) {
      docs.push({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: id, labels: labels(name) },
        spec: {
          selector: { 'app.kubernetes.io/name': id },
          ports: ports.map((p) => ({
            name: `${p.protocol.toLowerCase()}-${p.port}`,
            port: p.port,
            targetPort: p.target,
            protocol: p.protocol,
          })),
        },
      });
    }
  }
  // Block storage no container mounts still becomes a claim.
  for (const n of topology.nodes.values()) {
    if (!isBlockStorage(n) || claimed.has(n.name)) continue;
    const size = sizeMiB(evaluate({ topology, self: n }, n.properties.size)) ?? 1024;
    docs.push({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: dnsName(n.name), labels: labels(n.name) },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: `${size}Mi` } } },
    });
  }
  return docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n');
}
