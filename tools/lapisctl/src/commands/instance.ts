// lapisctl instance: the runtime's instances (list, get, start, stop, reboot, delete, logs).
import { listAll } from '@lapis/platform/list-all';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import {
  DeleteInstanceRequest,
  GetInstanceRequest,
  Instance,
  ListInstancesRequest,
  LogStream,
  RebootInstanceRequest,
  StartInstanceRequest,
  StopInstanceRequest,
  StreamInstanceLogsRequest,
} from '@lapis/proto/lapis/runtime/v1/runtime';
import { RuntimeServiceClient } from '@lapis/proto/lapis/runtime/v1/runtime_service';
import { UsageError, type Command, type OptionDef } from '../cli';
import type { Context } from '../context';
import { age, bytes, cpus, details, plain, printData, table, time, word } from '../output';

const runtime = (ctx: Context) => ctx.client('runtime', RuntimeServiceClient);

export function printInstances(ctx: Context, instances: Instance[]): void {
  if (ctx.output !== 'table')
    return printData(
      ctx.output,
      instances.map((i) => plain(Instance.toJSON(i))),
    );
  const rows = instances.map((i) => ({
    ID: i.id,
    NAME: i.spec?.name,
    PROJECT: i.project,
    STATE: word(InstanceState, i.state),
    IMAGE: i.spec?.image,
    FLAVOR: i.spec?.flavor,
    NODE: i.node,
    ADDRESS: i.addresses.map((a) => a.ip).join(','),
    AGE: age(i.createTime),
  }));
  process.stdout.write(table(['ID', 'NAME', 'PROJECT', 'STATE', 'IMAGE', 'FLAVOR', 'NODE', 'ADDRESS', 'AGE'], rows));
}

export function printInstance(ctx: Context, i: Instance): void {
  if (ctx.output !== 'table') return printData(ctx.output, plain(Instance.toJSON(i)));
  const spec = i.spec;
  process.stdout.write(
    details([
      ['ID', i.id],
      ['Name', spec?.name],
      ['Project', i.project],
      ['User', i.user],
      ['State', word(InstanceState, i.state) + (i.stateReason ? ` (${i.stateReason})` : '')],
      ['Image', spec?.image],
      ['Image digest', i.imageDigest],
      ['Flavor', spec?.flavor],
      ['CPUs', cpus(spec?.resources?.cpuMillis ?? 0)],
      ['Memory', spec?.resources?.memoryBytes ? bytes(spec.resources.memoryBytes) : '-'],
      ['Command', spec?.command.length ? spec.command.join(' ') : '-'],
      ['Node', i.node],
      ['Addresses', i.addresses.map((a) => `${a.ip}${a.network ? ` (${a.network})` : ''}`).join(', ')],
      ['Volumes', i.volumeAttachments.map((v) => `${v.volumeId} at ${v.mountPath}${v.readOnly ? ' (ro)' : ''}`).join(', ')],
      ['Preemptible', i.preemptible ? 'yes' : 'no'],
      ['Created', time(i.createTime)],
      ['Started', time(i.startTime)],
      ['Exit code', i.state === InstanceState.STOPPED || i.state === InstanceState.ERROR ? i.exitCode : undefined],
    ]),
  );
}

const timeoutOption: OptionDef = {
  long: 'grace',
  value: 'SECONDS',
  description: 'time to stop after SIGTERM before SIGKILL',
  defaultText: '10',
};

function grace(value: unknown) {
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds < 0) throw new UsageError(`--grace must be a number of seconds (got "${String(value)}")`);
  return { seconds: Math.floor(seconds), nanos: Math.round((seconds % 1) * 1e9) };
}

export function instanceCommand(): Command {
  const action = (name: 'start' | 'stop' | 'reboot' | 'delete', summary: string): Command => ({
    name,
    summary,
    args: [{ name: 'ID', required: true }],
    options: name === 'start' ? [] : [timeoutOption],
    run: async ({ args, options }, ctx) => {
      const client = runtime(ctx);
      const instanceId = args[0]!;
      const timeout = grace(options.grace);
      let instance: Instance | undefined;
      if (name === 'start')
        instance = (await ctx.call('runtime', client.startInstance.bind(client), StartInstanceRequest.fromPartial({ instanceId })))
          .instance;
      if (name === 'stop')
        instance = (await ctx.call('runtime', client.stopInstance.bind(client), StopInstanceRequest.fromPartial({ instanceId, timeout })))
          .instance;
      if (name === 'reboot')
        instance = (
          await ctx.call('runtime', client.rebootInstance.bind(client), RebootInstanceRequest.fromPartial({ instanceId, timeout }))
        ).instance;
      if (name === 'delete')
        instance = (
          await ctx.call('runtime', client.deleteInstance.bind(client), DeleteInstanceRequest.fromPartial({ instanceId, timeout }))
        ).instance;
      if (!instance) return;
      if (ctx.output !== 'table') return printData(ctx.output, plain(Instance.toJSON(instance)));
      process.stdout.write(`instance ${instance.id} ${word(InstanceState, instance.state)}\n`);
    },
  });

  return {
    name: 'instance',
    aliases: ['instances', 'inst'],
    summary: 'instances: list, get, start, stop, reboot, delete, logs',
    description:
      'Instances are the containers the runtime runs for claims (an instance id is its claim id): to start one, `lapisctl claim submit`.',
    subcommands: [
      {
        name: 'list',
        aliases: ['ls'],
        summary: 'list the instances of the project',
        options: [
          { long: 'state', value: 'STATE', description: 'only instances in this state (RUNNING, STOPPED, ...)' },
          { long: 'node', value: 'NODE', description: 'only instances on this node' },
          { long: 'all-projects', short: 'A', description: 'every project (admins)' },
        ],
        examples: ['lapisctl instance list', 'lapisctl instance list --state RUNNING -o json'],
        run: async ({ options }, ctx) => {
          let state = InstanceState.UNSPECIFIED;
          if (options.state) {
            const value = (InstanceState as unknown as Record<string, number>)[String(options.state).toUpperCase()];
            if (value === undefined || value < 1)
              throw new UsageError(
                `unknown state "${String(options.state)}"; one of PENDING, SCHEDULED, CREATING, RUNNING, STOPPED, DELETED, ERROR, PREEMPTED`,
              );
            state = value;
          }
          const client = runtime(ctx);
          const instances = await listAll('instances', (pageToken) =>
            ctx.call(
              'runtime',
              client.listInstances.bind(client),
              ListInstancesRequest.fromPartial({
                pageSize: 500,
                pageToken,
                state,
                node: (options.node as string) ?? '',
                project: options['all-projects'] ? '' : (ctx.project() ?? ''),
              }),
            ),
          );
          printInstances(ctx, instances);
        },
      },
      {
        name: 'get',
        aliases: ['show'],
        summary: 'show one instance',
        args: [{ name: 'ID', required: true }],
        run: async ({ args }, ctx) => {
          const client = runtime(ctx);
          const { instance } = await ctx.call(
            'runtime',
            client.getInstance.bind(client),
            GetInstanceRequest.fromPartial({ instanceId: args[0]! }),
          );
          if (instance) printInstance(ctx, instance);
        },
      },
      action('start', 'start a stopped instance'),
      action('stop', 'stop an instance (SIGTERM, then SIGKILL after --grace)'),
      action('reboot', 'restart an instance'),
      action('delete', 'delete an instance and its container'),
      {
        name: 'logs',
        summary: "print an instance's output",
        args: [{ name: 'ID', required: true }],
        options: [
          { long: 'follow', short: 'f', description: 'keep printing new lines until Ctrl-C or the instance ends' },
          { long: 'tail', value: 'N', description: 'only the last N lines' },
        ],
        examples: ['lapisctl instance logs 3f2a... -f', 'lapisctl instance logs 3f2a... --tail 20'],
        run: async ({ args, options }, ctx) => {
          const tailLines = options.tail === undefined ? 0 : Number(options.tail);
          if (!Number.isInteger(tailLines) || tailLines < 0)
            throw new UsageError(`--tail must be a whole number (got "${String(options.tail)}")`);
          const client = runtime(ctx);
          const request = StreamInstanceLogsRequest.fromPartial({ instanceId: args[0]!, follow: Boolean(options.follow), tailLines });
          await ctx.stream(
            'runtime',
            () => client.streamInstanceLogs(request),
            (chunk) => {
              if (ctx.output !== 'table') {
                process.stdout.write(
                  `${JSON.stringify({
                    stream: word(LogStream, chunk.stream),
                    time: chunk.time?.toISOString(),
                    data: Buffer.from(chunk.data).toString('utf8'),
                  })}\n`,
                );
              } else (chunk.stream === LogStream.STDERR ? process.stderr : process.stdout).write(chunk.data);
            },
          );
        },
      },
    ],
  };
}
