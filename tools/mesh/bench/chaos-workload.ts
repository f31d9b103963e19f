// One run of the chaos benchmark's workload against an HA mesh: claims from many projects and
// TOSCA deployments submitted at a steady pace, each claim released (cancelled) once its
// instance runs, each deployment deleted once DEPLOYED; faults inflicted meanwhile when asked.
// What it records: when each claim ran, every placement time and deployment step the APIs
// show, and every container the engine started (docker events), for the checks afterwards.
import { spawn } from 'node:child_process';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { createClient } from '@lapis/platform';
import { sleep } from '@lapis/platform/testing';
import { InstanceSpec, InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { ClaimState, type Claim, type ListClaimsResponse, type SubmitClaimResponse } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import { DeploymentState, type CreateDeploymentResponse, type GetDeploymentResponse } from '@lapis/proto/lapis/tosca/v1/tosca';
import { ToscaServiceClient } from '@lapis/proto/lapis/tosca/v1/tosca_service';
import { docker, ensureCommands } from '@lapis/testenv';
import type { Mesh } from '../src/mesh';
import { FAULT_KINDS, inflict, type FaultKind, type Kill } from './chaos-faults';

export interface Project {
  project: string;
  token: string;
}

export interface WorkloadPlan {
  /** Names the run in request ids and instance names. */
  name: string;
  claims: number;
  deployments: number;
  /** The submission phase; kills fall inside it. */
  durationMs: number;
  projects: Project[];
  adminToken: string;
  /** Rounds of the four kills, evenly through the submission phase (they set the fault window in a run without faults too). */
  faultRounds: number;
  /** Whether the kills happen (false: the run without faults, measured over the same window). */
  faults: boolean;
  nodeAwayMs: number;
  /** How long after the submission phase everything may take to finish. */
  settleMs: number;
  progress: (line: string) => void;
}

export interface KillResult extends Kill {
  /** Seconds from the kill to the next placement (or, for the orchestrator, the next step of a deployment under way). */
  failoverS: number;
  via: 'placement' | 'deployment step' | 'none';
}

export interface RunResult {
  claimsFinished: number;
  deploymentsFinished: number;
  lost: string[];
  duplicated: string[];
  leftovers: number;
  kills: KillResult[];
  /** Placements of the run in the fault window (the same offsets in a run without faults), per second. */
  placementsPerS: number;
  claimRunP50S: number;
  claimRunP99S: number;
  deployP50S: number;
  wallS: number;
}

/** A deployment of the run as followed through the orchestrator. */
interface Dep {
  id: string;
  project: Project;
  /** The orchestrator replica that took the create. */
  replica: number;
  createdAt: number;
  deployedAt?: number;
  deleted?: boolean;
  failed?: string;
  /** Its update times seen: each one a step of the deployment. */
  steps: Set<number>;
  instanceIds: string[];
}

const BUSY = ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done'];
const TEMPLATE = `tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    server:
      type: tosca.nodes.indigo.Compute
      capabilities:
        host: { properties: { num_cpus: 1, mem_size: 64 MB } }
        os: { properties: { image: "lapis/httpd:1.36" } }
        scalable: { properties: { count: 2 } }
`;

type Invoke<Res> = (m: Metadata, cb: (e: ServiceError | null, r: Res) => void) => unknown;
const unary = <Res>(invoke: Invoke<Res>) =>
  new Promise<Res>((resolve, reject) => invoke(new Metadata(), (e, r) => (e ? reject(e) : resolve(r))));
const ms = (t: Date | undefined) => t?.getTime() ?? 0;
export const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! : 0;
};

/** Calls `work` until it succeeds (a replica or NATS server may be away), for up to `limitMs`. */
async function persist<T>(work: () => Promise<T>, limitMs = 120_000): Promise<T> {
  const until = Date.now() + limitMs;
  for (;;) {
    try {
      return await work();
    } catch (error) {
      if (Date.now() > until) throw error;
      await sleep(500);
    }
  }
}

/**
 * The containers that ran, by the instance id they carry: each container the engine started
 * (a create that failed before its start ran nothing; a restart is the same container).
 */
async function watchStarts(mesh: Mesh): Promise<{ started: Map<string, Set<string>>; stop: () => void }> {
  const { docker: cli } = await ensureCommands({ docker: 'docker.io' });
  const child = spawn(
    cli,
    ['events', '--filter', 'type=container', '--filter', 'event=start', '--filter', 'label=lapis.instance-id', '--format', '{{json .}}'],
    { env: { ...process.env, DOCKER_HOST: `unix://${mesh.docker.socketPath}` }, stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const started = new Map<string, Set<string>>();
  let rest = '';
  child.stdout.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString()).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines.filter(Boolean)) {
      const event = JSON.parse(line) as { Actor?: { ID?: string; Attributes?: Record<string, string> } };
      const id = event.Actor?.Attributes?.['lapis.instance-id'];
      if (id && event.Actor?.ID) (started.get(id) ?? started.set(id, new Set()).get(id)!).add(event.Actor.ID);
    }
  });
  await sleep(500); // subscribed before the first claim
  return { started, stop: () => child.kill() };
}

export async function runWorkload(mesh: Mesh, plan: WorkloadPlan): Promise<RunResult> {
  const say = plan.progress;
  const schedulers = new Map(
    plan.projects.map((p) => [
      p.project,
      createClient(SchedulerServiceClient, mesh.targets.scheduler!, { token: p.token, project: p.project }),
    ]),
  );
  const admin = createClient(SchedulerServiceClient, mesh.targets.scheduler!, { token: plan.adminToken });
  const toscaOf = (p: Project, replica?: number) =>
    createClient(
      ToscaServiceClient,
      replica === undefined ? mesh.targets['tosca-orchestrator']! : mesh.replicas['tosca-orchestrator']![replica]!.address,
      {
        token: p.token,
        project: p.project,
        deadlineMs: 30_000,
      },
    );
  const watcher = await watchStarts(mesh);
  const start = Date.now();
  const claimDue = (i: number) => start + (i * plan.durationMs) / plan.claims;
  const deploymentDue = (j: number) => start + ((j + 0.5) * plan.durationMs) / plan.deployments;
  const kills = plan.faultRounds * FAULT_KINDS.length;
  const killDue = (k: number) => start + ((k + 1) * plan.durationMs) / (kills + 1);
  const windowStart = killDue(0) - start;
  const windowEnd = killDue(Math.max(0, kills - 1)) - start + 10_000;

  // What the run sees.
  const submitted = new Map<string, { at: number; project: Project }>(); // claim id
  const ran = new Map<string, number>(); // claim id -> seen RUNNING (epoch ms)
  const released = new Set<string>();
  const placeTimes = new Map<string, Set<number>>(); // claim id (any, deployments' too) -> place times seen
  const failedSubmits: string[] = [];
  const deployments: Dep[] = [];
  const failedDeployments: string[] = [];

  const submitClaim = async (i: number) => {
    const project = plan.projects[i % plan.projects.length]!;
    const client = schedulers.get(project.project)!;
    const spec = InstanceSpec.fromPartial({
      name: `${plan.name}-${i}`,
      flavor: 'm1.tiny',
      image: mesh.images[0]!,
      command: BUSY,
      restartOnFailure: true,
    });
    try {
      const response = await persist(() =>
        unary<SubmitClaimResponse>((m, cb) =>
          client.submitClaim(
            {
              spec,
              preemptible: false,
              onPreemption: 0,
              partition: '',
              backend: 0,
              antiAffinityGroup: '',
              qos: '',
              requestId: `${plan.name}-claim-${i}`,
            },
            m,
            cb,
          ),
        ),
      );
      submitted.set(response.claim!.id, { at: Date.now(), project });
    } catch (error) {
      failedSubmits.push(`claim ${i}: ${(error as Error).message}`);
    }
  };
  const createDeployment = async (j: number) => {
    const project = plan.projects[j % plan.projects.length]!;
    const replica = j % (mesh.replicas['tosca-orchestrator']?.length ?? 1);
    const createdAt = Date.now();
    try {
      const created = await persist(() => {
        const client = toscaOf(project, replica);
        return unary<CreateDeploymentResponse>((m, cb) =>
          client.createDeployment(
            {
              template: { content: { $case: 'yaml', yaml: TEMPLATE }, fileName: 'chaos.yaml', files: {} },
              inputs: undefined,
              textInputs: {},
              keepOnFailure: false,
              requestId: `${plan.name}-deployment-${j}`,
            },
            m,
            cb,
          ),
        ).finally(() => client.close());
      });
      deployments.push({ id: created.deploymentId, project, replica, createdAt, steps: new Set(), instanceIds: [] });
    } catch (error) {
      failedDeployments.push(`deployment ${j}: ${(error as Error).message}`);
    }
  };

  // The submissions, at their times; a few at a time so a slow answer does not hold the pace.
  const inFlight = new Set<Promise<void>>();
  const launch = (work: Promise<void>) => {
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
  };
  const submitting = (async () => {
    let i = 0;
    let j = 0;
    while (i < plan.claims || j < plan.deployments) {
      const now = Date.now();
      while (i < plan.claims && claimDue(i) <= now && inFlight.size < 32) launch(submitClaim(i++));
      while (j < plan.deployments && deploymentDue(j) <= now) launch(createDeployment(j++));
      await sleep(50);
    }
    await Promise.all(inFlight);
  })();

  // The faults, in turn; the orchestrator's right after a deployment was created (so one is under way).
  const killed: Kill[] = [];
  const underWayAt = new Map<Kill, Dep[]>();
  const faulting = (async () => {
    for (let k = 0; plan.faults && k < kills; k++) {
      const kind: FaultKind = FAULT_KINDS[k % FAULT_KINDS.length]!;
      let due = killDue(k);
      if (kind === 'orchestrator-replica') {
        const next = Array.from({ length: plan.deployments }, (_, j) => deploymentDue(j)).find((t) => t >= due - 1000);
        if (next !== undefined) due = next + 1500;
      }
      while (Date.now() < due) await sleep(50);
      const underWay = deployments.filter((d) => !d.deployedAt && !d.failed);
      const replica = underWay.at(-1)?.replica ?? 0;
      try {
        const kill = await inflict(mesh, kind, Math.floor(k / FAULT_KINDS.length), {
          orchestratorReplica: replica,
          nodeAwayMs: plan.nodeAwayMs,
        });
        killed.push(kill);
        underWayAt.set(kill, underWay);
        say(`killed ${kill.target} (kill -9), back after ${((kill.back - kill.at) / 1000).toFixed(1)} s`);
      } catch (error) {
        say(`could not inflict ${kind}: ${(error as Error).message}`);
      }
    }
  })();

  // The observer: claims that run are released; deployments followed, deleted once DEPLOYED.
  const settleBy = start + plan.durationMs + plan.settleMs;
  let submissionsDone = false;
  void submitting.then(() => (submissionsDone = true));
  const releasing = new Set<Promise<unknown>>();
  const allDone = () =>
    submissionsDone &&
    [...submitted.keys()].every((id) => released.has(id)) &&
    deployments.every((d) => d.deleted || d.failed) &&
    releasing.size === 0;
  let lastSay = 0;
  while (!allDone() && Date.now() < settleBy) {
    try {
      for (const claim of await listClaims(admin, [ClaimState.PLACED, ClaimState.RUNNING])) {
        if (claim.placeTime) (placeTimes.get(claim.id) ?? placeTimes.set(claim.id, new Set()).get(claim.id)!).add(ms(claim.placeTime));
        const mine = submitted.get(claim.id);
        if (!mine || released.has(claim.id) || claim.state !== ClaimState.RUNNING || claim.instanceState !== InstanceState.RUNNING)
          continue;
        ran.set(claim.id, Date.now());
        released.add(claim.id);
        const client = schedulers.get(mine.project.project)!;
        const release = persist(() =>
          unary((m, cb) => client.cancelClaim({ claimId: claim.id, requestId: `${claim.id}-release` }, m, cb)),
        ).catch((error: Error) => say(`could not release ${claim.id}: ${error.message}`));
        releasing.add(release);
        void release.finally(() => releasing.delete(release));
      }
    } catch (error) {
      say(`listing claims failed (retrying): ${(error as Error).message}`);
    }
    await followDeployments(
      deployments.filter((d) => !d.deleted && !d.failed),
      toscaOf,
    );
    if (Date.now() - lastSay > 15_000) {
      lastSay = Date.now();
      say(
        `${Math.round((Date.now() - start) / 1000)} s: ${submitted.size} claims submitted, ${ran.size} ran; ${deployments.filter((d) => d.deployedAt).length}/${deployments.length} deployments DEPLOYED`,
      );
    }
    await sleep(1000);
  }
  await Promise.all([submitting, faulting, ...releasing]);

  // Every claim as the scheduler has it now, with its placement count and last place time.
  const finalClaims = new Map((await persist(() => listClaims(admin, []))).map((c) => [c.id, c]));
  for (const claim of finalClaims.values())
    if (claim.placeTime) (placeTimes.get(claim.id) ?? placeTimes.set(claim.id, new Set()).get(claim.id)!).add(ms(claim.placeTime));
  const ours = new Set([...submitted.keys(), ...deployments.flatMap((d) => d.instanceIds)]);
  const leftovers = await waitForNoContainers(ours);
  watcher.stop();
  for (const client of [...schedulers.values(), admin]) client.close();

  const lost = [
    ...failedSubmits,
    ...failedDeployments,
    ...[...submitted.keys()]
      .filter((id) => !ran.has(id))
      .map((id) => `claim ${id}: ${ClaimState[finalClaims.get(id)?.state ?? 0]}, never seen RUNNING`),
    ...deployments.filter((d) => !d.deployedAt).map((d) => `deployment ${d.id}: ${d.failed ?? 'never DEPLOYED'}`),
  ];
  // A placement runs one container: more than that for an instance is a container run twice.
  const ranCount = (id: string) => watcher.started.get(id)?.size ?? 0;
  const duplicated = [...ours]
    .filter((id) => ranCount(id) > Math.max(1, finalClaims.get(id)?.placements ?? 1))
    .map((id) => `${id}: ${ranCount(id)} containers ran for ${finalClaims.get(id)?.placements ?? '?'} placements`);

  const allPlacements = [...placeTimes.values()].flatMap((s) => [...s]).sort((a, b) => a - b);
  const ourPlacements = [...submitted.keys()].flatMap((id) => [...(placeTimes.get(id) ?? [])]);
  const kills_ = killed.map((kill): KillResult => {
    const steps = (deps: Dep[]) => deps.flatMap((d) => [...d.steps]).filter((t) => t > kill.at);
    let next: number | undefined;
    let via: KillResult['via'] = 'none';
    if (kill.kind === 'orchestrator-replica') {
      const after = steps(underWayAt.get(kill) ?? []);
      if (after.length) [next, via] = [Math.min(...after), 'deployment step'];
    }
    if (next === undefined) {
      const placement = allPlacements.find((t) => t > kill.at);
      const step = Math.min(...steps(deployments));
      if (placement !== undefined && !(step < placement)) [next, via] = [placement, 'placement'];
      else if (Number.isFinite(step)) [next, via] = [step, 'deployment step'];
    }
    // Nothing after it: the whole rest of the run counts.
    return { ...kill, failoverS: ((next ?? Date.now()) - kill.at) / 1000, via };
  });
  const runTimes = [...ran].map(([id, at]) => (at - submitted.get(id)!.at) / 1000);
  const deployTimes = deployments.filter((d) => d.deployedAt).map((d) => (d.deployedAt! - d.createdAt) / 1000);
  return {
    claimsFinished: ran.size,
    deploymentsFinished: deployments.filter((d) => d.deployedAt).length,
    lost,
    duplicated,
    leftovers,
    kills: kills_,
    placementsPerS:
      ourPlacements.filter((t) => t - start >= windowStart && t - start <= windowEnd).length / ((windowEnd - windowStart) / 1000),
    claimRunP50S: percentile(runTimes, 50),
    claimRunP99S: percentile(runTimes, 99),
    deployP50S: percentile(deployTimes, 50),
    wallS: (Date.now() - start) / 1000,
  };
}

/** Every claim in the given states (all states when empty), every project, as an admin. */
async function listClaims(admin: SchedulerServiceClient, states: ClaimState[]): Promise<Claim[]> {
  const claims: Claim[] = [];
  let pageToken = '';
  do {
    const page = await unary<ListClaimsResponse>((m, cb) =>
      admin.listClaims({ pageSize: 1000, pageToken, project: '', states, partition: '', node: '', orderByPriority: false }, m, cb),
    );
    claims.push(...page.claims);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return claims;
}

/** One look at each deployment under way: its steps (update times), DEPLOYED then deleted, or FAILED. */
async function followDeployments(deps: Dep[], toscaOf: (p: Project) => ToscaServiceClient): Promise<void> {
  await Promise.all(
    deps.map(async (d) => {
      const client = toscaOf(d.project);
      try {
        const { deployment } = await unary<GetDeploymentResponse>((m, cb) => client.getDeployment({ deploymentId: d.id }, m, cb));
        if (!deployment) return;
        d.steps.add(ms(deployment.updateTime));
        const ids = deployment.nodes.flatMap((n) => n.instanceIds);
        if (ids.length) d.instanceIds = [...new Set([...d.instanceIds, ...ids])];
        if (deployment.state === DeploymentState.FAILED) d.failed = `FAILED: ${deployment.stateReason}`;
        else if (deployment.state === DeploymentState.DELETED) d.deleted = true;
        else if (deployment.state === DeploymentState.DEPLOYED && !d.deployedAt) {
          d.deployedAt = Date.now();
          await unary((m, cb) => client.deleteDeployment({ deploymentId: d.id, requestId: `${d.id}-delete` }, m, cb));
        }
      } catch {
        // A replica away: the next look goes to the other one.
      } finally {
        client.close();
      }
    }),
  );
}

/** Waits (up to 2 minutes) until no container of the run's instances is left; returns how many are. */
async function waitForNoContainers(ids: Set<string>): Promise<number> {
  const left = async () =>
    (await docker(['ps', '-a', '--filter', 'label=lapis.instance-id', '--format', '{{.Label "lapis.instance-id"}}']))
      .split('\n')
      .filter((id) => ids.has(id)).length;
  const until = Date.now() + 120_000;
  let count = await left();
  while (count > 0 && Date.now() < until) {
    await sleep(2000);
    count = await left();
  }
  return count;
}
