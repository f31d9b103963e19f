// The scheduler's commands: queue (squeue), priority (sprio), fairshare (sshare), claim.
import { randomBytes } from 'node:crypto';
import { listAll } from '@lapis/platform/list-all';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import {
  CancelClaimRequest,
  Claim,
  ClaimState,
  FairShareAlgorithm,
  GetClaimRequest,
  GetFairShareRequest,
  GetFairShareResponse,
  GetPriorityRequest,
  GetPriorityResponse,
  ListClaimsRequest,
  PendingReason,
  PreemptionAction,
  SubmitClaimRequest,
} from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import { UsageError, type Command } from '../cli';
import { CommandError, type Context } from '../context';
import { age, bytes, cpus, details, fixed, plain, printData, table, time, word } from '../output';
import { Progress, sleep, waitMs, waitOptions } from '../progress';

const scheduler = (ctx: Context) => ctx.client('scheduler', SchedulerServiceClient);

const ACTIVE = [ClaimState.PENDING, ClaimState.PLACED, ClaimState.RUNNING, ClaimState.REQUEUED];
const WAITING = new Set([ClaimState.PENDING, ClaimState.REQUEUED]);

function nodeOrReason(c: Claim): string {
  if (WAITING.has(c.state)) return `(${word(PendingReason, c.pendingReason)})`;
  return c.node || '-';
}

function printClaims(ctx: Context, claims: Claim[]): void {
  if (ctx.output !== 'table')
    return printData(
      ctx.output,
      claims.map((c) => plain(Claim.toJSON(c))),
    );
  const rows = claims.map((c) => ({
    CLAIM: c.id,
    NAME: c.spec?.name,
    PROJECT: c.project,
    USER: c.user,
    STATE: word(ClaimState, c.state),
    INSTANCE: word(InstanceState, c.instanceState),
    PRIORITY: fixed(c.priority),
    'NODE(REASON)': nodeOrReason(c),
    PARTITION: c.partition,
    FLAVOR: c.spec?.flavor,
    SPOT: c.preemptible ? 'yes' : undefined,
    AGE: age(c.submitTime),
  }));
  process.stdout.write(
    table(
      ['CLAIM', 'NAME', 'PROJECT', 'USER', 'STATE', 'INSTANCE', 'PRIORITY', 'NODE(REASON)', 'PARTITION', 'FLAVOR', 'SPOT', 'AGE'],
      rows,
    ),
  );
}

function printClaim(ctx: Context, c: Claim): void {
  if (ctx.output !== 'table') return printData(ctx.output, plain(Claim.toJSON(c)));
  process.stdout.write(
    details([
      ['Claim', c.id],
      ['Name', c.spec?.name],
      ['Project', c.project],
      ['User', c.user],
      ['State', word(ClaimState, c.state)],
      [
        'Pending reason',
        WAITING.has(c.state) ? word(PendingReason, c.pendingReason) + (c.reasonDetail ? ` (${c.reasonDetail})` : '') : undefined,
      ],
      ['Instance state', word(InstanceState, c.instanceState)],
      ['Priority', fixed(c.priority)],
      ['Image', c.spec?.image],
      ['Flavor', c.spec?.flavor],
      ['CPUs', cpus(c.spec?.resources?.cpuMillis ?? 0)],
      ['Memory', c.spec?.resources?.memoryBytes ? bytes(c.spec.resources.memoryBytes) : undefined],
      ['Node', c.node],
      ['Partition', c.partition],
      ['QOS', c.qos],
      ['Preemptible', c.preemptible ? `yes (on preemption: ${word(PreemptionAction, c.onPreemption)})` : 'no'],
      ['Placements', c.placements],
      ['Submitted', time(c.submitTime)],
      ['Placed', time(c.placeTime)],
      ['Ended', time(c.endTime)],
    ]),
  );
}

async function listClaims(ctx: Context, request: Partial<ListClaimsRequest>): Promise<Claim[]> {
  const client = scheduler(ctx);
  return listAll('claims', (pageToken) =>
    ctx.call('scheduler', client.listClaims.bind(client), ListClaimsRequest.fromPartial({ ...request, pageSize: 500, pageToken })),
  );
}

function parseStates(list: string[] | undefined): ClaimState[] | undefined {
  if (!list) return undefined;
  return list
    .flatMap((s) => s.split(','))
    .map((name) => {
      const value = (ClaimState as unknown as Record<string, number>)[name.trim().toUpperCase()];
      if (value === undefined || value < 1)
        throw new UsageError(`unknown claim state "${name}"; one of PENDING, PLACED, RUNNING, REQUEUED, ENDED, CANCELLED`);
      return value as ClaimState;
    });
}

export function queueCommand(): Command {
  return {
    name: 'queue',
    aliases: ['squeue'],
    summary: 'the claim queue, like squeue: state, pending reason, priority, node',
    description:
      'The claims of your project (every project for admins) in priority order, highest first: state, why a claim still waits, its priority and the node it runs on.',
    options: [
      {
        long: 'state',
        short: 't',
        value: 'STATE',
        description: 'only claims in these states (repeatable or comma-separated)',
        repeat: true,
      },
      { long: 'all', short: 'a', description: 'also ended and cancelled claims' },
      { long: 'partition', value: 'NAME', description: 'only claims of this partition' },
      { long: 'node', value: 'NODE', description: 'only claims placed on this node' },
      { long: 'all-projects', short: 'A', description: 'every project (admins)' },
    ],
    examples: ['lapisctl queue', 'lapisctl queue --state PENDING', 'lapisctl queue -o json | jq ".[].id"'],
    run: async ({ options }, ctx) => {
      const states = parseStates(options.state as string[] | undefined) ?? (options.all ? [] : ACTIVE);
      const claims = await listClaims(ctx, {
        states,
        orderByPriority: true,
        partition: (options.partition as string) ?? '',
        node: (options.node as string) ?? '',
        project: options['all-projects'] ? '' : (ctx.project() ?? ''),
      });
      printClaims(ctx, claims);
    },
  };
}

export function priorityCommand(): Command {
  return {
    name: 'priority',
    aliases: ['sprio'],
    summary: "claims' priority factors, like sprio",
    description: 'The multifactor priority of pending claims (or of the claims given): each factor weighted, and the weights in use.',
    args: [{ name: 'CLAIM', variadic: true }],
    options: [{ long: 'raw', description: 'the factors normalized to 0..1 instead of weighted' }],
    examples: ['lapisctl priority', 'lapisctl priority 3f2a... 9b1c...'],
    run: async ({ args, options }, ctx) => {
      const client = scheduler(ctx);
      const response: GetPriorityResponse = await ctx.call(
        'scheduler',
        client.getPriority.bind(client),
        GetPriorityRequest.fromPartial({ claimIds: args }),
      );
      if (ctx.output !== 'table') return printData(ctx.output, plain(GetPriorityResponse.toJSON(response)));
      const raw = Boolean(options.raw);
      const rows = response.priorities.map((p) => {
        const f = p.factors;
        const pick = (weighted: number | undefined, plainValue: number | undefined) => fixed((raw ? plainValue : weighted) ?? 0);
        return {
          CLAIM: p.claimId,
          PROJECT: p.project,
          USER: p.user,
          PRIORITY: fixed(f?.priority ?? 0),
          AGE: pick(f?.weightedAge, f?.age),
          FAIRSHARE: pick(f?.weightedFairShare, f?.fairShare),
          JOBSIZE: pick(f?.weightedJobSize, f?.jobSize),
          PARTITION: pick(f?.weightedPartition, f?.partition),
          QOS: pick(f?.weightedQos, f?.qos),
        };
      });
      const w = response.weights;
      if (w) {
        rows.unshift({
          CLAIM: 'Weights',
          PROJECT: '',
          USER: '',
          PRIORITY: '',
          AGE: fixed(w.age),
          FAIRSHARE: fixed(w.fairShare),
          JOBSIZE: fixed(w.jobSize),
          PARTITION: fixed(w.partition),
          QOS: fixed(w.qos),
        });
      }
      process.stdout.write(table(['CLAIM', 'PROJECT', 'USER', 'PRIORITY', 'AGE', 'FAIRSHARE', 'JOBSIZE', 'PARTITION', 'QOS'], rows));
      if (response.priorities.length === 0) process.stderr.write('no pending claims\n');
    },
  };
}

export function fairshareCommand(): Command {
  return {
    name: 'fairshare',
    aliases: ['sshare'],
    summary: 'fair share of projects and users, like sshare',
    args: [{ name: 'ACCOUNT' }],
    examples: ['lapisctl fairshare', 'lapisctl fairshare physics'],
    run: async ({ args }, ctx) => {
      const client = scheduler(ctx);
      const response: GetFairShareResponse = await ctx.call(
        'scheduler',
        client.getFairShare.bind(client),
        GetFairShareRequest.fromPartial({ account: args[0] ?? '' }),
      );
      if (ctx.output !== 'table') return printData(ctx.output, plain(GetFairShareResponse.toJSON(response)));
      const rows = response.entries.map((e) => ({
        ACCOUNT: e.user ? '' : e.account,
        USER: e.user,
        RAW_SHARES: e.rawShares,
        NORM_SHARES: fixed(e.normShares, 6),
        RAW_USAGE: fixed(e.rawUsage, 0),
        NORM_USAGE: fixed(e.normUsage, 6),
        EFFECTV_USAGE: fixed(e.effectiveUsage, 6),
        FAIRSHARE: fixed(e.fairShareFactor, 6),
        LEVEL_FS: fixed(e.levelFs, 6),
      }));
      process.stdout.write(
        table(['ACCOUNT', 'USER', 'RAW_SHARES', 'NORM_SHARES', 'RAW_USAGE', 'NORM_USAGE', 'EFFECTV_USAGE', 'FAIRSHARE', 'LEVEL_FS'], rows),
      );
      const halfLife = response.usageHalfLife ? `, usage half-life ${Math.round(response.usageHalfLife.seconds / 3600)}h` : '';
      process.stdout.write(`\nalgorithm ${word(FairShareAlgorithm, response.algorithm)}${halfLife}\n`);
    },
  };
}

/** Waits until the claim's instance runs (or the claim ends); a spinner shows where it is. */
async function waitForClaim(ctx: Context, id: string, timeoutMs: number): Promise<Claim> {
  const client = scheduler(ctx);
  const progress = new Progress().start(`claim ${id}: submitted`);
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const { claim } = await ctx.call('scheduler', client.getClaim.bind(client), GetClaimRequest.fromPartial({ claimId: id }));
      if (!claim) throw new CommandError(`claim ${id} disappeared`);
      progress.update(
        `claim ${id}: ${word(ClaimState, claim.state)}${WAITING.has(claim.state) ? ` (${word(PendingReason, claim.pendingReason)})` : ''}, instance ${word(InstanceState, claim.instanceState)}`,
      );
      if (claim.instanceState === InstanceState.RUNNING) return claim;
      if (claim.state === ClaimState.ENDED || claim.state === ClaimState.CANCELLED || claim.instanceState === InstanceState.ERROR) {
        throw new CommandError(
          `claim ${id} ${word(ClaimState, claim.state)}, instance ${word(InstanceState, claim.instanceState)}${claim.reasonDetail ? `: ${claim.reasonDetail}` : ''}`,
        );
      }
      if (Date.now() > deadline) throw new CommandError(`claim ${id} still ${word(ClaimState, claim.state)} after ${timeoutMs / 1000}s`);
      await sleep(500);
    }
  } finally {
    progress.stop();
  }
}

export function claimCommand(): Command {
  return {
    name: 'claim',
    aliases: ['claims'],
    summary: 'claims: submit, get, cancel (a claim is a request for one instance)',
    subcommands: [
      {
        name: 'submit',
        summary: 'ask for one instance; it waits in the queue until a node has room',
        options: [
          { long: 'image', value: 'IMAGE', description: 'image from the trusted catalogue (lapisctl image list)' },
          { long: 'flavor', value: 'FLAVOR', description: 'flavor name, for example m1.small' },
          { long: 'name', value: 'NAME', description: "the instance's name and hostname (default: from the image)" },
          { long: 'preemptible', description: 'a spot instance: runs on idle room and gives it back when asked' },
          { long: 'requeue', description: 'when preempted, queue again instead of ending' },
          { long: 'partition', value: 'NAME', description: 'partition to run in' },
          { long: 'qos', value: 'NAME', description: 'QOS name' },
          { long: 'env', short: 'e', value: 'KEY=VALUE', description: 'environment variable (repeatable)', repeat: true },
          { long: 'label', value: 'KEY=VALUE', description: 'label (repeatable)', repeat: true },
          { long: 'volume', value: 'VOLUME[:PATH]', description: 'volume to attach at creation (repeatable)', repeat: true },
          { long: 'request-id', value: 'KEY', description: 'idempotency key: a retry with the same key returns the same claim' },
          ...waitOptions('wait until the instance runs'),
        ],
        usageTail: '[-- COMMAND...]',
        examples: [
          'lapisctl claim submit --image lapis/busybox:1.36 --flavor m1.tiny -- sleep 3600',
          'lapisctl claim submit --image lapis/busybox:1.36 --flavor m1.small --preemptible --wait',
        ],
        run: async ({ options, rest }, ctx) => {
          if (typeof options.image !== 'string') throw new UsageError('--image is required');
          if (typeof options.flavor !== 'string') throw new UsageError('--flavor is required');
          const pairs = (list: unknown, what: string) => {
            const out: Record<string, string> = {};
            for (const pair of (list as string[] | undefined) ?? []) {
              const eq = pair.indexOf('=');
              if (eq < 1) throw new UsageError(`--${what} "${pair}" must be KEY=VALUE`);
              out[pair.slice(0, eq)] = pair.slice(eq + 1);
            }
            return out;
          };
          const base =
            options.image
              .replace(/[@:].*$/, '')
              .split('/')
              .pop()!
              .toLowerCase()
              .replace(/[^a-z0-9-]/g, '-')
              .slice(0, 40) || 'instance';
          const name = (options.name as string | undefined) ?? `${base}-${randomBytes(3).toString('hex')}`;
          const volumes = ((options.volume as string[] | undefined) ?? []).map((v) => {
            const [volumeId, mountPath] = v.split(':', 2) as [string, string | undefined];
            return { volumeId, mountPath: mountPath ?? '', readOnly: false };
          });
          const timeoutMs = options.wait ? waitMs(options) : 0;
          const request = SubmitClaimRequest.fromPartial({
            spec: {
              name,
              flavor: options.flavor,
              image: options.image,
              command: rest,
              environment: pairs(options.env, 'env'),
              labels: pairs(options.label, 'label'),
              volumes,
            },
            preemptible: Boolean(options.preemptible),
            onPreemption: options.requeue
              ? PreemptionAction.REQUEUE
              : options.preemptible
                ? PreemptionAction.END
                : PreemptionAction.UNSPECIFIED,
            partition: (options.partition as string) ?? '',
            qos: (options.qos as string) ?? '',
            requestId: (options['request-id'] as string) ?? randomBytes(12).toString('hex'),
          });
          const client = scheduler(ctx);
          let { claim } = await ctx.call('scheduler', client.submitClaim.bind(client), request);
          if (!claim) return;
          if (options.wait) {
            if (ctx.output === 'table') process.stderr.write(`claim ${claim.id} submitted\n`);
            claim = await waitForClaim(ctx, claim.id, timeoutMs);
          }
          if (ctx.output !== 'table') return printClaim(ctx, claim);
          process.stdout.write(
            `claim ${claim.id} ${word(ClaimState, claim.state)}${WAITING.has(claim.state) ? ` (${word(PendingReason, claim.pendingReason)})` : ''}, instance ${word(InstanceState, claim.instanceState)}${claim.node ? ` on ${claim.node}` : ''}\n`,
          );
        },
      },
      {
        name: 'get',
        aliases: ['show'],
        summary: 'show one claim',
        args: [{ name: 'CLAIM', required: true }],
        run: async ({ args }, ctx) => {
          const client = scheduler(ctx);
          const { claim } = await ctx.call('scheduler', client.getClaim.bind(client), GetClaimRequest.fromPartial({ claimId: args[0]! }));
          if (claim) printClaim(ctx, claim);
        },
      },
      {
        name: 'list',
        aliases: ['ls'],
        summary: 'list claims by submit time (see also lapisctl queue)',
        options: [
          {
            long: 'state',
            short: 't',
            value: 'STATE',
            description: 'only claims in these states (repeatable or comma-separated)',
            repeat: true,
          },
        ],
        run: async ({ options }, ctx) => {
          printClaims(
            ctx,
            await listClaims(ctx, { states: parseStates(options.state as string[] | undefined) ?? [], project: ctx.project() ?? '' }),
          );
        },
      },
      {
        name: 'cancel',
        summary: 'end a pending claim, or delete the instance of a placed one',
        args: [{ name: 'CLAIM', required: true }],
        run: async ({ args }, ctx) => {
          const client = scheduler(ctx);
          const { claim } = await ctx.call(
            'scheduler',
            client.cancelClaim.bind(client),
            CancelClaimRequest.fromPartial({ claimId: args[0]! }),
          );
          if (!claim) return;
          if (ctx.output !== 'table') return printClaim(ctx, claim);
          process.stdout.write(`claim ${claim.id} ${word(ClaimState, claim.state)}\n`);
        },
      },
    ],
  };
}
