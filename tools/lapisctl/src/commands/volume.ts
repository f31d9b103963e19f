// lapisctl volume: block volumes (create, list, get, attach, detach, delete).
import { listAll } from '@lapis/platform/list-all';
import {
  AttachVolumeRequest,
  CreateVolumeRequest,
  DeleteVolumeRequest,
  DetachVolumeRequest,
  GetVolumeRequest,
  ListVolumesRequest,
  Volume,
  VolumeState,
} from '@lapis/proto/lapis/runtime/v1/runtime';
import { RuntimeServiceClient } from '@lapis/proto/lapis/runtime/v1/runtime_service';
import { UsageError, type Command } from '../cli';
import type { Context } from '../context';
import { age, bytes, details, parseSize, plain, printData, table, time, word } from '../output';

const runtime = (ctx: Context) => ctx.client('runtime', RuntimeServiceClient);

function printVolumes(ctx: Context, volumes: Volume[]): void {
  if (ctx.output !== 'table')
    return printData(
      ctx.output,
      volumes.map((v) => plain(Volume.toJSON(v))),
    );
  const rows = volumes.map((v) => ({
    ID: v.id,
    NAME: v.name,
    SIZE: bytes(v.sizeBytes),
    STATE: word(VolumeState, v.state),
    INSTANCE: v.attachment?.instanceId,
    MOUNT: v.attachment?.mountPath,
    NODE: v.node,
    AGE: age(v.createTime),
  }));
  process.stdout.write(table(['ID', 'NAME', 'SIZE', 'STATE', 'INSTANCE', 'MOUNT', 'NODE', 'AGE'], rows));
}

function printVolume(ctx: Context, v: Volume): void {
  if (ctx.output !== 'table') return printData(ctx.output, plain(Volume.toJSON(v)));
  process.stdout.write(
    details([
      ['ID', v.id],
      ['Name', v.name],
      ['Project', v.project],
      ['Size', bytes(v.sizeBytes)],
      ['File system', v.filesystem],
      ['State', word(VolumeState, v.state) + (v.stateReason ? ` (${v.stateReason})` : '')],
      ['Node', v.node],
      ['Instance', v.attachment?.instanceId],
      ['Mount path', v.attachment ? `${v.attachment.mountPath}${v.attachment.readOnly ? ' (read-only)' : ''}` : undefined],
      ['Created', time(v.createTime)],
    ]),
  );
}

export function volumeCommand(): Command {
  return {
    name: 'volume',
    aliases: ['volumes', 'vol'],
    summary: 'volumes: create, list, get, attach, detach, delete',
    description: 'Block volumes with a file system, attached to running instances.',
    subcommands: [
      {
        name: 'create',
        summary: 'create a volume',
        args: [{ name: 'NAME', required: true }],
        options: [
          { long: 'size', value: 'SIZE', description: 'size, for example 1Gi, 512Mi, 10G' },
          { long: 'filesystem', value: 'FS', description: 'file system made on it', defaultText: 'ext4' },
          { long: 'node', value: 'NODE', description: 'node whose disk holds it (default: the node serving the call)' },
          { long: 'label', value: 'KEY=VALUE', description: 'a label (repeatable)', repeat: true },
        ],
        examples: ['lapisctl volume create data --size 1Gi'],
        run: async ({ args, options }, ctx) => {
          if (typeof options.size !== 'string') throw new UsageError('--size is required (for example --size 1Gi)');
          const sizeBytes = parseSize(options.size);
          if (!sizeBytes) throw new UsageError(`--size "${options.size}" is not a size (for example 1Gi, 512Mi, 10G)`);
          const labels: Record<string, string> = {};
          for (const pair of (options.label as string[] | undefined) ?? []) {
            const eq = pair.indexOf('=');
            if (eq < 1) throw new UsageError(`--label "${pair}" must be KEY=VALUE`);
            labels[pair.slice(0, eq)] = pair.slice(eq + 1);
          }
          const client = runtime(ctx);
          const request = CreateVolumeRequest.fromPartial({
            name: args[0]!,
            sizeBytes,
            filesystem: (options.filesystem as string) ?? '',
            node: (options.node as string) ?? '',
            labels,
          });
          const { volume } = await ctx.call('runtime', client.createVolume.bind(client), request);
          if (!volume) return;
          if (ctx.output !== 'table') return printVolume(ctx, volume);
          process.stdout.write(`volume ${volume.id} ${word(VolumeState, volume.state)} (${volume.name}, ${bytes(volume.sizeBytes)})\n`);
        },
      },
      {
        name: 'list',
        aliases: ['ls'],
        summary: 'list the volumes of the project',
        options: [{ long: 'instance', value: 'ID', description: 'only the volume attached to this instance' }],
        run: async ({ options }, ctx) => {
          const client = runtime(ctx);
          const volumes = await listAll('volumes', (pageToken) =>
            ctx.call(
              'runtime',
              client.listVolumes.bind(client),
              ListVolumesRequest.fromPartial({
                pageSize: 500,
                pageToken,
                instanceId: (options.instance as string) ?? '',
                project: ctx.project() ?? '',
              }),
            ),
          );
          printVolumes(ctx, volumes);
        },
      },
      {
        name: 'get',
        aliases: ['show'],
        summary: 'show one volume',
        args: [{ name: 'VOLUME', required: true }],
        run: async ({ args }, ctx) => {
          const client = runtime(ctx);
          const { volume } = await ctx.call('runtime', client.getVolume.bind(client), GetVolumeRequest.fromPartial({ volumeId: args[0]! }));
          if (volume) printVolume(ctx, volume);
        },
      },
      {
        name: 'attach',
        summary: 'attach a volume to a running instance',
        args: [
          { name: 'VOLUME', required: true },
          { name: 'INSTANCE', required: true },
        ],
        options: [
          { long: 'mount', value: 'PATH', description: 'path inside the instance', defaultText: '/mnt/<volume id>' },
          { long: 'read-only', description: 'attach read-only' },
        ],
        examples: ['lapisctl volume attach 7c1e... 3f2a... --mount /mnt/data'],
        run: async ({ args, options }, ctx) => {
          const client = runtime(ctx);
          const request = AttachVolumeRequest.fromPartial({
            volumeId: args[0]!,
            instanceId: args[1]!,
            mountPath: (options.mount as string) ?? '',
            readOnly: Boolean(options['read-only']),
          });
          const { volume } = await ctx.call('runtime', client.attachVolume.bind(client), request);
          if (!volume) return;
          if (ctx.output !== 'table') return printVolume(ctx, volume);
          process.stdout.write(
            `volume ${volume.id} ${word(VolumeState, volume.state)} to ${volume.attachment?.instanceId ?? args[1]} at ${volume.attachment?.mountPath ?? '-'}\n`,
          );
        },
      },
      {
        name: 'detach',
        summary: 'detach a volume from its instance',
        args: [{ name: 'VOLUME', required: true }],
        run: async ({ args }, ctx) => {
          const client = runtime(ctx);
          const { volume } = await ctx.call(
            'runtime',
            client.detachVolume.bind(client),
            DetachVolumeRequest.fromPartial({ volumeId: args[0]! }),
          );
          if (!volume) return;
          if (ctx.output !== 'table') return printVolume(ctx, volume);
          process.stdout.write(`volume ${volume.id} ${word(VolumeState, volume.state)}\n`);
        },
      },
      {
        name: 'delete',
        aliases: ['rm'],
        summary: 'delete a volume (detach it first)',
        args: [{ name: 'VOLUME', required: true }],
        run: async ({ args }, ctx) => {
          const client = runtime(ctx);
          const { volume } = await ctx.call(
            'runtime',
            client.deleteVolume.bind(client),
            DeleteVolumeRequest.fromPartial({ volumeId: args[0]! }),
          );
          if (ctx.output !== 'table') return printData(ctx.output, volume ? plain(Volume.toJSON(volume)) : {});
          process.stdout.write(`volume ${args[0]} deleted\n`);
        },
      },
    ],
  };
}
