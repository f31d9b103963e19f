// lapisctl partition: the scheduler's partitions with their nodes, sizes and allocation ratios
// (which ones are shared with a Slurm partition and moved by the partition director), the recent
// node moves, a move by hand and the ratios of a partition or a node (admins).
import { listAll } from '@lapis/platform/list-all';
import {
  ListNodeMovesRequest,
  type ListNodeMovesResponse,
  ListPartitionsRequest,
  MoveNodeRequest,
  NodeMove,
  Partition,
  SetAllocationRatiosRequest,
  type AllocationRatios,
  type MoveNodeResponse,
  type SetAllocationRatiosResponse,
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

/** An allocation ratio as shown: 1 is no overcommit. */
const ratio = (r: number | undefined) => `${r || 1}`;

/** The nodes with ratios of their own: "node-3=8/1.5" (CPU/memory). */
function nodeRatios(p: Partition): string | undefined {
  const own = Object.entries(p.nodeAllocationRatios);
  return own.length ? own.map(([n, r]: [string, AllocationRatios]) => `${n}=${ratio(r.cpu)}/${ratio(r.memory)}`).join(',') : undefined;
}

/** A --cpu or --memory value: a number (the scheduler checks its range); absent: 0, inherited. */
function ratioOption(value: unknown, flag: string): number {
  if (value === undefined) return 0;
  const n = Number(value);
  if (String(value).trim() === '' || !Number.isFinite(n))
    throw new UsageError(`${flag} takes a number such as 4 or 1.5, got "${String(value)}"`);
  return n;
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
        summary:
          'the partitions: nodes (down ones marked *), min/max nodes, the Slurm partition shared with, CPU and memory allocation ratios',
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
            CPU_RATIO: ratio(p.allocationRatios?.cpu),
            MEM_RATIO: ratio(p.allocationRatios?.memory),
            NODE_RATIOS: nodeRatios(p),
            // Down nodes (no heartbeat) marked as sinfo marks a node that does not respond.
            NODELIST: p.nodes.map((n) => (p.downNodes.includes(n) ? `${n}*` : n)).join(','),
          }));
          process.stdout.write(
            table(
              [
                'PARTITION',
                'NODES',
                'DOWN',
                'MIN',
                'MAX',
                'SLURM',
                'SPOT',
                'TIER',
                'LIMIT',
                'CPU_RATIO',
                'MEM_RATIO',
                'NODE_RATIOS',
                'NODELIST',
              ],
              rows,
            ),
          );
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
      {
        name: 'set-ratios',
        summary: "overcommit: a partition's, or a node's, CPU and memory allocation ratios (admins)",
        description:
          "Placement hands out a node's CPU and memory times these ratios (1 to 64; 1: no overcommit), as instances seldom use all they ask for; quotas and fair share keep charging what claims ask for, and one instance never gets more than the node has. A ratio left out is inherited: a node follows its partition, a partition the scheduler's configuration (else 1).",
        args: [{ name: 'PARTITION' }],
        options: [
          {
            long: 'node',
            value: 'NODE',
            description: "set the ratios of this node instead of a partition (they win over its partition's)",
          },
          { long: 'cpu', value: 'RATIO', description: 'CPU allocation ratio' },
          { long: 'memory', value: 'RATIO', description: 'memory allocation ratio' },
        ],
        examples: [
          'lapisctl partition set-ratios default --cpu 4',
          'lapisctl partition set-ratios --node node-3 --cpu 8 --memory 1.5',
          'lapisctl partition set-ratios default   # back to the configured ratios',
        ],
        run: async ({ args, options }, ctx) => {
          const node = (options.node as string | undefined) ?? '';
          if (!args[0] === !node) throw new UsageError('name a PARTITION, or a node with --node (not both)');
          const request = SetAllocationRatiosRequest.fromPartial({
            partition: args[0] ?? '',
            node,
            ratios: { cpu: ratioOption(options.cpu, '--cpu'), memory: ratioOption(options.memory, '--memory') },
          });
          const client = scheduler(ctx);
          const r: SetAllocationRatiosResponse = await ctx.call('scheduler', client.setAllocationRatios.bind(client), request);
          const p = r.partition;
          const own = node && p?.nodeAllocationRatios[node];
          const shown = own || p?.allocationRatios;
          process.stdout.write(
            `${node ? `node ${node}` : `partition ${p?.name ?? args[0]}`}: CPU ratio ${ratio(shown?.cpu)}, memory ratio ${ratio(shown?.memory)}\n`,
          );
        },
      },
    ],
  };
}
