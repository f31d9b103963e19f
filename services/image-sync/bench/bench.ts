// image-sync against `skopeo sync` (Debian skopeo) on the same set: N images sharing base
// layers in an upstream registry, each tool syncing into its own empty site registry. Full
// sync time, no-op re-sync time and bytes stored at the destination, side by side.
// Sizes: BENCH_SCALE (default 1: 20 images, 3 shared base layers of 40 MB and 8 MB of their
// own each, about 280 MB). Asserts nothing; prints a Markdown table and writes
// bench/results/image-sync.json.
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
import { Syncer } from '../src/sync';
import { pushImage, randomLayer } from '../test/fixtures';

const scale = Number(process.env.BENCH_SCALE ?? 1);
const IMAGES = Math.max(2, Math.round(Number(process.env.BENCH_IMAGES ?? 20)));
const MB = 1024 * 1024;
const BASE_LAYERS = 3;
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
    const [upstream, lapisSite, skopeoSite] = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
    started.push(upstream, lapisSite, skopeoSite);

    // The set: every image = the shared base layers + one layer of its own.
    const up = new RegistryClient({ url: upstream.url });
    const base = Array.from({ length: BASE_LAYERS }, () => randomLayer(BASE_SIZE));
    const repositories = Array.from({ length: IMAGES }, (_, i) => `bench/img-${String(i).padStart(2, '0')}`);
    for (const repository of repositories) await pushImage(up, repository, 'v1', [...base, randomLayer(OWN_SIZE)]);
    const setBytes = storedBytes(upstream);

    // Lapis.
    const bus = await EventBus.connect({ url: nats.url, name: 'image-sync-bench', stream: 'LAPIS', log: testLog });
    const stores = await openStores(bus, 'bench-');
    const syncer = new Syncer({ site: new RegistryClient({ url: lapisSite.url }), stores, bus, log: testLog, blobConcurrency: Number(process.env.LAPIS_SYNC_CONCURRENCY ?? 8) });
    const policy = policyFromObject({ name: 'bench', source: { url: upstream.url, insecure: true }, repositories }, 'policy');
    const [fullS, statuses] = await timed(() => syncer.syncPolicy(policy));
    const failed = statuses.filter((s) => s.result !== SyncResult.SUCCEEDED);
    if (failed.length > 0) throw new Error(`lapis sync failed: ${JSON.stringify(failed[0]?.errors)}`);
    const [noopS, noop] = await timed(() => syncer.syncPolicy(policy));
    if (noop.some((s) => s.tagsUnchanged !== 1)) throw new Error('lapis no-op sync changed something');
    const bytesMoved = storedBytes(lapisSite);
    await bus.drain();

    // skopeo sync, same set, its own destination.
    const yamlFile = join(work, 'skopeo.yaml');
    writeFileSync(yamlFile, `${upstream.host}:\n  tls-verify: false\n  images:\n${repositories.map((r) => `    ${r}: [v1]\n`).join('')}`);
    const skopeoArgs = ['sync', '--src', 'yaml', '--dest', 'docker', '--dest-tls-verify=false', yamlFile, `${skopeoSite.host}/mirror`];
    const [skopeoFullS] = await timed(() => run(skopeo, skopeoArgs));
    const [skopeoNoopS] = await timed(() => run(skopeo, skopeoArgs));
    const skopeoBytes = storedBytes(skopeoSite);

    const results = {
      full_s: round(fullS), skopeo_full_s: round(skopeoFullS), noop_s: round(noopS), skopeo_noop_s: round(skopeoNoopS),
      full_ratio: round(fullS / skopeoFullS), noop_ratio: round(noopS / skopeoNoopS), bytes_moved: bytesMoved, skopeo_bytes_moved: skopeoBytes,
      images: IMAGES, set_bytes: setBytes, scale,
      machine: { nproc: cpus().length, memory_gb: round(totalmem() / 1024 ** 3) }, at: new Date().toISOString(),
    };
    const mb = (n: number) => `${(n / MB).toFixed(1)} MB`;
    process.stdout.write(
      [
        `image-sync vs skopeo sync: ${IMAGES} images sharing ${BASE_LAYERS} base layers, ${mb(setBytes)} in the upstream (BENCH_SCALE=${scale})`,
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
    writeFileSync(join(out, 'image-sync.json'), JSON.stringify(results, null, 2) + '\n');
  } finally {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}

const round = (n: number) => Math.round(n * 1000) / 1000;

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
