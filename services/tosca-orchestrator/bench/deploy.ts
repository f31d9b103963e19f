// Deploy time of the guestbook (examples/tosca/guestbook: two computes, a web server and its
// application, a DBMS and its database: eight operations run) on the real scheduler,
// runtime (Docker) and orchestrator as their own processes: CreateDeployment to DEPLOYED, split
// into the instances (until the first operation starts) and the software (its operations, as
// they ran, and their own time), then DeleteDeployment to DELETED (stop and delete first).
// `BENCH_DEPLOYS` (3) deployments one after the other; medians. Run with `npm run bench:deploy`.
import { call } from '@lapis/platform';
import { until } from '@lapis/platform/testing';
import { startNats, TEST_NATS_URL_ENV } from '@lapis/testenv';
import {
  DeploymentState,
  type CreateDeploymentRequest,
  type CreateDeploymentResponse,
  type DeleteDeploymentRequest,
  type DeleteDeploymentResponse,
  type Deployment,
  type GetDeploymentRequest,
  type GetDeploymentResponse,
} from '@lapis/proto/lapis/tosca/v1/tosca';
import { exampleTemplate, Mesh } from '../test/mesh';

const deploys = Number(process.env.BENCH_DEPLOYS ?? '3');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  const nats = await startNats();
  process.env[TEST_NATS_URL_ENV] = nats.url;
  const mesh = await new Mesh().start();
  const rows: Record<string, number>[] = [];
  try {
    const get = async (id: string) =>
      (await call<GetDeploymentRequest, GetDeploymentResponse>(mesh.tosca.getDeployment.bind(mesh.tosca), { deploymentId: id }))
        .deployment!;
    const reach = (id: string, state: DeploymentState) =>
      until(async () => ((d: Deployment) => (d.state === state ? d : undefined))(await get(id)), DeploymentState[state], 300_000);
    for (let n = 0; n < deploys; n++) {
      const start = Date.now();
      const { deploymentId: id } = await call<CreateDeploymentRequest, CreateDeploymentResponse>(
        mesh.tosca.createDeployment.bind(mesh.tosca),
        {
          template: exampleTemplate('guestbook', 'guestbook.yaml'),
          inputs: { image: mesh.image },
          textInputs: {},
          keepOnFailure: false,
          requestId: '',
        },
      );
      const d = await reach(id, DeploymentState.DEPLOYED);
      const deployed = Date.now();
      const ran = d.lifecycleOperations.filter((o) => o.startTime && o.duration);
      const first = Math.min(...ran.map((o) => o.startTime!.getTime()));
      const busy = ran.reduce((sum, o) => sum + o.duration!.seconds * 1000 + o.duration!.nanos / 1e6, 0);
      await call<DeleteDeploymentRequest, DeleteDeploymentResponse>(mesh.tosca.deleteDeployment.bind(mesh.tosca), {
        deploymentId: id,
        requestId: '',
      });
      await reach(id, DeploymentState.DELETED);
      rows.push({
        deploy: deployed - start,
        instances: first - start,
        software: deployed - first,
        operations: ran.length,
        inOperations: busy,
        undeploy: Date.now() - deployed,
      });
      process.stderr.write(`deployment ${n + 1}/${deploys}: ${seconds(deployed - start)}\n`);
    }
  } finally {
    await mesh.stop();
    await nats.stop();
  }
  const m = (k: string) => median(rows.map((r) => r[k]!));
  process.stdout.write(
    [
      `guestbook, ${deploys} deployments, medians:`,
      `  CreateDeployment -> DEPLOYED   ${seconds(m('deploy'))}`,
      `    instances (to the first operation)   ${seconds(m('instances'))}`,
      `    software (${m('operations')} operations run, ${seconds(m('inOperations'))} inside them)   ${seconds(m('software'))}`,
      `  DeleteDeployment -> DELETED    ${seconds(m('undeploy'))}`,
      '',
    ].join('\n'),
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
