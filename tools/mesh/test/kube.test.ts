// Lapis installed with Helm on the real one-node cluster, end to end: what `make kube-up` does
// (every pod Ready through its own probes, NATS on a claim), then a deployment with a volume
// through the in-cluster orchestrator (the instance a pod, the volume a claim, its web address
// answering from the host), undeployed leaving no pod, claim or volume; then the cluster goes
// and the host is as before. Needs the service images: `make test` builds them first
// (LAPIS_REQUIRE_IMAGES=1); a bare `npx mocha` without them skips with a message.
import { strict as assert } from 'node:assert';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CommandError,
  docker,
  ensureDocker,
  helm,
  hostDifferences,
  kubectl,
  snapshotHost,
  waitFor,
  type DockerEngine,
  type HostSnapshot,
} from '@lapis/testenv';
import { undeploy } from '../src/example';
import { SERVICES } from '../src/mesh';
import { deployExampleInCluster, type ExampleResult } from '../src/kube/example';
import { CHART, imageVersion, NAMESPACE, RELEASE, startLapisOnKube, type LapisOnKube } from '../src/kube/install';
import { keepCalling } from './keep-calling';

interface Obj {
  metadata: { name: string; labels?: Record<string, string> };
  status?: { phase?: string };
  spec?: { claimRef?: { namespace?: string; name?: string } };
}

const names = (items: Obj[]) => items.map((o) => o.metadata.name).sort();

describe('Lapis on a real one-node Kubernetes cluster (make kube-up, end to end)', function () {
  this.timeout(240_000);
  let engine: DockerEngine;
  let lapis: LapisOnKube | undefined;
  let hostBefore: HostSnapshot;
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
    hostBefore = await snapshotHost();
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

  it('undeploys leaving no instance pod, no claim and no volume', async function () {
    assert.ok(example, 'the deployment above was made');
    await undeploy(lapis!.installed, example.deploymentId);
    let left = '';
    await waitFor(
      async () => {
        const pods = await get('pods', 'lapis.dev/instance-id');
        const claims = await get('pvc', 'lapis.dev/volume-id');
        const volumes = (JSON.parse((await kubectl(['get', 'pv', '-o', 'json'], lapis!.cluster)).stdout) as { items: Obj[] }).items.filter(
          (v) => example!.claims.includes(v.spec?.claimRef?.name ?? ''),
        );
        left = `pods ${names(pods).join(',')}; claims ${names(claims).join(',')}; volumes ${names(volumes).join(',')}`;
        return pods.length + claims.length + volumes.length === 0;
      },
      { timeoutMs: 90_000, what: 'the deployment to leave nothing', intervalMs: 1000 },
    ).catch((e: Error) => assert.fail(`${e.message}: left ${left}`));
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
    await sleep(3000); // calls flow before the upgrade starts
    await helm(['upgrade', RELEASE, CHART, '-n', NAMESPACE, '--reuse-values', '--set', 'logLevel=debug'], cluster, { timeoutMs: 120_000 });
    for (const service of SERVICES)
      await kubectl(['rollout', 'status', '-n', NAMESPACE, `deployment/${RELEASE}-${service}`, '--timeout=240s'], cluster, {
        timeoutMs: 250_000,
      });
    await sleep(3000); // and go on after it
    const report = await load.stop();
    const after = await servicePods();
    assert.deepEqual(
      before.filter((p) => after.includes(p)),
      [],
      `every service pod was replaced (before ${before.join(', ')}; after ${after.join(', ')})`,
    );
    console.error(`      calls during the upgrade: ${JSON.stringify(report.calls)}; slowest ${JSON.stringify(report.slowestMs)} ms`);
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
  });

  it('kube-down: the cluster goes and the host is as it was', async function () {
    const { cluster } = lapis!;
    await lapis!.stop();
    lapis = undefined;
    assert.deepEqual(cluster.leftovers, []);
    assert.deepEqual(await hostDifferences(hostBefore, (name) => /^(veth|br-|docker)/.test(name)), []);
  });
});
