// A lost node with real processes: the scheduler and two node agents sharing one Docker engine.
// The agent running an instance that restarts on failure is killed (kill -9: its container
// stays); the scheduler finds the node lost, fences it and places the instance again on the
// other node, which takes it over. When the killed agent starts again it removes its copy:
// the instance ran on, once.
import { strict as assert } from 'node:assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { createClient } from '@lapis/platform';
import { natsUrl, spawnService, staticTokenFile, unique, until, type ServiceProcess } from '@lapis/platform/testing';
import { InstanceSpec } from '@lapis/proto/lapis/common/v1/common';
import { ClaimState, type GetClaimResponse, type SubmitClaimResponse } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import { BASE_IMAGE, docker, ensureBaseImage, sharedDocker } from '@lapis/testenv';
import { REPO_ROOT } from '../src/mesh';

const HEARTBEAT_MS = '500';
const main = (service: string) => join(REPO_ROOT, 'services', service, 'dist/src/main.js');

describe('a lost node, real processes: the instance moves, the node is fenced, it runs once', function () {
  this.timeout(300_000);
  const tokens = staticTokenFile();
  // Made in before(): the test NATS is started by the mocha hooks, after the files load.
  let common: Record<string, string> = {};
  const partition = unique('fence').toLowerCase();
  const processes: ServiceProcess[] = [];
  let socket = '';
  let scheduler: ServiceProcess;

  const agentEnv = (node: string, stateDir: string) => ({
    ...common,
    LAPIS_NODE_NAME: node,
    LAPIS_NODE_PARTITION: partition,
    LAPIS_STATE_DIR: stateDir,
    LAPIS_DOCKER_SOCKET: socket,
    LAPIS_STOP_TIMEOUT_S: '1',
    LAPIS_ALLOW_UNTRUSTED_IMAGES: 'true',
    LAPIS_INFINIBAND_DIR: join(stateDir, 'no-infiniband'),
  });
  const startAgent = async (node: string, stateDir: string) => {
    const p = await spawnService('container-runtime', main('container-runtime'), agentEnv(node, stateDir), 60_000);
    processes.push(p);
    return p;
  };

  before(async () => {
    common = {
      LAPIS_NATS_URL: natsUrl(),
      LAPIS_STATIC_TOKENS_FILE: tokens,
      LAPIS_FLAVORS_FILE: join(REPO_ROOT, 'config/flavors.yaml'),
      LAPIS_HEARTBEAT_MS: HEARTBEAT_MS,
      LOG_LEVEL: 'info',
    };
    socket = (await sharedDocker()).socketPath;
    await ensureBaseImage();
    const prefix = unique('fence').toLowerCase();
    scheduler = await spawnService(
      'scheduler',
      main('scheduler'),
      {
        ...common,
        LAPIS_SCHEDULER_BUCKET_PREFIX: prefix,
        LAPIS_SCHEDULER_CONSUMER_PREFIX: prefix,
        LAPIS_SCHEDULER_CYCLE_MS: '200',
        LAPIS_SCHEDULER_NODE_LOST_MS: '3000',
      },
      60_000,
    );
    processes.push(scheduler);
  });
  after(async () => {
    for (const p of processes.reverse()) await p.stop(10_000).catch(() => undefined);
  });

  it('moves a restartable instance off a killed agent’s node and leaves one copy when the agent is back', async () => {
    const nodes = [unique('node-a').toLowerCase(), unique('node-b').toLowerCase()];
    const dirs = nodes.map(() => mkdtempSync(join(tmpdir(), 'lapis-fence-')));
    const agents = [await startAgent(nodes[0]!, dirs[0]!), await startAgent(nodes[1]!, dirs[1]!)];
    const alice = createClient(SchedulerServiceClient, scheduler.address, { token: 'alice-token', project: 'physics' });
    const unary = <Res>(invoke: (m: Metadata, cb: (e: ServiceError | null, r: Res) => void) => unknown) =>
      new Promise<Res>((resolve, reject) => invoke(new Metadata(), (e, r) => (e ? reject(e) : resolve(r))));
    const claim = async (id: string) => (await unary<GetClaimResponse>((m, cb) => alice.getClaim({ claimId: id }, m, cb))).claim!;
    const copies = async (id: string) =>
      (await docker(['ps', '-q', '--filter', `label=lapis.instance-id=${id}`])).split('\n').filter(Boolean).length;
    try {
      const spec = InstanceSpec.fromPartial({
        name: 'survivor',
        flavor: 'm1.tiny',
        image: BASE_IMAGE,
        command: ['sleep', '3600'],
        restartOnFailure: true,
      });
      const submitted = await unary<SubmitClaimResponse>((m, cb) =>
        alice.submitClaim(
          { spec, preemptible: false, onPreemption: 0, partition, backend: 0, antiAffinityGroup: '', qos: '', requestId: '' },
          m,
          cb,
        ),
      );
      const id = submitted.claim!.id;
      const first = await until(
        async () => {
          const c = await claim(id);
          return c.state === ClaimState.RUNNING ? c : undefined;
        },
        'the instance running',
        90_000,
      );
      const lost = nodes.indexOf(first.node);
      assert.ok(lost >= 0, `placed on one of the two nodes: ${first.node}`);
      const other = nodes[1 - lost]!;

      await agents[lost]!.kill();
      const moved = await until(
        async () => {
          const c = await claim(id);
          return c.state === ClaimState.RUNNING && c.node === other ? c : undefined;
        },
        'the instance running on the other node',
        90_000,
      );
      assert.equal(moved.placements, 2);
      assert.equal(await copies(id), 2, 'the killed agent’s container is still there: its node is fenced, not reached');

      agents[lost] = await startAgent(nodes[lost]!, dirs[lost]!);
      await until(async () => ((await copies(id)) === 1 ? true : undefined), 'one copy left once the agent is back', 60_000);
      const after = await claim(id);
      assert.equal(after.state, ClaimState.RUNNING);
      assert.equal(after.node, other);
      await unary((m, cb) => alice.cancelClaim({ claimId: id, requestId: '' }, m, cb));
      await until(async () => ((await copies(id)) === 0 ? true : undefined), 'nothing left after the cancel', 60_000);
    } finally {
      alice.close();
    }
  });
});
