// Reconcile at scale (issue 20; BENCH.md "ha", reconcile_1000_s, goal <= 5): a node agent
// restarted with N containers on its node (BENCH_RECONCILE_INSTANCES, default 1000, times
// BENCH_SCALE) adopts them all. Two restarts are timed, from the new agent's start to its being
// ready (engine listing, records, host state): one whose records are all there, and one whose
// store lost every record (each adopted from its container's labels). After each, every
// record is checked: RUNNING, on this node, with its container's id. The agent runs as the
// tests run it (in this process, real NATS and Docker); each instance is a busybox container
// (about 8 MiB of memory each on the host). Prints a Markdown table; writes
// bench/results/reconcile.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { startNats, TEST_NATS_URL_ENV } from '@lapis/testenv';
import { InstanceState } from '@lapis/proto/lapis/common/v1/common';
import { baseSpec, dockerClient, rpc, startRuntime, type Runtime } from '../test/harness';

const scale = Number(process.env.BENCH_SCALE ?? 1);
const count = Math.max(1, Math.round(Number(process.env.BENCH_RECONCILE_INSTANCES ?? 1000) * scale));
const CONCURRENCY = 10;
const ROOT = resolve(__dirname, '../../../..');

/** Restarts the agent (the old one stopped as a crash leaves it: containers running) and times it until ready. */
async function restart(rt: Runtime, loseRecords: boolean): Promise<{ rt: Runtime; ms: number }> {
  const { node, stateDir } = rt;
  await rt.stop();
  if (loseRecords) {
    const probe = await startRuntime({ node, stateDir, consume: false });
    for (const key of await probe.agent.store.instances.keys()) await probe.agent.store.instances.delete(key);
    await probe.stop();
  }
  const t = performance.now();
  const next = await startRuntime({ node, stateDir, consume: false });
  return { rt: next, ms: performance.now() - t };
}

/** Every container of the node has a RUNNING record with its id; answers what is wrong. */
async function check(rt: Runtime, expected: number): Promise<string[]> {
  const containers = await dockerClient().listContainers({ filters: { label: [`lapis.node=${rt.node}`] } });
  const problems: string[] = [];
  if (containers.length !== expected) problems.push(`${containers.length} containers, ${expected} expected`);
  for (const c of containers) {
    const id = c.Labels['lapis.instance-id'] ?? '';
    const record = (await rt.agent.store.instances.get(id))?.value;
    if (record?.state !== InstanceState.RUNNING || record.node !== rt.node || record.backendId !== c.Id)
      problems.push(
        `${id}: ${record ? `${InstanceState[record.state]} on ${record.node}, ${record.backendId.slice(0, 12)}` : 'no record'}`,
      );
  }
  return problems;
}

async function main(): Promise<void> {
  const nats = await startNats();
  process.env[TEST_NATS_URL_ENV] = nats.url;
  let rt = await startRuntime({ consume: false });
  const rows: string[] = [];
  const figures: Record<string, unknown> = { instances: count };
  try {
    const client = rt.client('root', 'physics');
    process.stderr.write(`reconcile bench: making ${count} instances on node ${rt.node}\n`);
    const made = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < count) {
          const i = next++;
          await rpc(client, client.createInstance, { instanceId: '', spec: baseSpec(`r-${i}`), preemptible: false, requestId: '' });
        }
      }),
    );
    figures.create_per_s = Number((count / ((performance.now() - made) / 1000)).toFixed(1));
    for (const [key, loseRecords, what] of [
      ['reconcile_1000_s', false, 'restart, records kept'],
      ['reconcile_1000_lost_records_s', true, 'restart, every record lost (adopted from labels)'],
    ] as const) {
      const restarted = await restart(rt, loseRecords);
      rt = restarted.rt;
      const problems = await check(rt, count);
      if (problems.length) throw new Error(`after the ${what}: ${problems.slice(0, 10).join('; ')}`);
      figures[key] = Number((restarted.ms / 1000).toFixed(2));
      rows.push(`| ${what} | ${count} | ${(restarted.ms / 1000).toFixed(2)} | all RUNNING with their containers |`);
    }
  } finally {
    process.stderr.write('reconcile bench: removing the instances\n');
    // After a failed restart `rt` is stopped: an agent started anew on the node removes them.
    await rt.stop({ purge: true }).catch(async () => {
      const again = await startRuntime({ node: rt.node, stateDir: rt.stateDir, consume: false });
      await again.stop({ purge: true });
    });
    await nats.stop();
  }
  figures.machine = { nproc: cpus().length, memory_bytes: totalmem() };
  figures.at = new Date().toISOString();
  process.stdout.write(
    `\nReconcile at start (goal: reconcile_1000_s <= 5; created at ${figures.create_per_s}/s)\n\n| case | containers | s to ready | records |\n|---|---|---|---|\n${rows.join('\n')}\n`,
  );
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/reconcile.json'), `${JSON.stringify(figures, null, 2)}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
