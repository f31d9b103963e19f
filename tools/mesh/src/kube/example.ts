// The example on the in-cluster mesh: examples/tosca/web-app.yaml deployed through the
// orchestrator's Service like any user's call, the runtime making the web instance a pod with its
// volume a claim; a page is written into the volume and fetched from the host at the web address.
import { readFileSync } from 'node:fs';
import { kubectl, waitFor, type Cluster } from '@lapis/testenv';
import { deploy, EXAMPLE_TEMPLATE, getDeployment } from '../example';
import { MESH_IMAGES, waitForCatalogue } from '../mesh';
import { findTrace, type Trace } from '../zipkin';
import { NAMESPACE, type Installed } from './install';

export interface ExampleResult {
  deploymentId: string;
  outputs: Record<string, unknown>;
  /** The web instance's pod and its claims. */
  pod: string;
  claims: string[];
  /** What the web address answered from the host. */
  page: string;
  /** The deployment's one trace, from the orchestrator's pod through the scheduler's to the runtime's. */
  trace: Trace;
}

/**
 * One node of 2 cores: the example's mirror (1 CPU more) would not fit beside the web instance
 * and the services, so it is deployed without mirrors.
 */
export const EXAMPLE_INPUTS = { mirrors: 0 };

export async function deployExampleInCluster(
  cluster: Cluster,
  installed: Installed,
  zipkinUrl: string,
  say: (line: string) => void,
): Promise<ExampleResult> {
  const sync = installed.addresses['image-sync'];
  if (!sync || !installed.addresses['tosca-orchestrator'])
    throw new Error(`the release has no image-sync or tosca-orchestrator Service (found ${Object.keys(installed.addresses).join(', ')})`);
  say('waiting for image-sync to sync the example images into the catalogue');
  await waitForCatalogue(
    sync,
    MESH_IMAGES.map((i) => `${i.repository}:${i.tag}`),
  );
  say('deploying examples/tosca/web-app.yaml through the in-cluster orchestrator');
  const deployment = await deploy(installed, readFileSync(EXAMPLE_TEMPLATE, 'utf8'), 'web-app.yaml', 180_000, EXAMPLE_INPUTS);
  const web = deployment.nodes.find((n) => n.name === 'web')?.instanceIds[0];
  if (!web) throw new Error(`deployment ${deployment.id} has no web instance`);
  const { stdout } = await kubectl(['get', 'pods', '-n', NAMESPACE, '-l', `lapis.dev/instance-id=${web}`, '-o', 'json'], cluster);
  const pods = (
    JSON.parse(stdout) as {
      items: Array<{
        metadata: { name: string; deletionTimestamp?: string };
        spec: { volumes?: Array<{ persistentVolumeClaim?: { claimName: string } }> };
        status?: { podIP?: string };
      }>;
    }
  ).items;
  const pod = pods.find((p) => !p.metadata.deletionTimestamp && p.status?.podIP);
  if (!pod) throw new Error(`no pod for instance ${web} in namespace ${NAMESPACE}`);
  const claims = (pod.spec.volumes ?? []).map((v) => v.persistentVolumeClaim?.claimName).filter((c): c is string => !!c);
  const html = `<h1>Lapis on Kubernetes</h1><p>Served by instance ${web} (pod ${pod.metadata.name}) of deployment ${deployment.id}, from the claim ${claims.join(', ')} at /mnt/site.</p>\n`;
  await kubectl(['exec', '-i', '-n', NAMESPACE, pod.metadata.name, '--', 'sh', '-c', 'cat > /mnt/site/index.html'], cluster, {
    input: html,
    timeoutMs: 30_000,
  });
  // The volume came with a new pod (a pod's volumes are fixed): its address reaches the
  // deployment with the pod's RUNNING event, which may follow DEPLOYED by a moment.
  const ip = pod.status?.podIP ?? '';
  let outputs = (deployment.outputs ?? {}) as Record<string, unknown>;
  await waitFor(
    async () => {
      outputs = ((await getDeployment(installed, deployment.id)).outputs ?? {}) as Record<string, unknown>;
      return String(outputs.web_address ?? '').includes(`//${ip}:`);
    },
    { timeoutMs: 30_000, what: `the deployment's web_address to name the web pod's address ${ip}`, intervalMs: 500 },
  );
  const address = String(outputs.web_address ?? '');
  let page = '';
  await waitFor(
    async () => {
      const res = await fetch(address, { signal: AbortSignal.timeout(3000) });
      page = await res.text();
      return res.ok && page === html;
    },
    { timeoutMs: 30_000, what: `the web address ${address} to answer from the host`, intervalMs: 500 },
  );
  const trace = await findTrace(zipkinUrl, {
    rootService: 'tosca-orchestrator',
    rootSpan: /createdeployment/i, // Zipkin keeps span names in lower case
    across: ['tosca-orchestrator', 'scheduler', 'container-runtime'],
  });
  return { deploymentId: deployment.id, outputs, pod: pod.metadata.name, claims, page, trace };
}
