// lapisctl partition: the scheduler's partitions with their nodes and sizes (which ones are
// shared with a Slurm partition and moved by the partition director), the recent node moves,
// and a move by hand (admins).
import { listAll } from '@lapis/platform/list-all';
import {
  ListNodeMovesRequest,
  type ListNodeMovesResponse,
  ListPartitionsRequest,
  MoveNodeRequest,
  NodeMove,
  Partition,
  type MoveNodeResponse,
} from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { SchedulerServiceClient } from '@lapis/proto/lapis/scheduler/v1/scheduler_service';
import { UsageError, type Command } from '../cli';
import type { Context } from '../context';
import { age, bytes, cpus, plain, printData, table, time } from '../output';

const scheduler = (ctx: Context) => ctx.client('scheduler', SchedulerServiceClient);

async function listPartitions(ctx: Context): Promise<Partition[]> {
  const client = scheduler(ctx);
  return listAll('partitions', (pageToken) =>
    ctx.call('scheduler', client.listPartitions.bind(client), ListPartitionsRequest.fromPartial({ pageSize: 500, pageToken })),
  );
}

const size = (n: number) => (n > 0 ? String(n) : '-');

function limits(p: Partition): string | undefined {
  const r = p.maxResources;
  const parts = [
    r?.cpuMillis ? `${cpus(r.cpuMillis)} CPU` : '',
    r?.memoryBytes ? bytes(r.memoryBytes) : '',
    r?.gpus ? `${r.gpus} GPU` : '',
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : undefined;
}

export function partitionCommand(): Command {
  return {
    name: 'partition',
    aliases: ['partitions'],
    summary: 'partitions and their nodes, node moves (the partition director), moving a node',
    subcommands: [
      {
        name: 'list',
        aliases: ['ls'],
        summary: 'the partitions: nodes (down ones marked *), min/max nodes, the Slurm partition shared with',
        examples: ['lapisctl partition list', 'lapisctl partition list -o yaml'],
        run: async (_parsed, ctx) => {
          const partitions = await listPartitions(ctx);
          if (ctx.output !== 'table')
            return printData(
              ctx.output,
              partitions.map((p) => plain(Partition.toJSON(p))),
            );
          const rows = partitions.map((p) => ({
            PARTITION: p.name,
            NODES: p.nodes.length,
            DOWN: p.downNodes.length,
            MIN: size(p.minNodes),
            MAX: size(p.maxNodes),
            SLURM: p.batchPartition || undefined,
            SPOT: p.allowPreemptible ? 'yes' : 'no',
            TIER: p.priorityTier,
            LIMIT: limits(p),
            // Down nodes (no heartbeat) marked as sinfo marks a node that does not respond.
            NODELIST: p.nodes.map((n) => (p.downNodes.includes(n) ? `${n}*` : n)).join(','),
          }));
          process.stdout.write(table(['PARTITION', 'NODES', 'DOWN', 'MIN', 'MAX', 'SLURM', 'SPOT', 'TIER', 'LIMIT', 'NODELIST'], rows));
        },
      },
      {
        name: 'moves',
        summary: 'recent node moves between partitions, newest first (admins)',
        description:
          'Every MoveNode the scheduler recorded (the last 200): the partition director moving nodes between Slurm and Lapis, or an admin. Each is also a NodeMoved event.',
        options: [
          { long: 'node', value: 'NODE', description: "only this node's moves" },
          { long: 'limit', value: 'N', description: 'at most N moves', defaultText: '50' },
        ],
        examples: ['lapisctl partition moves', 'lapisctl partition moves --node node-7 -o json'],
        run: async ({ options }, ctx) => {
          const limit = options.limit === undefined ? 50 : Number(options.limit);
          if (!Number.isInteger(limit) || limit < 1)
            throw new UsageError(`--limit takes a positive whole number, got "${String(options.limit)}"`);
          const client = scheduler(ctx);
          const moves: NodeMove[] = [];
          let pageToken = '';
          do {
            const request = ListNodeMovesRequest.fromPartial({
              pageSize: Math.min(limit - moves.length, 200),
              pageToken,
              node: (options.node as string) ?? '',
            });
            const page: ListNodeMovesResponse = await ctx.call('scheduler', client.listNodeMoves.bind(client), request);
            moves.push(...page.moves);
            pageToken = page.nextPageToken;
          } while (pageToken && moves.length < limit);
          if (ctx.output !== 'table')
            return printData(
              ctx.output,
              moves.map((m) => plain(NodeMove.toJSON(m))),
            );
          const rows = moves.map((m) => ({
            TIME: time(m.time),
            AGE: age(m.time),
            NODE: m.node,
            FROM: m.fromPartition,
            TO: m.toPartition,
            BY: m.user,
            REASON: m.reason,
          }));
          process.stdout.write(table(['TIME', 'AGE', 'NODE', 'FROM', 'TO', 'BY', 'REASON'], rows));
        },
      },
      {
        name: 'move',
        summary: 'move a node to another partition (admins; the partition director does this by itself)',
        args: [{ name: 'NODE', required: true }],
        options: [
          { long: 'to', value: 'PARTITION', description: 'the partition to move it to (required)' },
          { long: 'drain', description: 'move it even though instances run on it (they stay until they end)' },
          { long: 'reason', value: 'TEXT', description: 'why, recorded with the move' },
        ],
        examples: ['lapisctl partition move node-7 --to cloud --reason "more cloud room"'],
        run: async ({ args, options }, ctx) => {
          if (!options.to) throw new UsageError('--to PARTITION is required');
          const client = scheduler(ctx);
          const request = MoveNodeRequest.fromPartial({
            node: args[0],
            toPartition: options.to as string,
            drain: Boolean(options.drain),
            reason: (options.reason as string) ?? '',
          });
          const r: MoveNodeResponse = await ctx.call('scheduler', client.moveNode.bind(client), request);
          process.stdout.write(`node ${r.node} moved from ${r.fromPartition || '-'} to ${r.toPartition}\n`);
        },
      },
    ],
  };
}
