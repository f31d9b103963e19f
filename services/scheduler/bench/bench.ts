// Scheduler benchmark (BENCH.md): N simulated nodes, M queued claims from P projects; how fast
// the leader places them with every placement durably recorded (compare-and-set write acked
// by JetStream) and published to its node (publish acked), cycle latency, memory.
// Sizes: BENCH_NODES (5000), BENCH_CLAIMS (100000), BENCH_PROJECTS (200), all times
// BENCH_SCALE (1); BENCH_BATCH (most placements per cycle, 500 as LAPIS_SCHEDULER_MAX_PLACEMENTS);
// BENCH_SUBMIT_WINDOW (submissions in flight while loading the queue, 500);
// run with --max-semi-space-size=64 as the service is (npm run bench does). BENCH_PROFILE and
// BENCH_HEAP_SNAPSHOT (below) write a CPU profile of the placements and a heap snapshot with
// every claim queued.
// BENCH_SIZE=50k (npm run bench:50k): the national-site size, 50,000 nodes and 1,000,000 queued
// claims (times BENCH_SCALE), its keys ending in _50k beside the 5,000-node figures in the same
// results file, so both stay comparable.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { EventBus, loadFlavors } from '@lapis/platform';
import { benchMetrics, testLog } from '@lapis/platform/testing';
import { Backend, InstanceSpec } from '@lapis/proto/lapis/common/v1/common';
import { ClaimState } from '@lapis/proto/lapis/scheduler/v1/scheduler';
import { startNats } from '@lapis/testenv';
import { DeliverPolicy } from 'nats';
import { openStore } from '../src/adapters/store';
import type { NodeRecord } from '../src/domain/model';
import { observeScheduler } from '../src/application/metrics';
import { Scheduler, type CycleStats } from '../src/application/scheduler';
import { defaultSettings } from '../src/config';

const scale = Number(process.env.BENCH_SCALE ?? 1);
const LARGE = process.env.BENCH_SIZE === '50k';
const N_NODES = Math.max(1, Math.round(Number(process.env.BENCH_NODES ?? (LARGE ? 50_000 : 5000)) * scale));
const N_CLAIMS = Math.max(1, Math.round(Number(process.env.BENCH_CLAIMS ?? (LARGE ? 1_000_000 : 100_000)) * scale));
const N_PROJECTS = Math.max(1, Math.round(Number(process.env.BENCH_PROJECTS ?? 200)));
const BATCH = Number(process.env.BENCH_BATCH ?? 500);
const SUBMIT_WINDOW = Number(process.env.BENCH_SUBMIT_WINDOW ?? 500);
const ROOT = resolve(__dirname, '../../../..');

/** CPU seconds (user + system) a process has used, from /proc. */
function processCpuS(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function pidOf(needle: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) return Number(entry);
    } catch {
      // gone
    }
  }
  return undefined;
}

function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

/** BENCH_PROFILE=file.cpuprofile: a CPU profile of the placement phase only (not the setup). */
async function startProfile(): Promise<{ stop(file: string): Promise<void> }> {
  const { Session } = await import('node:inspector');
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<any>((resolveCall, reject) =>
      session.post(method, params ?? {}, (error, result) => (error ? reject(error) : resolveCall(result))),
    );
  await post('Profiler.enable');
  await post('Profiler.start');
  return {
    async stop(file) {
      const { profile } = await post('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

/**
 * Claims the bucket holds as placed: the latest value of every key, read by an ordered pull
 * consumer a batch at a time (a get per key takes minutes at a million claims, and a watch
 * floods the connection until its requests time out).
 */
async function countPlaced(bus: EventBus, bucket: string): Promise<number> {
  const decoder = new TextDecoder();
  const consumer = await bus.js.consumers.get(`KV_${bucket}`, { deliver_policy: DeliverPolicy.LastPerSubject });
  let placed = 0;
  for (;;) {
    const batch = await consumer.fetch({ max_messages: 5000, expires: 5000 });
    let last = -1;
    for await (const m of batch) {
      if (m.data.length > 0 && JSON.parse(decoder.decode(m.data)).state === ClaimState.PLACED) placed++;
      last = m.info.pending;
    }
    if (last <= 0) return placed;
  }
}

/** Names the step a failure came from (a bare NATS TIMEOUT says nothing of where). */
async function step<T>(what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw new Error(`${what}: ${(error as Error).message}`, { cause: error });
  }
}

/** Heap in use and RSS after a full collection (needs --expose-gc, as npm run bench gives). */
function settledMemory(): { heap: number; rss: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.external, rss: m.rss };
}

/**
 * Merges the figures into bench/results/scheduler.json: the 50k size's keys end in _50k, so
 * a run of one size keeps the other's figures.
 */
function writeResults(figures: Record<string, number>): void {
  const file = join(ROOT, 'bench/results/scheduler.json');
  let kept: Record<string, unknown> = {};
  try {
    kept = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    // first run
  }
  const named = Object.entries(figures).map(([key, value]) => [LARGE && key !== 'machine' ? `${key}_50k` : key, value]);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(file, JSON.stringify({ ...kept, ...Object.fromEntries(named) }, null, 2));
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

async function main() {
  // BENCH_METRICS=on|off: the same run with metrics exported or not (services/platform/bench/metrics-cost.ts).
  const metrics = await benchMetrics();
  const nats = await startNats();
  const bus = await EventBus.connect({ url: nats.url, name: 'scheduler-bench', stream: 'LAPIS', log: testLog });
  try {
    const prefix = 'bench';
    const store = await openStore(bus, prefix);
    const now = Date.now();
    const puts: Array<Promise<unknown>> = [];
    for (let i = 0; i < N_NODES; i++) {
      const node: NodeRecord = {
        name: `node-${i}`,
        backend: Backend.DOCKER,
        partition: '',
        ready: true,
        capacity: { cpu: 32_000, mem: 64 * 2 ** 30, gpus: 0 },
        reported: { cpu: 0, mem: 0, gpus: 0 },
        freeDevices: {},
        totalDevices: {},
        images: i % 7 === 0 ? ['lapis/base:1'] : [],
        lastSeen: now,
      };
      puts.push(store.nodes.put(node.name, node));
      if (puts.length >= 1000) await step('loading the nodes', () => Promise.all(puts.splice(0)));
    }
    await Promise.all(puts.splice(0));
    const settings = defaultSettings();
    settings.accounts = Array.from({ length: N_PROJECTS }, (_, i) => ({
      name: `project-${i}`,
      parent: '',
      shares: 1 + (i % 10),
      userShares: {},
    }));
    const flavors = loadFlavors(join(ROOT, 'config/flavors.yaml'));
    const scheduler = new Scheduler({
      bus,
      log: testLog,
      settings,
      flavors,
      bucketPrefix: prefix,
      consumerPrefix: prefix,
      instanceId: 'bench',
      cycleMs: 60_000,
      leaseMs: 30_000,
      heartbeatMs: 3_600_000,
      maxPlacements: BATCH,
      ...(process.env.BENCH_IN_FLIGHT ? { maxInFlight: Number(process.env.BENCH_IN_FLIGHT) } : {}),
    });
    await scheduler.start({ lead: false });
    if (metrics?.on) observeScheduler(scheduler);
    const sizes = ['m1.tiny', 'm1.small', 'm1.medium'].map((name) => flavors.find((f) => f.name === name)!);
    const empty = settledMemory();
    let t = performance.now();
    const submitOne = async (i: number) => {
      const f = sizes[i % sizes.length]!;
      // As a client does: a submission not answered in time (NATS starved on the shared
      // machine) is sent again with the same request id, which gives the same claim.
      for (let attempt = 1; ; attempt++) {
        try {
          return await submitAs(i, f, `bench-${i}`);
        } catch (error) {
          if (attempt >= 5) throw error;
        }
      }
    };
    const submitAs = (i: number, f: (typeof sizes)[number], requestId: string) => {
      return scheduler.submit({
        project: `project-${i % N_PROJECTS}`,
        user: `user-${i % 3}`,
        spec: InstanceSpec.fromPartial({ name: `vm-${i}`, flavor: f.name, resources: f.resources, image: 'lapis/base:1' }),
        res: { cpu: Number(f.resources!.cpuMillis), mem: Number(f.resources!.memoryBytes), gpus: 0 },
        devices: [],
        preemptible: i % 10 === 0,
        requeue: true,
        partition: '',
        backend: Backend.UNSPECIFIED,
        group: '',
        qos: '',
        requestId,
      });
    };
    // A window of submissions in flight, each answer sending the next (a million claims load
    // in minutes; waiting for a whole batch before the next left the pipe half empty).
    let next = 0;
    const lane = async () => {
      while (next < N_CLAIMS) await submitOne(next++);
    };
    await step('submitting the claims', () => Promise.all(Array.from({ length: Math.min(SUBMIT_WINDOW, N_CLAIMS) }, lane)));
    const submitS = (performance.now() - t) / 1000;
    // What the queued claims cost the scheduler's memory: the live heap after a full
    // collection, over the same before any claim (RSS also holds free heap and buffers).
    const queued = settledMemory();
    const bytesPerClaim = Math.round((queued.heap - empty.heap) / N_CLAIMS);
    const rssBytesPerClaim = Math.round((queued.rss - empty.rss) / N_CLAIMS);
    // BENCH_HEAP_SNAPSHOT=file.heapsnapshot: the heap with every claim queued (what a claim costs).
    if (process.env.BENCH_HEAP_SNAPSHOT) (await import('node:v8')).writeHeapSnapshot(process.env.BENCH_HEAP_SNAPSHOT);
    if (process.env.BENCH_VERBOSE)
      process.stderr.write(`submitted ${N_CLAIMS} in ${submitS.toFixed(1)} s; ${bytesPerClaim} heap bytes per queued claim\n`);

    const cycles: CycleStats[] = [];
    const doneMs: number[] = [];
    scheduler.onPlacementDone = (ms) => doneMs.push(ms);
    let placed = 0;
    // End to end of consecutive cycles: a cycle plus the acknowledgements and publishes the
    // event loop handles before the next one (how long a new claim can wait for a decision).
    const periods: number[] = [];
    let lastEnd: number | undefined;
    const done = new Promise<void>((resolveDone) => {
      scheduler.onCycle = (stats) => {
        const at = performance.now();
        if (lastEnd !== undefined && stats.placed > 0) periods.push(at - lastEnd);
        lastEnd = at;
        if (process.env.BENCH_VERBOSE)
          process.stderr.write(`cycle ${cycles.length}: ${JSON.stringify(stats)} published ${scheduler.published}\n`);
        cycles.push(stats);
        placed += stats.placed;
        if (placed >= N_CLAIMS || (stats.placed === 0 && cycles.length > 1)) resolveDone();
      };
    });
    const natsPid = pidOf(nats.dir);
    const natsCpu0 = natsPid ? processCpuS(natsPid) : 0;
    const cpu0 = process.cpuUsage();
    const load0 = loadAverage();
    const profiler = process.env.BENCH_PROFILE ? await startProfile() : undefined;
    t = performance.now();
    await scheduler.lead();
    await done;
    // Placed means recorded by compare-and-set and published, both acknowledged.
    await step('waiting for the last acknowledgements', () => scheduler.settled());
    const wallS = (performance.now() - t) / 1000;
    if (profiler) await profiler.stop(process.env.BENCH_PROFILE!);
    const cpu = process.cpuUsage(cpu0);
    const schedCpuS = (cpu.user + cpu.system) / 1e6;
    const natsCpuS = natsPid ? processCpuS(natsPid) - natsCpu0 : 0;
    const load = (load0 + loadAverage()) / 2;
    // What the same work needs on an idle machine of this kind (2 cores): the scheduler's
    // event loop is one core; it and NATS share two.
    const cpuBoundS = Math.max(schedCpuS, (schedCpuS + natsCpuS) / 2);
    const rss = process.memoryUsage().rss / 2 ** 20;
    // Every placement is recorded: count what the bucket says, not what the engine thinks.
    // The scheduler stops first: its timers and followers do not compete with the count.
    await step('stopping the scheduler', () => scheduler.stop());
    const recorded = await step('counting the placed claims in the bucket', () => countPlaced(bus, `${prefix}-claims`));
    const placedEvents = await step('reading the stream', async () => (await bus.jsm.streams.info('LAPIS')).state.messages);

    // A cycle: from its start (priorities, the queue walk, every decision) to its last write
    // sent; the acknowledgements come later (decision to recorded + published below). Before a
    // cycle starts it may wait for writes in flight to drop under the limit: shown apart.
    const working = cycles
      .filter((c) => c.placed > 0)
      .map((c) => c.ms)
      .sort((a, b) => a - b);
    const withWait = cycles
      .filter((c) => c.placed > 0)
      .map((c) => c.ms + c.waitMs)
      .sort((a, b) => a - b);
    const figures = {
      nodes: N_NODES,
      requests: N_CLAIMS,
      projects: N_PROJECTS,
      batch: BATCH,
      placements_per_s: Math.round(scheduler.published / wallS),
      cycle_p50_ms: Math.round(quantile(working, 0.5)),
      cycle_p99_ms: Math.round(quantile(working, 0.99)),
      cycle_with_wait_p99_ms: Math.round(quantile(withWait, 0.99)),
      cycle_period_p50_ms: Math.round(
        quantile(
          periods.sort((a, b) => a - b),
          0.5,
        ),
      ),
      cycle_period_p99_ms: Math.round(quantile(periods, 0.99)),
      wait_for_write_room_s: Number((cycles.reduce((s, c) => s + c.waitMs, 0) / 1000).toFixed(2)),
      recalc_max_ms: Math.round(Math.max(0, ...cycles.map((c) => c.recalcMs))),
      cycles: cycles.length,
      rss_mb: Math.round(rss),
      rss_mb_queued: Math.round(queued.rss / 2 ** 20),
      bytes_per_queued_claim: bytesPerClaim,
      rss_bytes_per_queued_claim: rssBytesPerClaim,
      recorded_p50_ms: Math.round(
        quantile(
          doneMs.sort((a, b) => a - b),
          0.5,
        ),
      ),
      recorded_p99_ms: Math.round(quantile(doneMs, 0.99)),
      scheduler_cpu_ms_per_placement: Number(((schedCpuS * 1000) / Math.max(1, scheduler.published)).toFixed(3)),
      nats_cpu_ms_per_placement: Number(((natsCpuS * 1000) / Math.max(1, scheduler.published)).toFixed(3)),
      cpu_bound_placements_per_s: Math.round(scheduler.published / cpuBoundS),
      load_average: Number(load.toFixed(1)),
      decide_p50_ms: Math.round(
        quantile(
          cycles
            .filter((c) => c.placed > 0)
            .map((c) => c.decideMs)
            .sort((a, b) => a - b),
          0.5,
        ),
      ),
      placed,
      recorded,
      events_in_stream: placedEvents,
      submit_per_s: Math.round(N_CLAIMS / submitS),
      kube_scheduler_pods_per_s_reference: 145,
      machine: { nproc: cpus().length, memory_gb: Math.round(totalmem() / 2 ** 30) } as unknown as number,
      at: new Date().toISOString() as unknown as number,
    };
    const rows = [
      [
        'placements/s (recorded + published)',
        figures.placements_per_s,
        '~145 (kube-scheduler, 1,000 kwok nodes, RECIPES.md; not run here)',
        (figures.placements_per_s / 145).toFixed(1),
      ],
      ['placements/s the CPU time allows (scheduler + NATS on 2 idle cores)', figures.cpu_bound_placements_per_s, '', ''],
      [
        'CPU ms per placement: scheduler / nats-server',
        `${figures.scheduler_cpu_ms_per_placement} / ${figures.nats_cpu_ms_per_placement}`,
        '',
        '',
      ],
      ['load average during the run (2 cores, shared)', figures.load_average, '', ''],
      ['cycle p50 (ms)', figures.cycle_p50_ms, '', ''],
      ['cycle p99 (ms)', figures.cycle_p99_ms, '', ''],
      ['decision part of a cycle, p50 (ms)', figures.decide_p50_ms, '', ''],
      [
        'cycle p99 counting its wait for write room (ms); waits in all (s)',
        `${figures.cycle_with_wait_p99_ms}; ${figures.wait_for_write_room_s}`,
        '',
        '',
      ],
      ['priority recalculation, longest (ms)', figures.recalc_max_ms, '', ''],
      [
        'cycle period, end to end of the next, p50 / p99 (ms): a cycle plus the acknowledgements handled between',
        `${figures.cycle_period_p50_ms} / ${figures.cycle_period_p99_ms}`,
        '',
        '',
      ],
      ['decision to recorded + published, p50 / p99 (ms)', `${figures.recorded_p50_ms} / ${figures.recorded_p99_ms}`, '', ''],
      ['RSS (MiB): after placing all / with all queued', `${figures.rss_mb} / ${figures.rss_mb_queued}`, '', ''],
      [
        'memory per queued claim (bytes): live heap / RSS',
        `${figures.bytes_per_queued_claim} / ${figures.rss_bytes_per_queued_claim}`,
        '',
        '',
      ],
      [
        'claims decided / recorded in KV / published / events in stream',
        `${placed} / ${recorded} / ${scheduler.published} / ${placedEvents}`,
        '',
        '',
      ],
      ['submissions/s (KV create)', figures.submit_per_s, '', ''],
    ];
    process.stdout.write(
      `\nScheduler: ${N_NODES} nodes, ${N_CLAIMS} claims, ${N_PROJECTS} projects, ≤${BATCH} placements per cycle, ${cycles.length} cycles\n\n`,
    );
    process.stdout.write('| metric | Lapis | peer | ratio |\n|---|---|---|---|\n');
    for (const r of rows) process.stdout.write(`| ${r.join(' | ')} |\n`);
    writeResults(figures);
  } finally {
    await metrics?.stop();
    await bus.drain().catch(() => undefined);
    await nats.stop();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`benchmark failed: ${(error as Error).stack ?? error}\n`);
    process.exit(1);
  },
);
