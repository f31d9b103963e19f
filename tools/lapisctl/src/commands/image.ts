// lapisctl image: the trusted catalogue (list), syncing it now, and the last syncs' status.
import { randomBytes } from 'node:crypto';
import { listAll } from '@lapis/platform/list-all';
import { WatchOperationRequest, type Operation } from '@lapis/proto/lapis/common/v1/common';
import { OperationsServiceClient } from '@lapis/proto/lapis/common/v1/operations_service';
import {
  GetSyncStatusRequest,
  GetSyncStatusResponse,
  Image,
  ListImagesRequest,
  SyncNowRequest,
  SyncProgress,
  SyncResult,
  type RepositorySyncStatus,
} from '@lapis/proto/lapis/images/v1/images';
import { ImageSyncServiceClient } from '@lapis/proto/lapis/images/v1/image_sync_service';
import type { Command } from '../cli';
import { CommandError, type Context } from '../context';
import { age, bytes, plain, printData, table, word } from '../output';
import { giveUpAfter, Progress, waitMs, waitOptions } from '../progress';

const images = (ctx: Context) => ctx.client('images', ImageSyncServiceClient);

function printStatus(ctx: Context, repositories: RepositorySyncStatus[]): void {
  if (ctx.output !== 'table') return printData(ctx.output, plain(GetSyncStatusResponse.toJSON({ repositories })));
  const rows = repositories.map((r) => ({
    POLICY: r.policy,
    REPOSITORY: r.repository,
    RESULT: word(SyncResult, r.result),
    PROMOTED: r.tagsPromoted,
    UNCHANGED: r.tagsUnchanged,
    REMOVED: r.tagsRemoved,
    COPIED: bytes(r.bytesCopied),
    ERRORS: r.errors.map((e) => `${e.tag}: ${e.reason}`).join('; '),
    FINISHED: r.endTime ? `${age(r.endTime)} ago` : r.startTime ? 'running' : '-',
  }));
  process.stdout.write(table(['POLICY', 'REPOSITORY', 'RESULT', 'PROMOTED', 'UNCHANGED', 'REMOVED', 'COPIED', 'ERRORS', 'FINISHED'], rows));
}

function progressOf(operation: Operation): RepositorySyncStatus[] {
  const meta = operation.metadata;
  if (!meta?.typeUrl.endsWith('lapis.images.v1.SyncProgress')) return [];
  try {
    return SyncProgress.decode(meta.value).repositories;
  } catch {
    return [];
  }
}

export function imageCommand(): Command {
  return {
    name: 'image',
    aliases: ['images'],
    summary: 'the trusted image catalogue: list, sync, status',
    subcommands: [
      {
        name: 'list',
        aliases: ['ls'],
        summary: 'list the trusted images',
        options: [
          { long: 'prefix', value: 'REPOSITORY', description: 'only repositories starting with this' },
          { long: 'policy', value: 'NAME', description: 'only images synced by this policy' },
        ],
        run: async ({ options }, ctx) => {
          const client = images(ctx);
          const list = await listAll('images', (pageToken) =>
            ctx.call(
              'images',
              client.listImages.bind(client),
              ListImagesRequest.fromPartial({
                pageSize: 500,
                pageToken,
                repositoryPrefix: (options.prefix as string) ?? '',
                policy: (options.policy as string) ?? '',
              }),
            ),
          );
          if (ctx.output !== 'table')
            return printData(
              ctx.output,
              list.map((i) => plain(Image.toJSON(i))),
            );
          const rows = list.map((i) => ({
            REPOSITORY: i.repository,
            TAG: i.tag,
            DIGEST: i.digest.slice(0, 19),
            SIZE: bytes(i.sizeBytes),
            PLATFORMS: i.platforms.map((p) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`).join(','),
            SIGNED: i.signature?.verified ? i.signature.keyId || 'yes' : undefined,
            POLICY: i.policy,
            SYNCED: i.syncTime ? `${age(i.syncTime)} ago` : undefined,
          }));
          process.stdout.write(table(['REPOSITORY', 'TAG', 'DIGEST', 'SIZE', 'PLATFORMS', 'SIGNED', 'POLICY', 'SYNCED'], rows));
        },
      },
      {
        name: 'sync',
        summary: 'sync now (one policy, or every policy)',
        args: [{ name: 'POLICY' }],
        options: [
          { long: 'repository', value: 'REPO', description: 'only this upstream repository (repeatable)', repeat: true },
          ...waitOptions('wait until the sync is done and print its result'),
        ],
        examples: ['lapisctl image sync --wait', 'lapisctl image sync upstream --repository lapis/busybox'],
        run: async ({ args, options }, ctx) => {
          const timeoutMs = options.wait ? waitMs(options) : 0;
          const client = images(ctx);
          const request = SyncNowRequest.fromPartial({
            policy: args[0] ?? '',
            repositories: (options.repository as string[] | undefined) ?? [],
            requestId: randomBytes(12).toString('hex'),
          });
          const { operation } = await ctx.call('images', client.syncNow.bind(client), request);
          if (!operation) return;
          if (!options.wait) {
            if (ctx.output !== 'table') return printData(ctx.output, { operation: operation.name, done: operation.done });
            process.stdout.write(`sync started: ${operation.name}\n`);
            return;
          }
          const operations = ctx.client('images', OperationsServiceClient);
          const progress = new Progress().start(`syncing (${operation.name})`);
          let last = operation;
          const stopWaiting = giveUpAfter(timeoutMs, progress, () => `sync ${operation.name} still running after ${timeoutMs / 1000}s`);
          try {
            await ctx.stream(
              'images',
              () => operations.watchOperation(WatchOperationRequest.fromPartial({ name: operation.name })),
              (message) => {
                if (!message.operation) return;
                last = message.operation;
                const repos = progressOf(last);
                const running = repos.filter((r) => r.result === SyncResult.RUNNING).map((r) => r.repository);
                progress.update(
                  `syncing ${running.length ? running.join(', ') : ''} (${repos.filter((r) => r.result !== SyncResult.RUNNING).length}/${repos.length} done)`,
                );
                return last.done;
              },
            );
          } finally {
            stopWaiting();
            progress.stop();
          }
          const repos = progressOf(last);
          printStatus(ctx, repos);
          if (last.result?.$case === 'error') throw new CommandError(`sync failed: ${last.result.error.message}`);
          const failed = repos.filter((r) => r.result === SyncResult.FAILED || r.result === SyncResult.PARTIAL);
          if (failed.length) {
            process.stderr.write(`error: ${failed.map((r) => `${r.repository} ${word(SyncResult, r.result)}`).join(', ')}\n`);
            return 1;
          }
        },
      },
      {
        name: 'status',
        summary: 'the latest sync of every repository',
        args: [{ name: 'POLICY' }],
        run: async ({ args }, ctx) => {
          const client = images(ctx);
          const { repositories } = await ctx.call(
            'images',
            client.getSyncStatus.bind(client),
            GetSyncStatusRequest.fromPartial({ policy: args[0] ?? '' }),
          );
          printStatus(ctx, repositories);
        },
      },
    ],
  };
}
