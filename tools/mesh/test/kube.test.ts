// Lapis installed with Helm on the real one-node cluster, end to end: what `make kube-up` does
// (every pod Ready through its own probes, NATS on a claim), then a deployment with a volume
// through the in-cluster orchestrator (the instance a pod, the volume a claim, its web address
// answering from the host), undeployed leaving no pod, claim or volume; a node scaled out and
// in; a killed orchestrator pod; helm upgrade and helm test; the runtime switched to the Docker
// backend's DaemonSet on the host's engine; then the cluster goes and the host is as before.
// Needs the service images: `make test` builds them first (LAPIS_REQUIRE_IMAGES=1); a bare
// `npx mocha` without them skips with a message.
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Metadata } from '@grpc/grpc-js';
import { createClient } from '@lapis/platform';
import {
  type CreateDeploymentResponse,
  type Deployment,
  DeploymentState,
  type GetDeploymentResponse,
} from '@lapis/proto/lapis/tosca/v1/tosca';
import { ToscaServiceClient } from '@lapis/proto/lapis/tosca/v1/tosca_service';
import {
  CommandError,
  docker,
  ensureDocker,
  GiveUp,
  helm,
  hostDifferences,
  kubectl,
  mountsUnder,
  NODE_NETWORK,
  run,
  waitFor,
  type DockerEngine,
} from '@lapis/testenv';
import { deploy, EXAMPLE_TEMPLATE, getDeployment, undeploy, updateInputs } from '../src/example';
import { MESH_TOKENS, SERVICES } from '../src/mesh';
import { useDockerBackend } from '../src/kube/docker-backend';
import { deployExampleInCluster, EXAMPLE_INPUTS, type ExampleResult } from '../src/kube/example';
import { CHART, imageVersion, NAMESPACE, RELEASE, startLapisOnKube, type LapisOnKube } from '../src/kube/install';
import { WORKERS_FILE, WORKERS_TEMPLATE, workerIds } from '../src/kube/workers';
import { keepCalling, type LoadReport } from './keep-calling';

interface Obj {
  metadata: { name: string; labels?: Record<string, string>; deletionTimestamp?: string };
  status?: { phase?: string };
  spec?: { claimRef?: { namespace?: string; name?: string } };
}

const names = (items: Obj[]) => items.map((o) => o.metadata.name).sort();

describe('Lapis on a real one-node Kubernetes cluster (make kube-up, end to end)', function () {
  this.timeout(240_000);
  let engine: DockerEngine;
  let lapis: LapisOnKube | undefined;
  let example: ExampleResult | undefined;

  const get = async (what: string, selector?: string): Promise<Obj[]> =>
    (
      JSON.parse(
        (await kubectl(['get', what, '-n', NAMESPACE, ...(selector ? ['-l', selector] : []), '-o', 'json'], lapis!.cluster)).stdout,
      ) as { items: Obj[] }
    ).items;

  before(async function () {
    this.timeout(20 * 60_000);
    engine = await ensureDocker();
    const version = imageVersion();
    const missing: string[] = [];
    for (const s of SERVICES)
      if (
        !(await docker(['image', 'inspect', `lapis/${s}:${version}`]).then(
          () => true,
          () => false,
        ))
      )
        missing.push(`lapis/${s}:${version}`);
    if (missing.length > 0) {
      const why = `images not built here: ${missing.join(', ')} (run images/build.sh)`;
      if (process.env.LAPIS_REQUIRE_IMAGES === '1') throw new Error(why);
      console.error(`      skipped: ${why}`);
      this.skip();
    }
    const started = Date.now();
    lapis = await startLapisOnKube(engine, () => {});
    console.error(`      cluster up, images imported, release installed and Ready in ${Date.now() - started} ms`);
  });

  after(async function () {
    this.timeout(180_000);
    await lapis?.stop(); // also after a failure: nothing of it may stay on the host
    await engine?.stop();
  });

  it('every pod of the release is Ready through its probes; the bundled NATS keeps JetStream on a claim', async function () {
    const pods = await get('pods');
    for (const component of ['nats', 'scheduler', 'image-sync', 'container-runtime', 'tosca-orchestrator', 'occi-gateway']) {
      assert.ok(
        pods.some((p) => p.metadata.labels?.['app.kubernetes.io/component'] === component && p.status?.phase === 'Running'),
        `a Running ${component} pod in ${names(pods).join(', ')}`,
      );
    }
    const claims = await get('pvc');
    assert.ok(
      claims.some((c) => c.metadata.name.startsWith('data-') && c.status?.phase === 'Bound'),
      `NATS's claim is Bound: ${JSON.stringify(claims.map((c) => [c.metadata.name, c.status?.phase]))}`,
    );
  });

  it('deploys examples/tosca/web-app.yaml through the in-cluster orchestrator: the web instance is a pod on a claim, its address answers from the host', async function () {
    example = await deployExampleInCluster(lapis!.cluster, lapis!.installed, lapis!.zipkin.url, () => {});
    assert.match(String(example.outputs.web_address), /^http:\/\/10\.89\.0\.\d+:8080\/site\/$/);
    assert.match(example.page, /Lapis on Kubernetes/);
    assert.equal(example.claims.length, 1);
    const claims = await get('pvc', 'lapis.dev/volume-id');
    assert.deepEqual(names(claims), example.claims);
    assert.equal(claims[0]?.status?.phase, 'Bound');
  });

  it("the deployment is one trace in the trace viewer, across the orchestrator's, the scheduler's and the runtime's pods", async function () {
    assert.ok(example, 'the deployment above was made');
    const { trace } = example;
    const pods = (await get('pods')).map((p) => p.metadata.name);
    for (const component of ['tosca-orchestrator', 'scheduler', 'container-runtime'])
      assert.ok(
        trace.pods.some((p) => p.startsWith(`${RELEASE}-${component}-`) && pods.includes(p)),
        `a span from a ${component} pod of the release in ${trace.pods.join(', ')}`,
      );
    assert.ok(
      trace.spans.some(
        (s) =>
          s.kind === 'CONSUMER' &&
          /^process lapis\.scheduler\.claim_placed/.test(s.name) &&
          s.localEndpoint?.serviceName === 'container-runtime',
      ),
      'the placement reached the runtime in the same trace',
    );
  });

  /** Waits until no instance pod, instance claim or volume of `claimNames` is left. */
  const expectNothingLeft = async (claimNames: string[]) => {
    let left = '';
    await waitFor(
      async () => {
        const pods = await get('pods', 'lapis.dev/instance-id');
        const claims = await get('pvc', 'lapis.dev/volume-id');
        const volumes = (JSON.parse((await kubectl(['get', 'pv', '-o', 'json'], lapis!.cluster)).stdout) as { items: Obj[] }).items.filter(
          (v) => claimNames.includes(v.spec?.claimRef?.name ?? ''),
        );
        left = `pods ${names(pods).join(',')}; claims ${names(claims).join(',')}; volumes ${names(volumes).join(',')}`;
        return pods.length + claims.length + volumes.length === 0;
      },
      { timeoutMs: 90_000, what: 'the deployment to leave nothing', intervalMs: 1000 },
    ).catch((e: Error) => assert.fail(`${e.message}: left ${left}`));
  };

  it('undeploys leaving no instance pod, no claim and no volume', async function () {
    assert.ok(example, 'the deployment above was made');
    await undeploy(lapis!.installed, example.deploymentId);
    await expectNothingLeft(example.claims);
  });

  it('scales a node out and in through the in-cluster orchestrator: a pod per instance after scale-out, the removed ones gone after scale-in', async function () {
    this.timeout(300_000);
    const { installed } = lapis!;
    /** Waits until the instance pods ("id:phase", sorted) are as `ok` wants them. */
    const podsUntil = async (what: string, ok: (pods: string[]) => boolean) => {
      let seen: string[] = [];
      await waitFor(
        async () => {
          const pods = await get('pods', 'lapis.dev/instance-id');
          seen = pods.map((p) => `${p.metadata.labels?.['lapis.dev/instance-id']}:${p.status?.phase}`).sort();
          return ok(seen);
        },
        { timeoutMs: 90_000, what, intervalMs: 1000 },
      ).catch((e: Error) => assert.fail(`${e.message}: pods ${seen.join(', ')}`));
    };
    const running = (ids: string[]) => ids.map((i) => `${i}:Running`).sort();
    /** New inputs, then the update done: the orchestrator is UPDATING from the call's answer on. */
    const scaleTo = async (id: string, count: number) => {
      await updateInputs(installed, id, { count });
      let last: Deployment | undefined;
      await waitFor(
        async () => {
          last = await getDeployment(installed, id);
          if (last.state === DeploymentState.FAILED) throw new GiveUp(`deployment failed: ${last.stateReason}`);
          return last.state === DeploymentState.DEPLOYED;
        },
        { timeoutMs: 120_000, what: `the deployment to be DEPLOYED with ${count} workers`, intervalMs: 500 },
      );
      return workerIds(last!);
    };
    const { id } = await deploy(installed, WORKERS_TEMPLATE, WORKERS_FILE, 120_000, { count: 1 });
    const [first] = workerIds(await getDeployment(installed, id));
    assert.ok(first, 'one worker');
    await podsUntil(`a Running pod for ${first} alone`, (pods) => pods.join() === running([first]).join());
    const out = await scaleTo(id, 3);
    assert.equal(out.length, 3, `three workers: ${out.join(', ')}`);
    assert.ok(out.includes(first), `the first worker ${first} stays: ${out.join(', ')}`);
    await podsUntil(`a Running pod for each of ${out.join(', ')}, no other`, (pods) => pods.join() === running(out).join());
    // (The deployment's instance_ids keep the removed workers after a scale-in: the pods say which are left.)
    await scaleTo(id, 1);
    await podsUntil('one Running pod, of one of the three workers: the two removed ones gone, not only terminating', (pods) =>
      out.some((i) => pods.join() === `${i}:Running`),
    );
    await undeploy(installed, id);
    await expectNothingLeft([]);
  });

  it('a deployment whose orchestrator pod is killed mid-way is finished by the next one: one pod per instance, then undeployed leaving nothing', async function () {
    this.timeout(360_000);
    const { cluster, installed } = lapis!;
    // Wait-for-ready: the orchestrator's Service has no pod for a moment after the kill.
    const tosca = createClient(ToscaServiceClient, installed.addresses['tosca-orchestrator']!, {
      token: MESH_TOKENS.alice.token,
      waitForReady: true,
      deadlineMs: 60_000,
    });
    const unary = <Res>(invoke: (metadata: Metadata, callback: (error: Error | null, response: Res) => void) => unknown) =>
      new Promise<Res>((resolve, reject) => invoke(new Metadata(), (error, response) => (error ? reject(error) : resolve(response))));
    const deployment = async (id: string) =>
      (await unary<GetDeploymentResponse>((m, cb) => tosca.getDeployment({ deploymentId: id }, m, cb))).deployment!;
    try {
      const { deploymentId } = await unary<CreateDeploymentResponse>((m, cb) =>
        tosca.createDeployment(
          {
            template: { content: { $case: 'yaml', yaml: readFileSync(EXAMPLE_TEMPLATE, 'utf8') }, fileName: 'web-app.yaml', files: {} },
            inputs: EXAMPLE_INPUTS,
            textInputs: {},
            keepOnFailure: false,
            requestId: '',
          },
          m,
          cb,
        ),
      );
      await waitFor(async () => (await deployment(deploymentId)).nodes.some((n) => n.instanceIds.length > 0), {
        timeoutMs: 60_000,
        what: 'the deployment to have made an instance',
        intervalMs: 200,
      });
      const [victim] = names(await get('pods', 'app.kubernetes.io/component=tosca-orchestrator'));
      assert.ok(victim, 'an orchestrator pod');
      await kubectl(['delete', 'pod', '-n', NAMESPACE, victim, '--grace-period=0', '--force'], cluster); // SIGKILL
      let last: Deployment | undefined;
      await waitFor(
        async () => {
          last = await deployment(deploymentId);
          if (last.state === DeploymentState.FAILED) throw new GiveUp(`deployment failed: ${last.stateReason}`);
          return last.state === DeploymentState.DEPLOYED;
        },
        { timeoutMs: 240_000, what: 'the deployment to be DEPLOYED by the next orchestrator pod', intervalMs: 1000 },
      );
      const orchestrators = names(await get('pods', 'app.kubernetes.io/component=tosca-orchestrator'));
      assert.ok(!orchestrators.includes(victim), `the killed pod ${victim} is gone: ${orchestrators.join(', ')}`);
      const instances = last!.nodes.flatMap((n) => n.instanceIds);
      const pods = (await get('pods', 'lapis.dev/instance-id')).filter((p) => !p.metadata.deletionTimestamp);
      assert.deepEqual(
        pods.map((p) => p.metadata.labels?.['lapis.dev/instance-id']).sort(),
        [...instances].sort(),
        'one running pod per instance of the deployment, none twice',
      );
      const claims = names(await get('pvc', 'lapis.dev/volume-id'));
      assert.equal(claims.length, 1, `one claim for the one volume: ${claims.join(', ')}`);
      await undeploy(installed, deploymentId);
      await expectNothingLeft(claims);
    } finally {
      tosca.close();
    }
  });

  it('helm upgrade with a changed value rolls every service pod while a client keeps calling each: no call fails', async function () {
    this.timeout(360_000);
    const { cluster, installed } = lapis!;
    const servicePods = async () =>
      names(
        (await get('pods', 'app.kubernetes.io/component')).filter((p) =>
          SERVICES.some((s) => p.metadata.name.startsWith(`${RELEASE}-${s}-`)),
        ),
      );
    const before = await servicePods();
    const load = keepCalling(installed);
    let report: LoadReport | undefined;
    try {
      await sleep(3000); // calls flow before the upgrade starts
      await helm(['upgrade', RELEASE, CHART, '-n', NAMESPACE, '--reuse-values', '--set', 'logLevel=debug'], cluster, {
        timeoutMs: 120_000,
      });
      for (const service of SERVICES)
        await kubectl(['rollout', 'status', '-n', NAMESPACE, `deployment/${RELEASE}-${service}`, '--timeout=240s'], cluster, {
          timeoutMs: 250_000,
        });
      // The old pods finish their calls and go (their shutdown delay, then their grace period).
      let left: string[] = [];
      await waitFor(
        async () => {
          const now = await servicePods();
          left = before.filter((p) => now.includes(p));
          return left.length === 0;
        },
        { timeoutMs: 90_000, what: 'the old service pods to be gone', intervalMs: 1000 },
      ).catch((e: Error) => assert.fail(`${e.message}: ${left.join(', ')}`));
      await sleep(3000); // and calls go on after it
    } finally {
      report = await load.stop();
    }
    console.error(
      `      calls during the upgrade: ${JSON.stringify(report.calls)}; slowest ${JSON.stringify(report.slowestMs)} ms, started at ${JSON.stringify(report.slowestAt)}`,
    );
    assert.deepEqual(report.failures, [], 'failed calls');
    for (const [service, count] of Object.entries(report.calls)) assert.ok(count >= 20, `${service}: only ${count} calls`);
  });

  it('helm test checks every service through its Service; with the scheduler gone it fails, naming it', async function () {
    const out = await helm(['test', RELEASE, '-n', NAMESPACE], lapis!.cluster, { timeoutMs: 120_000 });
    assert.match(out.stdout, /Phase:\s+Succeeded/);
    await kubectl(['scale', '-n', NAMESPACE, `deployment/${RELEASE}-scheduler`, '--replicas=0'], lapis!.cluster);
    await assert.rejects(
      helm(['test', RELEASE, '-n', NAMESPACE], lapis!.cluster, { timeoutMs: 120_000 }),
      (e: unknown) => e instanceof CommandError,
    );
    const { stdout } = await kubectl(['logs', '-n', NAMESPACE, `${RELEASE}-test-connection`], lapis!.cluster);
    // Gone, or going: a stopping pod answers NOT_SERVING for its shutdown delay.
    assert.match(stdout, /scheduler \(lapis-scheduler\.lapis\.svc:50053\): .*(DEADLINE_EXCEEDED|UNAVAILABLE|not SERVING)/);
    assert.match(stdout, /image-sync \(lapis-image-sync\.lapis\.svc:50052\): SERVING/);
    // The release as it was, for the tests after this one (the failed check's pod would fail their wait for Ready pods).
    await kubectl(['delete', 'pod', '-n', NAMESPACE, `${RELEASE}-test-connection`], lapis!.cluster);
    await kubectl(['scale', '-n', NAMESPACE, `deployment/${RELEASE}-scheduler`, '--replicas=1'], lapis!.cluster);
    await kubectl(['rollout', 'status', '-n', NAMESPACE, `deployment/${RELEASE}-scheduler`, '--timeout=120s'], lapis!.cluster, {
      timeoutMs: 130_000,
    });
  });

  it("the Docker backend's DaemonSet drives the host's Docker engine: the example placed by the in-cluster scheduler is a container there with its volume mounted, gone after undeploy", async function () {
    this.timeout(480_000);
    const { installed } = lapis!;
    const backend = await useDockerBackend(lapis!, () => {});
    const onNode = `label=lapis.node=${NODE_NETWORK.nodeName}`; // the DaemonSet's agent is named after its node
    try {
      const deployment = await deploy(installed, readFileSync(EXAMPLE_TEMPLATE, 'utf8'), 'web-app.yaml', 180_000, EXAMPLE_INPUTS);
      const web = deployment.nodes.find((n) => n.name === 'web')?.instanceIds[0];
      assert.ok(web, 'a web instance');
      const running = await docker(['ps', '--filter', `label=lapis.instance-id=${web}`, '--format', '{{.ID}} {{.Label "lapis.node"}}']);
      const [container, node] = running.trim().split(' ');
      assert.equal(node, NODE_NETWORK.nodeName, `one running container on the host engine: ${running}`);
      // The agent mounted the volume in its pod; Bidirectional propagation took it to the host and into the container.
      assert.match(
        await docker(['exec', container!, 'sh', '-c', 'grep " /mnt/site " /proc/mounts']),
        /^\/dev\/loop\d+ \/mnt\/site ext4 rw/,
      );
      assert.deepEqual(await get('pods', 'lapis.dev/instance-id'), [], 'no instance pod: the Docker backend makes containers');
      await undeploy(installed, deployment.id);
      let left = '';
      await waitFor(
        async () => {
          const containers = (await docker(['ps', '-a', '--filter', onNode, '--format', '{{.Names}}'])).trim();
          const networks = (await docker(['network', 'ls', '--filter', onNode, '--format', '{{.Name}}'])).trim();
          const loops = (await run('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'])).stdout
            .split('\n')
            .filter((l) => l.includes(backend.stateDir));
          const files = ['volumes', 'instances'].flatMap((d) => readdirSync(join(backend.stateDir, d)).map((f) => `${d}/${f}`));
          const mounts = mountsUnder([backend.stateDir]).filter((m) => m !== backend.stateDir);
          left = JSON.stringify({ containers, networks, loops, files, mounts });
          return !containers && !networks && loops.length + files.length + mounts.length === 0;
        },
        { timeoutMs: 60_000, what: `nothing of node ${NODE_NETWORK.nodeName} left on the host`, intervalMs: 500 },
      ).catch((e: Error) => assert.fail(`${e.message}: ${left}`));
    } finally {
      await backend.undo();
    }
  });

  it('kube-down: the cluster goes and the host is as it was', async function () {
    const { cluster } = lapis!;
    await lapis!.stop();
    lapis = undefined;
    assert.deepEqual(cluster.leftovers, []);
    // Against the cluster's own snapshot: one taken here, before a dead run's leftovers were
    // cleaned up, would expect those leftovers back.
    assert.deepEqual(await hostDifferences(cluster.hostBefore, (name) => /^(veth|br-|docker)/.test(name)), []);
  });
});
