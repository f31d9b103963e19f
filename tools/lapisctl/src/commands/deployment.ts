// lapisctl deployment: TOSCA deployments through the tosca-orchestrator.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, normalize, relative } from 'node:path';
import { listAll } from '@lapis/platform/list-all';
import {
  CreateDeploymentRequest,
  DeleteDeploymentRequest,
  Deployment,
  DeploymentState,
  GetDeploymentRequest,
  LifecycleOperationState,
  ListDeploymentsRequest,
  NodeState,
  UpdateDeploymentRequest,
  WatchDeploymentRequest,
  type TemplateSource,
} from '@lapis/proto/lapis/tosca/v1/tosca';
import { ToscaServiceClient } from '@lapis/proto/lapis/tosca/v1/tosca_service';
import { parse as parseYaml } from 'yaml';
import { UsageError, type Command } from '../cli';
import { inputOption } from './tosca';
import { CommandError, type Context } from '../context';
import { age, details, plain, printData, table, time, word } from '../output';
import { giveUpAfter, Progress, waitMs, waitOptions } from '../progress';

const tosca = (ctx: Context) => ctx.client('tosca', ToscaServiceClient);

/**
 * The files an operation's implementation names (a script, a playbook; `primary` and its
 * `dependencies`) and node artifacts' files, wherever the document defines them: paths as the
 * document wrote them.
 */
function artifactPaths(doc: unknown): string[] {
  const out: string[] = [];
  const fileOf = (v: unknown) => (typeof v === 'string' ? v : typeof v === 'object' && v ? (v as { file?: unknown }).file : undefined);
  const walk = (v: unknown) => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (typeof v !== 'object' || v === null) return;
    for (const [key, value] of Object.entries(v)) {
      if (key === 'implementation') {
        const impl = value as { primary?: unknown; dependencies?: unknown };
        out.push(
          ...[fileOf(impl?.primary ?? value), ...(Array.isArray(impl?.dependencies) ? impl.dependencies.map(fileOf) : [])].filter(
            (f): f is string => typeof f === 'string',
          ),
        );
      } else if (key === 'artifacts' && typeof value === 'object' && value) {
        out.push(
          ...Object.values(value)
            .map(fileOf)
            .filter((f): f is string => typeof f === 'string'),
        );
      } else walk(value);
    }
  };
  walk(doc);
  return out;
}

/** The template file (YAML or CSAR), the local files it imports and the artifacts it names, relative to it. */
export function readTemplate(file: string): TemplateSource {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw new UsageError(
      `cannot read template ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`,
    );
  }
  if (/\.(csar|zip)$/i.test(file) || (bytes[0] === 0x50 && bytes[1] === 0x4b)) {
    return { content: { $case: 'csar', csar: bytes }, fileName: basename(file), files: {} };
  }
  const text = bytes.toString('utf8');
  const files: Record<string, string> = {};
  const root = dirname(file);
  const visit = (yamlText: string, from: string) => {
    let doc: unknown;
    try {
      doc = parseYaml(yamlText);
    } catch {
      return; // The orchestrator reports the syntax error with its position.
    }
    // Scripts and playbooks beside the template go with it: the orchestrator runs them in the instances.
    for (const path of artifactPaths(doc)) {
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) continue;
      const onDisk = normalize(join(from, path));
      const key = relative(root, onDisk);
      if (!(key in files) && existsSync(onDisk) && statSync(onDisk).isFile()) files[key] = readFileSync(onDisk, 'utf8');
    }
    const imports = (doc as { imports?: unknown } | null)?.imports;
    if (!Array.isArray(imports)) return;
    for (const entry of imports) {
      const target =
        typeof entry === 'string'
          ? entry
          : typeof entry === 'object' && entry
            ? ((entry as { file?: unknown }).file as string | undefined)
            : undefined;
      if (typeof target !== 'string' || /^[a-z]+:\/\//i.test(target)) continue;
      const onDisk = normalize(join(from, target));
      const key = relative(root, onDisk);
      if (key in files || !existsSync(onDisk)) continue;
      files[key] = readFileSync(onDisk, 'utf8');
      visit(files[key]!, dirname(onDisk));
    }
  };
  visit(text, root);
  return { content: { $case: 'yaml', yaml: text }, fileName: basename(file), files };
}

/** An inputs file: a YAML (or JSON) map. */
export function readInputs(file: string | undefined): Record<string, unknown> | undefined {
  if (file === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new UsageError(`cannot read inputs ${file}: ${(error as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed))
    throw new UsageError(`inputs ${file} must be a YAML map of input names to values`);
  return parsed as Record<string, unknown>;
}

/** Each --input NAME=VALUE: text the orchestrator converts to the input's declared type. */
export function readTextInputs(pairs: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (pairs as string[] | undefined) ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--input takes NAME=VALUE (got "${pair}")`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

const value = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

function printDeployments(ctx: Context, list: Deployment[]): void {
  if (ctx.output !== 'table')
    return printData(
      ctx.output,
      list.map((d) => plain(Deployment.toJSON(d))),
    );
  const rows = list.map((d) => ({
    ID: d.id,
    PROJECT: d.project,
    STATE: word(DeploymentState, d.state),
    NODES: `${d.nodes.filter((n) => n.state === NodeState.STARTED).length}/${d.nodes.length}`,
    TEMPLATE: d.template?.fileName,
    AGE: age(d.createTime),
    REASON: d.stateReason,
  }));
  process.stdout.write(table(['ID', 'PROJECT', 'STATE', 'NODES', 'TEMPLATE', 'AGE', 'REASON'], rows));
}

function printDeployment(ctx: Context, d: Deployment): void {
  if (ctx.output !== 'table') return printData(ctx.output, plain(Deployment.toJSON(d)));
  process.stdout.write(
    details([
      ['ID', d.id],
      ['Project', d.project],
      ['User', d.user],
      ['State', word(DeploymentState, d.state) + (d.stateReason ? ` (${d.stateReason})` : '')],
      ['Template', d.template?.fileName],
      ['Created', time(d.createTime)],
      ['Updated', time(d.updateTime)],
      ['Operation', d.operation],
    ]),
  );
  process.stdout.write('\nNodes:\n');
  process.stdout.write(
    table(
      ['NAME', 'TYPE', 'STATE', 'INSTANCES', 'VOLUMES', 'REASON'],
      d.nodes.map((n) => ({
        NAME: n.name,
        TYPE: n.type,
        STATE: word(NodeState, n.state),
        INSTANCES: n.instanceIds.join(','),
        VOLUMES: n.volumeIds.join(','),
        REASON: n.stateReason,
      })),
    ).replace(/^/gm, '  '),
  );
  if (d.lifecycleOperations.length) {
    process.stdout.write('\nOperations:\n');
    process.stdout.write(
      table(
        ['NODE', 'OPERATION', 'INSTANCE', 'STATE', 'TOOK', 'REASON'],
        d.lifecycleOperations.map((o) => ({
          NODE: o.node,
          OPERATION: `${o.interface}.${o.operation}${o.relationship ? ` (${o.relationship})` : ''}`,
          INSTANCE: o.instanceId,
          STATE: word(LifecycleOperationState, o.state),
          TOOK: o.duration ? `${(o.duration.seconds + o.duration.nanos / 1e9).toFixed(1)}s` : '',
          REASON: o.stateReason.split('\n')[0] ?? '',
        })),
      ).replace(/^/gm, '  '),
    );
  }
  const outputs = Object.entries(d.outputs ?? {});
  if (outputs.length) {
    process.stdout.write('\nOutputs:\n');
    const width = Math.max(...outputs.map(([k]) => k.length)) + 1;
    for (const [k, v] of outputs) process.stdout.write(`  ${`${k}:`.padEnd(width)} ${value(v)}\n`);
  }
}

const TERMINAL = new Set([DeploymentState.DEPLOYED, DeploymentState.FAILED, DeploymentState.DELETED]);

/** Follows a deployment until `done` says so; a spinner shows its state and nodes. */
async function follow(
  ctx: Context,
  id: string,
  done: (d: Deployment) => boolean,
  timeoutMs: number,
  since?: Date,
): Promise<Deployment | undefined> {
  const client = tosca(ctx);
  const progress = new Progress().start(`deployment ${id}`);
  let last: Deployment | undefined;
  let fresh = since === undefined;
  const stopWaiting = giveUpAfter(
    timeoutMs,
    progress,
    () => `deployment ${id} still ${last ? word(DeploymentState, last.state) : 'not started'} after ${timeoutMs / 1000}s`,
  );
  try {
    await ctx.stream(
      'tosca',
      () => client.watchDeployment(WatchDeploymentRequest.fromPartial({ deploymentId: id })),
      (message) => {
        if (!message.deployment) return;
        last = message.deployment;
        const started = last.nodes.filter((n) => n.state === NodeState.STARTED).length;
        progress.update(
          `deployment ${id}: ${word(DeploymentState, last.state)}, ${started}/${last.nodes.length} nodes started${last.stateReason ? ` (${last.stateReason})` : ''}`,
        );
        // The watch starts with the deployment as it is: a state from before the change asked
        // for (FAILED, then DELETING) is not its result until the change shows up.
        if (!fresh) fresh = !TERMINAL.has(last.state) || (since !== undefined && (last.updateTime?.getTime() ?? 0) >= since.getTime());
        return fresh && done(last);
      },
    );
  } finally {
    stopWaiting();
    progress.stop();
  }
  return last;
}

const waitUntilDone = waitOptions('wait until it is done, showing progress');

async function finish(
  ctx: Context,
  id: string,
  options: Record<string, unknown>,
  want: DeploymentState,
  since?: Date,
): Promise<number | void> {
  const result = await follow(ctx, id, (d) => TERMINAL.has(d.state), waitMs(options), since);
  if (!result) throw new CommandError(`deployment ${id}: the watch ended without news`);
  printDeployment(ctx, result);
  if (result.state !== want) {
    process.stderr.write(
      `error: deployment ${id} ${word(DeploymentState, result.state)}${result.stateReason ? `: ${result.stateReason}` : ''}\n`,
    );
    return 1;
  }
}

export function deploymentCommand(): Command {
  return {
    name: 'deployment',
    aliases: ['deployments', 'deploy', 'dep'],
    summary: 'TOSCA deployments: create, list, get, update, delete, watch',
    subcommands: [
      {
        name: 'create',
        summary: 'deploy a TOSCA template (YAML or CSAR)',
        args: [{ name: 'FILE', required: true }],
        options: [
          { long: 'inputs', short: 'i', value: 'FILE', description: 'YAML map of input values' },
          inputOption,
          { long: 'keep-on-failure', description: 'keep what was created when it fails' },
          ...waitUntilDone,
        ],
        examples: [
          'lapisctl deployment create web-app.yaml --inputs inputs.yaml --wait',
          'lapisctl deployment create web-app.yaml --input cpus=2 --input ports="[80, 443]"',
        ],
        run: async ({ args, options }, ctx) => {
          const request = CreateDeploymentRequest.fromPartial({
            template: readTemplate(args[0]!),
            inputs: readInputs(options.inputs as string | undefined),
            textInputs: readTextInputs(options.input),
            keepOnFailure: Boolean(options['keep-on-failure']),
            requestId: randomBytes(12).toString('hex'),
          });
          const client = tosca(ctx);
          const response = await ctx.call('tosca', client.createDeployment.bind(client), request);
          if (options.wait) {
            if (ctx.output === 'table') process.stderr.write(`deployment ${response.deploymentId} created\n`);
            return finish(ctx, response.deploymentId, options, DeploymentState.DEPLOYED);
          }
          if (ctx.output !== 'table')
            return printData(ctx.output, { deploymentId: response.deploymentId, operation: response.operation?.name ?? '' });
          process.stdout.write(`deployment ${response.deploymentId} created (operation ${response.operation?.name ?? '-'})\n`);
        },
      },
      {
        name: 'list',
        aliases: ['ls'],
        summary: 'list the deployments of the project',
        run: async (_parsed, ctx) => {
          const client = tosca(ctx);
          const list = await listAll('deployments', (pageToken) =>
            ctx.call(
              'tosca',
              client.listDeployments.bind(client),
              ListDeploymentsRequest.fromPartial({ pageSize: 500, pageToken, project: ctx.project() ?? '' }),
            ),
          );
          printDeployments(ctx, list);
        },
      },
      {
        name: 'get',
        aliases: ['show'],
        summary: 'show a deployment: its nodes and outputs',
        args: [{ name: 'ID', required: true }],
        run: async ({ args }, ctx) => {
          const client = tosca(ctx);
          const { deployment } = await ctx.call(
            'tosca',
            client.getDeployment.bind(client),
            GetDeploymentRequest.fromPartial({ deploymentId: args[0]! }),
          );
          if (deployment) printDeployment(ctx, deployment);
        },
      },
      {
        name: 'update',
        summary: 'change a deployment: a new template and/or inputs (merged over the current ones)',
        args: [{ name: 'ID', required: true }, { name: 'FILE' }],
        options: [{ long: 'inputs', short: 'i', value: 'FILE', description: 'YAML map of input values' }, inputOption, ...waitUntilDone],
        examples: [
          'lapisctl deployment update dep-1a2b... --inputs more-replicas.yaml --wait',
          'lapisctl deployment update dep-1a2b... --input count=3',
        ],
        run: async ({ args, options }, ctx) => {
          if (!args[1] && options.inputs === undefined && options.input === undefined)
            throw new UsageError('give a new template FILE, --inputs FILE or --input NAME=VALUE');
          const request = UpdateDeploymentRequest.fromPartial({
            deploymentId: args[0]!,
            template: args[1] ? readTemplate(args[1]) : undefined,
            inputs: readInputs(options.inputs as string | undefined),
            textInputs: readTextInputs(options.input),
            requestId: randomBytes(12).toString('hex'),
          });
          const client = tosca(ctx);
          const since = new Date();
          const response = await ctx.call('tosca', client.updateDeployment.bind(client), request);
          if (options.wait) return finish(ctx, args[0]!, options, DeploymentState.DEPLOYED, since);
          if (ctx.output !== 'table') return printData(ctx.output, { deploymentId: args[0], operation: response.operation?.name ?? '' });
          process.stdout.write(`deployment ${args[0]} updating (operation ${response.operation?.name ?? '-'})\n`);
        },
      },
      {
        name: 'delete',
        aliases: ['rm'],
        summary: 'undeploy: everything it created goes, in reverse dependency order',
        args: [{ name: 'ID', required: true }],
        options: waitUntilDone,
        run: async ({ args, options }, ctx) => {
          const client = tosca(ctx);
          const since = new Date();
          const response = await ctx.call(
            'tosca',
            client.deleteDeployment.bind(client),
            DeleteDeploymentRequest.fromPartial({ deploymentId: args[0]! }),
          );
          if (options.wait) {
            const last = await follow(
              ctx,
              args[0]!,
              (d) => d.state === DeploymentState.DELETED || d.state === DeploymentState.FAILED,
              waitMs(options),
              since,
            );
            if (last?.state === DeploymentState.FAILED) {
              process.stderr.write(
                `error: deployment ${args[0]} FAILED while deleting${last.stateReason ? `: ${last.stateReason}` : ''}\n`,
              );
              return 1;
            }
            if (ctx.output !== 'table') return printData(ctx.output, { deploymentId: args[0], state: 'DELETED' });
            process.stdout.write(`deployment ${args[0]} DELETED\n`);
            return;
          }
          if (ctx.output !== 'table') return printData(ctx.output, { deploymentId: args[0], operation: response.operation?.name ?? '' });
          process.stdout.write(`deployment ${args[0]} deleting (operation ${response.operation?.name ?? '-'})\n`);
        },
      },
      {
        name: 'watch',
        summary: 'print every change of a deployment until it is deleted (or Ctrl-C)',
        args: [{ name: 'ID', required: true }],
        options: [{ long: 'until-done', description: 'stop once it is DEPLOYED, FAILED or DELETED' }],
        run: async ({ args, options }, ctx) => {
          const client = tosca(ctx);
          let last: Deployment | undefined;
          await ctx.stream(
            'tosca',
            () => client.watchDeployment(WatchDeploymentRequest.fromPartial({ deploymentId: args[0]! })),
            (message) => {
              const d = message.deployment;
              if (!d) return;
              if (ctx.output !== 'table')
                process.stdout.write(`${JSON.stringify({ node: message.node, deployment: plain(Deployment.toJSON(d)) })}\n`);
              else {
                const nodes = d.nodes.map((n) => `${n.name}=${word(NodeState, n.state)}`).join(' ');
                const changed = message.node ? ` [${message.node}]` : '';
                process.stdout.write(
                  `${time(new Date())}  ${word(DeploymentState, d.state).padEnd(9)}${changed}  ${nodes}${d.stateReason ? `  (${d.stateReason})` : ''}\n`,
                );
              }
              const end = d.state === DeploymentState.DELETED || (options['until-done'] === true && TERMINAL.has(d.state));
              last = d;
              return end;
            },
          );
          if (last?.state === DeploymentState.FAILED) return 1;
        },
      },
    ],
  };
}
