// image-sync against `skopeo sync` (Debian skopeo) on the same set: N images sharing base
// layers in an upstream registry, each tool syncing into its own empty site registry. Full
// sync time, no-op re-sync time and bytes stored at the destination, side by side.
// Sizes: BENCH_SCALE (default 1: 20 images, 3 shared base layers of 40 MB and 8 MB of their
// own each, about 280 MB). Asserts nothing; prints a Markdown table and writes
// bench/results/image-sync.json. BENCH_ROUNDS (3) fresh destinations, BENCH_NOOPS (5) no-ops per round;
// BENCH_TAGS=all: the Lapis policy takes every tag (skopeo is always told tag v1).
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { EventBus } from '@lapis/platform';
import { testLog } from '@lapis/platform/testing';
import { SyncResult } from '@lapis/proto/lapis/images/v1/images';
import { ensureCommands, run, startNats, startRegistry, type NatsServer, type Registry } from '@lapis/testenv';
import { RegistryClient } from '../src/adapters/registry/client';
import { openStores } from '../src/adapters/store';
import { policyFromObject } from '../src/domain/policy';
import { Syncer } from '../src/application/syncer';
import { pushImage, randomLayer } from '../test/fixtures';

const scale = Number(process.env.BENCH_SCALE ?? 1);
const IMAGES = Math.max(2, Math.round(Number(process.env.BENCH_IMAGES ?? 20)));
const MB = 1024 * 1024;
const BASE_LAYERS = 3;
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const NOOPS = Math.max(1, Number(process.env.BENCH_NOOPS ?? 5));
const BASE_SIZE = Math.max(64 * 1024, Math.round(40 * MB * scale));
const OWN_SIZE = Math.max(16 * 1024, Math.round(8 * MB * scale));

function storedBytes(registry: Registry): number {
  let total = 0;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name === 'data') total += statSync(path).size;
    }
  };
  try {
    walk(join(registry.dir, 'data/docker/registry/v2/blobs'));
  } catch {
    // nothing stored yet
  }
  return total;
}

async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
  const start = process.hrtime.bigint();
  const result = await work();
  return [Number(process.hrtime.bigint() - start) / 1e9, result];
}

async function main(): Promise<void> {
  const { skopeo } = await ensureCommands({ skopeo: 'skopeo' });
  const started: Array<{ stop(): Promise<void> }> = [];
  const work = mkdtempSync(join(tmpdir(), 'image-sync-bench-'));
  try {
    const nats: NatsServer = await startNats();
    started.push(nats);
    const upstream = await startRegistry();
    started.push(upstream);

    // The set: every image = the shared base layers + one layer of its own.
    const up = new RegistryClient({ url: upstream.url });
    const base = Array.from({ length: BASE_LAYERS }, () => randomLayer(BASE_SIZE));
    const repositories = Array.from({ length: IMAGES }, (_, i) => `bench/img-${String(i).padStart(2, '0')}`);
    for (const repository of repositories) await pushImage(up, repository, 'v1', [...base, randomLayer(OWN_SIZE)]);
    const setBytes = storedBytes(upstream);

    // Rounds: fresh destination registries and catalogue each time, the two tools taking
    // turns (this machine is shared: the median of the rounds is what is reported).
    const bus = await EventBus.connect({ url: nats.url, name: 'image-sync-bench', stream: 'LAPIS', log: testLog });
    // The same instruction as skopeo's YAML (tag v1 of each repository); BENCH_TAGS=all makes
    // Lapis discover every tag instead (one tag list more per repository and sync).
    const allTags = process.env.BENCH_TAGS === 'all';
    const policy = policyFromObject(
      { name: 'bench', source: { url: upstream.url, insecure: true }, repositories, ...(allTags ? {} : { tag_include: ['^v1$'] }) },
      'policy',
    );
    const yamlFile = join(work, 'skopeo.yaml');
    writeFileSync(yamlFile, `${upstream.host}:\n  tls-verify: false\n  images:\n${repositories.map((r) => `    ${r}: [v1]\n`).join('')}`);
    const samples = { full: [] as number[], skopeoFull: [] as number[], noop: [] as number[], skopeoNoop: [] as number[] };
    let bytesMoved = 0;
    let skopeoBytes = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const [lapisSite, skopeoSite] = await Promise.all([startRegistry(), startRegistry()]);
      try {
        const stores = await openStores(bus, `bench-${round}-${Date.now()}-`);
        const syncer = new Syncer({
          site: new RegistryClient({ url: lapisSite.url }),
          stores,
          bus,
          log: testLog,
          blobConcurrency: Number(process.env.LAPIS_SYNC_CONCURRENCY ?? 8),
        });
        const skopeoArgs = ['sync', '--src', 'yaml', '--dest', 'docker', '--dest-tls-verify=false', yamlFile, `${skopeoSite.host}/mirror`];
        const lapisFull = async () => {
          const [seconds, statuses] = await timed(() => syncer.syncPolicy(policy));
          const failed = statuses.filter((s) => s.result !== SyncResult.SUCCEEDED);
          if (failed.length > 0) throw new Error(`lapis sync failed: ${JSON.stringify(failed[0]?.errors)}`);
          samples.full.push(seconds);
        };
        const skopeoFull = async () => samples.skopeoFull.push((await timed(() => run(skopeo, skopeoArgs)))[0]);
        if (round % 2 === 0) {
          await lapisFull();
          await skopeoFull();
        } else {
          await skopeoFull();
          await lapisFull();
        }
        for (let i = 0; i < NOOPS; i++) {
          const [seconds, noop] = await timed(() => syncer.syncPolicy(policy));
          if (noop.some((s) => s.tagsUnchanged !== 1)) throw new Error('lapis no-op sync changed something');
          samples.noop.push(seconds);
          samples.skopeoNoop.push((await timed(() => run(skopeo, skopeoArgs)))[0]);
        }
        bytesMoved = storedBytes(lapisSite);
        skopeoBytes = storedBytes(skopeoSite);
        syncer.stop();
      } finally {
        await Promise.all([lapisSite.stop(), skopeoSite.stop()]);
      }
    }
    await bus.drain();
    const fullS = median(samples.full);
    const skopeoFullS = median(samples.skopeoFull);
    const noopS = median(samples.noop);
    const skopeoNoopS = median(samples.skopeoNoop);

    const results = {
      full_s: round(fullS),
      skopeo_full_s: round(skopeoFullS),
      noop_s: round(noopS),
      skopeo_noop_s: round(skopeoNoopS),
      full_ratio: round(fullS / skopeoFullS),
      noop_ratio: round(noopS / skopeoNoopS),
      bytes_moved: bytesMoved,
      skopeo_bytes_moved: skopeoBytes,
      images: IMAGES,
      set_bytes: setBytes,
      scale,
      rounds: ROUNDS,
      noop_runs: ROUNDS * NOOPS,
      lapis_all_tags: allTags ? 1 : 0,
      samples: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v.map(round)])),
      machine: { nproc: cpus().length, memory_gb: round(totalmem() / 1024 ** 3) },
      at: new Date().toISOString(),
    };
    const mb = (n: number) => `${(n / MB).toFixed(1)} MB`;
    process.stdout.write(
      [
        `image-sync vs skopeo sync: ${IMAGES} images sharing ${BASE_LAYERS} base layers, ${mb(setBytes)} in the upstream (BENCH_SCALE=${scale}); medians of ${ROUNDS} full syncs and ${ROUNDS * NOOPS} no-op re-syncs each, taking turns; Lapis policy: ${allTags ? 'every tag (BENCH_TAGS=all)' : 'tag v1, as skopeo is told'}`,
        '',
        '| case | Lapis image-sync | skopeo sync | ratio (Lapis / skopeo) | goal |',
        '|---|---|---|---|---|',
        `| full sync | ${results.full_s} s | ${results.skopeo_full_s} s | ${results.full_ratio} | <= 0.7 |`,
        `| no-op re-sync | ${results.noop_s} s | ${results.skopeo_noop_s} s | ${results.noop_ratio} | <= 0.2 |`,
        `| bytes stored at the destination | ${mb(bytesMoved)} | ${mb(skopeoBytes)} | ${round(bytesMoved / skopeoBytes)} | |`,
        '',
      ].join('\n'),
    );
    const out = resolve(__dirname, '../../../../bench/results');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'image-sync.json'), `${JSON.stringify(results, null, 2)}\n`);
  } finally {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}

const round = (n: number) => Math.round(n * 1000) / 1000;
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
