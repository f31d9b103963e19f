// The add-ons of the real cluster: CoreDNS (cluster DNS at 10.0.0.10) and rancher's
// local-path provisioner, from its own published manifest with the images and the host path
// changed to ours; its StorageClass is made the default so that any claim binds.
import * as fsp from 'node:fs/promises';
import { CLUSTER_IMAGES, CLUSTER_VERSIONS } from './cluster-tools.js';
import { NODE_NETWORK } from './cluster-node.js';

/** CoreDNS for cluster.local only: nothing outside answers here, so nothing is forwarded. */
export function corednsManifest(): string {
  const labels = 'k8s-app: kube-dns';
  return `apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 5
        }
        cache 5
        loop
        reload
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {${labels}}}
spec:
  replicas: 1
  selector: {matchLabels: {${labels}}}
  template:
    metadata: {labels: {${labels}}}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      containers:
      - name: coredns
        image: ${CLUSTER_IMAGES.coredns}
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        resources: {requests: {cpu: 50m, memory: 40Mi}, limits: {memory: 170Mi}}
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
        livenessProbe: {httpGet: {path: /health, port: 8080}, initialDelaySeconds: 5, periodSeconds: 10}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {${labels}}}
spec:
  clusterIP: ${NODE_NETWORK.dns}
  selector: {${labels}}
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
`;
}

function replaceOnce(text: string, from: string | RegExp, to: string, what: string): string {
  const next = text.replace(from, to);
  if (next === text)
    throw new Error(`rancher's local-path manifest (${CLUSTER_VERSIONS.localPath}) no longer has ${what}: update cluster-addons.ts`);
  return next;
}

/** rancher's deploy/local-path-storage.yaml with our images, our host path, a default class. */
export async function localPathManifest(published: string, hostPath: string): Promise<string> {
  let y = await fsp.readFile(published, 'utf8');
  y = replaceOnce(
    y,
    `image: rancher/local-path-provisioner:${CLUSTER_VERSIONS.localPath}`,
    `image: ${CLUSTER_IMAGES.localPath}`,
    'its image',
  );
  y = replaceOnce(
    y,
    /(image: lapis\.local\/local-path-provisioner:\S+\n\s*)imagePullPolicy: IfNotPresent/,
    '$1imagePullPolicy: Never',
    'its pull policy',
  );
  y = replaceOnce(
    y,
    /image: busybox\n(\s*)imagePullPolicy: IfNotPresent/,
    `image: ${CLUSTER_IMAGES.busybox}\n$1imagePullPolicy: Never`,
    'its helper image',
  );
  y = replaceOnce(y, '"paths":["/opt/local-path-provisioner"]', `"paths":[${JSON.stringify(hostPath)}]`, 'its host path');
  y = replaceOnce(
    y,
    /kind: StorageClass\nmetadata:\n(\s*)name: local-path\n/,
    `kind: StorageClass\nmetadata:\n$1name: local-path\n$1annotations:\n$1  storageclass.kubernetes.io/is-default-class: "true"\n`,
    'its StorageClass',
  );
  return y;
}
